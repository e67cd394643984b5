"""The process a job runs in: `cllm worker JOB_ID`, started by the runner."""

import os
import traceback

from cllm_app.services.studio import Studio
from cllm_app.store import Job

KINDS = {
    "train": "cllm_app.jobs.train:run_training",
    "crawl": "cllm_app.jobs.crawl:run_crawl",
    "evaluate": "cllm_app.services.research.evaluate:run_evaluation",
    "ingest": "cllm_app.jobs.ingest:run_ingest",
}


def run_job(job_id: int) -> int:
    studio = Studio()
    job = Job.get_or_none(Job.id == job_id)
    if job is None:
        return 2
    studio.jobs.start(job_id, os.getpid())
    module, func = KINDS[job.kind].split(":")
    try:
        run = getattr(__import__(module, fromlist=[func]), func)
        state = run(studio, job_id)
    except Exception as e:  # a bug, not a refusal: keep the traceback in the job for the report
        studio.jobs.finish(job_id, "failed", error=f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
        return 1
    return 0 if state in ("done", "stopped") else 1
