"""The runner: a thread in the app's process that starts queued jobs in processes of their own
(one job per model at a time) and notices when one of them dies."""

import subprocess
import threading

from cllm_app.procs import spawn_worker
from cllm_app.services.orphans import resume_hint
from cllm_app.services.studio import Studio
from cllm_app.store import Job

POLL_SECONDS = 0.3


def lane(kind: str) -> str:
    """Jobs of one lane run one at a time per model. Training writes the weights, so it has a
    lane of its own; crawling and ingesting only add to the queue (which training reads at each
    epoch's start), so they run beside training, one crawl and one ingest per model at a time.
    An export reads the weights file, which training replaces whole, so it runs beside it too."""
    return kind


class JobRunner:
    def __init__(self, studio: Studio):
        self.studio = studio
        self.procs: dict[int, subprocess.Popen] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "JobRunner":
        self.studio.jobs.recover_orphans()
        self._thread = threading.Thread(target=self._loop, name="cllm-jobs", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                self.tick()
            except Exception:  # keep the runner alive; the next tick tries again
                import logging

                logging.getLogger(__name__).exception("job runner tick failed")

    def tick(self) -> None:
        for job_id, proc in list(self.procs.items()):
            code = proc.poll()
            if code is None:
                continue
            del self.procs[job_id]
            job = Job.get_or_none(Job.id == job_id)
            if job is not None and job.state in ("queued", "running", "stopping"):
                self.studio.jobs.finish(
                    job_id,
                    "interrupted",
                    message=f"its process ended unexpectedly (exit code {code}); {resume_hint(job.kind)}",
                )
        # Jobs of processes this runner did not start (`cllm train`, `cllm crawl`, a worker of an
        # earlier window) hold their models until someone sees that the process is gone.
        self.studio.jobs.recover_orphans(skip=self.procs)
        busy = {
            (j.model_id, lane(j.kind))
            for j in Job.select(Job.model, Job.kind).where(Job.state.in_(("running", "stopping")))
        } | {(j.model_id, lane(j.kind)) for j in Job.select().where(Job.id.in_(list(self.procs)))}
        for job in Job.select().where(Job.state == "queued").order_by(Job.id):
            key = (job.model_id, lane(job.kind))
            if key in busy:
                continue  # one job per model and lane: it waits its turn
            log = self.studio.root.path / "logs" / f"job-{job.id}.log"
            self.procs[job.id] = spawn_worker(job.id, self.studio.root.path, log)
            self.studio.jobs.start(job.id, self.procs[job.id].pid)
            busy.add(key)

    def shutdown(self, wait: float = 10.0) -> None:
        """Ask running jobs to checkpoint and stop, then stop the thread."""
        self._stop.set()
        for job_id in list(self.procs):
            try:
                self.studio.jobs.stop(job_id)
            except Exception:
                pass
        for proc in self.procs.values():
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self._thread:
            self._thread.join(timeout=2)
