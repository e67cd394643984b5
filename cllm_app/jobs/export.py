"""An export job: a model written as a GGUF file, an Ollama folder or a Hugging Face folder
(services/exports.py), with progress and Stop; what was written goes into the job's detail."""

import json
import time

from cllm_app.services.exports import ExportStopped
from cllm_app.services.studio import Studio
from cllm_app.store import Job, LanguageModel


def run_export(studio: Studio, job_id: int) -> str:
    job = Job.get_by_id(job_id)
    params = json.loads(job.params or "{}")
    row = LanguageModel.get_by_id(job.model_id)
    last = [0.0]

    def progress(fraction: float, message: str) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.3 or fraction >= 1.0:  # the store hears of it a few times a second
            last[0] = now
            studio.jobs.report(job_id, progress=fraction, message=message)

    should_stop = studio.jobs.stop_check(job_id)
    try:
        out = studio.exports.export(row.model_name, params["format"], params["path"], params.get("dtype", "f32"),
                                    params.get("overwrite", False), progress=progress, should_stop=should_stop)
    except ExportStopped:
        studio.jobs.finish(job_id, "stopped", message="stopped; nothing was written")
        return "stopped"
    studio.jobs.report(job_id, progress=1.0, detail=out)
    studio.jobs.finish(job_id, "done", message=f"exported to {out['path']}")
    return "done"
