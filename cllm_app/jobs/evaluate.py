"""An evaluate job: a large evaluation (services/research/evaluate.py decides what is large)
scored in the worker's process with progress; its result goes into the job's detail."""

import json
import time

from cllm_app.errors import InvalidInput
from cllm_app.services.research.evaluate import (
    DEFAULT_MAX_TOKENS,
    PENDING_DIR,
    clean,
    score,
    score_validation,
)
from cllm_app.services.studio import Studio
from cllm_app.store import Job, LanguageModel


def run_evaluation(studio: Studio, job_id: int) -> str:
    """The evaluate job: score the text its params name, reporting progress; the result goes
    into the job's detail. Returns the job's final state."""
    job = Job.get_by_id(job_id)
    params = json.loads(job.params or "{}")
    row = LanguageModel.get_by_id(job.model_id)
    text_path = studio.root.path / PENDING_DIR / params["text_file"] if params.get("text_file") else None
    try:
        text = text_path.read_text(encoding="utf-8") if text_path else None
        from_model = None
        if params.get("from_model_id"):
            src = LanguageModel.get_or_none(LanguageModel.id == params["from_model_id"])
            if src is None or src.deleted_at is not None:
                studio.jobs.finish(job_id, "failed", error="the model whose text was to be evaluated is gone")
                return "failed"
            from_model = src.model_name
        try:
            p = studio.research.prepare(row.model_name, params.get("source", "validation"), from_model,
                                        params.get("split"), text, params.get("origin"))
        except InvalidInput as e:
            studio.jobs.finish(job_id, "failed", error=e.message)
            return "failed"
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] < 0.5 and done < total:
                return
            last[0] = now
            studio.jobs.report(job_id, progress=done / max(1, total),
                               message=f"evaluated {done:,} of {total:,} tokens")

        should_stop = studio.jobs.stop_check(job_id)
        if p.source["source"] == "validation":  # measured as the trainer measures it
            result = score_validation(p)
        else:
            result = score(p.cfg, p.weights, p.tok, p.docs, params.get("max_tokens", DEFAULT_MAX_TOKENS),
                           progress=progress, should_stop=should_stop)
        detail = {"model_name": row.model_name, "source": p.source, **clean(result)}
        studio.jobs.report(job_id, progress=1.0 if not result["stopped"] else None, detail=detail)
        if result["stopped"]:
            studio.jobs.finish(job_id, "stopped", message=f"stopped after {result['tokens']:,} tokens")
            return "stopped"
        studio.jobs.finish(job_id, "done", message=f"loss {result['loss']:.4f} over {result['tokens']:,} tokens")
        return "done"
    finally:
        if text_path is not None:
            text_path.unlink(missing_ok=True)
