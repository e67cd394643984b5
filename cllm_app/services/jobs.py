"""Jobs in the store: submit, list, stop. One job per model at a time; the rest wait in line.

The runner (cllm_app/jobs/runner.py) starts queued jobs in processes of their own;
a worker reports progress here and watches for a stop request here.
"""

import json
import os
import time
from collections.abc import Callable

from cllm_app.errors import Conflict, InvalidInput, NotFound
from cllm_app.procs import process_start
from cllm_app.services.ingest import discard_leftovers
from cllm_app.services.models import ModelLifecycle, changing
from cllm_app.services.orphans import recover_if_orphan, recover_orphans
from cllm_app.store import Job, LanguageModel, db
from cllm_app.store.schema import ACTIVE_JOB_STATES, iso, utcnow

JOB_KINDS = ("train", "crawl", "evaluate", "ingest", "export")
# How often a job's loop reads the store to see whether someone pressed Stop.
STOP_POLL_SECONDS = 0.2


def describe(job: Job) -> dict:
    model = LanguageModel.get_or_none(LanguageModel.id == job.model_id) if job.model_id else None
    return {
        "id": job.id,
        "kind": job.kind,
        "model_id": job.model_id,
        "model_name": model.model_name if model else None,
        "state": job.state,
        "progress": job.progress,
        "message": job.message,
        "error": job.error,
        "params": json.loads(job.params or "{}"),
        "detail": json.loads(job.detail or "{}"),
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
    }


class Jobs:
    def __init__(self, models: ModelLifecycle):
        self.models = models

    def submit(self, kind: str, model_name: str, params: dict | None = None, state: str = "queued") -> dict:
        if kind not in JOB_KINDS:
            raise InvalidInput(f"unknown job kind '{kind}'", code="invalid_job_kind")
        with changing:  # so a rename or delete cannot slip between the check and the insert
            row = self.models.get(model_name)
            job = Job.create(
                kind=kind,
                model=row,
                state=state,
                params=json.dumps(params or {}),
                pid=os.getpid() if state == "running" else None,
                pid_started=process_start(os.getpid()) if state == "running" else None,
                started_at=utcnow() if state == "running" else None,
            )
        return describe(job)

    def get(self, job_id: int) -> dict:
        job = self._get(job_id)
        if recover_if_orphan(job):
            job = self._get(job_id)
        return describe(job)

    def _get(self, job_id) -> Job:
        job = Job.get_or_none(Job.id == job_id)
        if job is None:
            raise NotFound(f"there is no job #{job_id}", code="job_not_found")
        return job

    def list(self, model_name: str | None = None, active: bool = False, limit: int = 50) -> list[dict]:
        query = Job.select().order_by(Job.id.desc()).limit(limit)
        if model_name is not None:
            row = self.models.get(model_name)
            recover_orphans(model_id=row.id)
            query = query.where(Job.model == row)
        else:
            recover_orphans()
        if active:
            query = query.where(Job.state.in_(ACTIVE_JOB_STATES))
        return [describe(j) for j in query]

    def stop(self, job_id: int) -> dict:
        """A queued job is cancelled; a running one is asked to checkpoint and stop."""
        recover_orphans(job_id=job_id)  # a job whose process is gone has ended: nobody would stop it
        with db.atomic():
            job = self._get(job_id)
            if job.state == "queued":
                job.state, job.finished_at, job.message = "cancelled", utcnow(), "cancelled before it started"
            elif job.state in ("running", "paused"):
                job.state, job.message = "stopping", "stopping: saving a checkpoint"
            elif job.state != "stopping":
                raise Conflict(f"job #{job.id} has already ended ({job.state})", code="job_finished")
            job.save()
        if job.state == "cancelled":
            self._ended(job)
        return describe(job)

    # ---- the worker's side ------------------------------------------------------------------

    def stop_requested(self, job_id: int) -> bool:
        return Job.select(Job.state).where(Job.id == job_id).scalar() == "stopping"

    def stop_check(self, job_id: int, every: float = STOP_POLL_SECONDS) -> Callable[[], bool]:
        """`stop_requested` for a loop that asks at every step: the store is read at most once
        every `every` seconds, and the last answer is given in between."""
        last = [0.0, False]

        def poll() -> bool:
            now = time.monotonic()
            if now - last[0] >= every:
                last[0], last[1] = now, self.stop_requested(job_id)
            return last[1]

        return poll

    def report(
        self, job_id: int, progress: float | None = None, message: str | None = None, detail: dict | None = None
    ) -> None:
        values = {}
        if detail is not None:
            values[Job.detail] = json.dumps(detail)
        if progress is not None:
            values[Job.progress] = float(progress)
        if message is not None:
            values[Job.message] = message
        if values:
            Job.update(values).where(Job.id == job_id).execute()

    def start(self, job_id: int, pid: int) -> bool:
        """Mark a job's worker started. False when the job ended before its worker could start
        (cancelled while the runner was spawning it): that worker must then exit without work."""
        with db.atomic():
            # The runner marks a job running when it spawns the worker, and the worker again when
            # it starts; a stop asked for in between must survive the second mark, and a job
            # cancelled in between must stay cancelled.
            live = (Job.id == job_id) & Job.state.in_(("queued", "running", "stopping"))
            Job.update(pid=pid, pid_started=process_start(pid), started_at=utcnow()).where(live).execute()
            Job.update(state="running").where(live & (Job.state != "stopping")).execute()
            return Job.select(Job.state).where(Job.id == job_id).scalar() in ("running", "stopping")

    def finish(self, job_id: int, state: str, message: str | None = None, error: str | None = None) -> None:
        Job.update(state=state, message=message, error=error, finished_at=utcnow()).where(Job.id == job_id).execute()
        job = Job.get_or_none(Job.id == job_id)
        if job is not None:
            self._ended(job)

    def _ended(self, job: Job) -> None:
        discard_leftovers(self.models.root.path, job)

    def recover_orphans(self, skip=()) -> int:
        """Jobs left running by a process that is gone (killed, or the app or the machine
        stopped) are marked interrupted; `skip`: job ids whose process the caller watches."""
        return recover_orphans(skip=skip)
