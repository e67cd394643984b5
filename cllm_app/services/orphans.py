"""Jobs whose process is gone: a training killed with `kill -9`, a power cut, a crashed worker.

Such a job stays "running" in the store, and a running job holds its model. So whoever is about
to judge whether a model is busy (the CLI, an API request, the window's runner, a worker) first
asks here, and a job whose process has ended is marked interrupted: its model is free again and
Continue (or Resume) goes on from what was saved.
"""

from collections.abc import Iterable
from pathlib import Path

from cllm_app.procs import process_alive
from cllm_app.services.ingest import discard_leftovers
from cllm_app.store import Job, db
from cllm_app.store.schema import utcnow

# States in which a process of the job's own should be running. A queued job has none yet: it
# waits for a runner.
HELD_STATES = ("running", "stopping", "paused")

_RESUME_HINTS = {
    "train": "Continue resumes from the last checkpoint",
    "crawl": "Resume continues the crawl from its saved frontier",
    "ingest": "add the files again: those already added are kept and skipped as duplicates",
    "export": "export it again (the model was not changed, and nothing half-written was left)",
}


def resume_hint(kind: str) -> str:
    """What a person can do about an interrupted job of this kind."""
    return _RESUME_HINTS.get(kind, "start it again")


def is_orphan(job: Job) -> bool:
    return job.state in HELD_STATES and not process_alive(job.pid, job.pid_started)


def mark_interrupted(job: Job) -> bool:
    """Mark `job`, an orphan, interrupted; False if it changed meanwhile (another process got
    there first, or a worker took the job over with a pid of its own)."""
    same_process = Job.pid.is_null() if job.pid is None else (Job.pid == job.pid)
    marked = bool(
        Job.update(
            state="interrupted",
            message=f"interrupted: its process ended without finishing; {resume_hint(job.kind)}",
            finished_at=utcnow(),
        )
        .where((Job.id == job.id) & Job.state.in_(HELD_STATES) & same_process)
        .execute()
    )
    if marked:  # an interrupted job leaves nothing behind, as any other end does
        discard_leftovers(Path(db.obj.database).parent, job)
    return marked


def recover_if_orphan(job: Job | None) -> bool:
    """Mark `job` interrupted if its process is gone. True if it was gone (whoever marked it):
    the caller's copy of the row is then out of date."""
    if job is None or not is_orphan(job):
        return False
    mark_interrupted(job)
    return True


def recover_orphans(model_id: int | None = None, job_id: int | None = None, skip: Iterable[int] = ()) -> int:
    """Mark interrupted every job (of `model_id`, or job `job_id`) whose process is gone, but
    those in `skip` (a runner's own children, whose exit it reports itself). Returns how many
    this call marked."""
    query = Job.select().where(Job.state.in_(HELD_STATES))
    if model_id is not None:
        query = query.where(Job.model == model_id)
    if job_id is not None:
        query = query.where(Job.id == job_id)
    skip = set(skip)
    return sum(1 for job in query if job.id not in skip and is_orphan(job) and mark_interrupted(job))
