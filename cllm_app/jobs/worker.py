"""The process a job runs in: `cllm worker JOB_ID`, started by the runner."""

import os
import traceback
from collections.abc import Callable

from cllm_app.errors import as_refusal
from cllm_app.procs import job_niceness, lower_priority
from cllm_app.services.studio import Studio
from cllm_app.store import Job

KINDS = {
    "train": "cllm_app.jobs.train:run_training",
    "crawl": "cllm_app.jobs.crawl:run_crawl",
    "evaluate": "cllm_app.jobs.evaluate:run_evaluation",
    "ingest": "cllm_app.jobs.ingest:run_ingest",
    "export": "cllm_app.jobs.export:run_export",
}


def run_here(studio: Studio, job_id: int, run: Callable[[Studio, int], str]) -> str:
    """Run a job's work in this process. A refusal on the way (the disk is full, a file is
    damaged) ends the job failed with its one plain message, not a traceback."""
    try:
        return run(studio, job_id)
    except Exception as e:
        refusal = as_refusal(e, f"job #{job_id}", studio.root.path)
        if refusal is None:
            raise
        studio.jobs.finish(job_id, "failed", error=refusal.message)
        return "failed"


def run_rank(job_id: int, rank: int, world: int, address: str) -> int:
    """One of the other processes of a many-process PyTorch training job (jobs/engines.py). It
    keeps the priority rank 0 gave it: lowered again, it would hold every rank back."""
    from cllm_app.jobs.train import run_rank as run

    return run(Studio(recover=False), job_id, rank, world, address)


def run_job(job_id: int) -> int:
    lower_priority(job_niceness())
    studio = Studio(recover=False)
    job = Job.get_or_none(Job.id == job_id)
    if job is None:
        return 2
    if not studio.jobs.start(job_id, os.getpid()):
        return 0  # cancelled before this process could start: nothing to do
    module, func = KINDS[job.kind].split(":")
    try:
        run = getattr(__import__(module, fromlist=[func]), func)
        state = run_here(studio, job_id, run)
    except Exception as e:  # a bug, not a refusal: keep the traceback in the job for the report
        studio.jobs.finish(job_id, "failed", error=f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
        return 1
    return 0 if state in ("done", "stopped") else 1
