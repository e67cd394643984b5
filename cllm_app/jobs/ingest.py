"""An ingest job: files, folders, archives or another model's queue into a model's queue.

Runs in the worker's process (or in the foreground for `cllm data add/import`). Progress
(files, bytes, tokens and the per-file report so far) goes to the job's detail as it happens;
a stop request ends it between files, keeping everything added so far. What the reading
libraries say about a file goes to its line of the report and to the job's log.
"""

import json
from pathlib import Path

from cllm_app.services.ingest import discard_staging
from cllm_app.services.studio import Studio
from cllm_app.store import Job, LanguageModel


def log_path(studio: Studio, job_id: int) -> Path:
    """The job's log: where the runner sends its worker's output (cllm_app/jobs/runner.py)."""
    return studio.root.path / "logs" / f"job-{job_id}.log"


def _summary(r: dict) -> str:
    parts = [f"{r['added']} added ({r['tokens']:,} tokens)"]
    for key, word in (("duplicates", "already queued"), ("refused", "refused"), ("empty", "empty")):
        if r[key]:
            parts.append(f"{r[key]} {word}")
    return ", ".join(parts)


def run_ingest(studio: Studio, job_id: int) -> str:
    """Run the ingest described by the job's params. Returns the job's final state."""
    job = Job.get_by_id(job_id)
    params = json.loads(job.params or "{}")
    try:
        return _run(studio, job, params)
    finally:
        discard_staging(studio.root.path, params.get("staging"))  # uploads were copied into the queue


def _run(studio: Studio, job: Job, params: dict) -> str:
    jobs, job_id = studio.jobs, job.id
    row = LanguageModel.get_by_id(job.model_id)

    def log(line: str) -> None:
        path = log_path(studio, job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def progress(report: dict) -> None:
        total = report["bytes_total"] or 0
        done = report["bytes_done"] if total else report["files_done"]
        jobs.report(
            job_id,
            progress=min(1.0, done / (total or report["files_total"] or 1)),
            message=f"{report['files_done']} of {report['files_total']} files · {_summary(report)}",
            detail=report,
        )

    def should_stop() -> bool:
        return jobs.stop_requested(job_id)

    if params.get("import_from") is not None:
        source = LanguageModel.get_or_none(LanguageModel.id == params["import_from"])
        if source is None or source.deleted_at is not None:
            jobs.finish(job_id, "failed", error="the model to import from no longer exists")
            return "failed"
        report = studio.queue.import_entries(
            row.model_name, source.model_name, params.get("entry_ids"), progress, should_stop
        )
    else:
        options = studio.queue.options(params.get("text_field"), params.get("csv_column"))
        report = studio.queue.ingest(
            row.model_name, params["paths"], params.get("origins"), options,
            progress=progress, should_stop=should_stop, log=log,
        )
    jobs.report(job_id, progress=1.0, detail=report)
    if report["stopped"]:
        jobs.finish(job_id, "stopped", message=f"stopped after {report['files_done']} of {report['files_total']} files: "
                    f"{_summary(report)}")
        return "stopped"
    jobs.finish(job_id, "done", message=_summary(report))
    return "done"
