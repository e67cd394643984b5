"""A job whose process died (kill -9, a power cut) gives its model back: whoever looks next (the
CLI, the API, the window's runner, a worker) finds the process gone and marks the job
interrupted, and a reused pid is not taken for the job's process."""

import json
import os
import random
import signal
import subprocess
import sys

import numpy as np
import pytest

from cllm_app.engine.weights import load_weights
from cllm_app.errors import Conflict
from cllm_app.jobs.runner import JobRunner
from cllm_app.procs import process_alive, process_start
from cllm_app.services.models import WEIGHTS_FILE
from cllm_app.store import Job, LanguageModel, LossPoint, ModelEvent
from tests.conftest import wait_until

SHAPE = {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 32}
# Checkpoints every 4 steps, about 32 steps an epoch, 8 epochs: long enough that ten kills and
# their resumes cannot reach the end, short enough for seconds of training in all.
SETTINGS = {"batch_size": 4, "sequence_length": 32, "target_epochs": 8, "eval_interval": 5,
            "checkpoint_interval": 4, "warmup_steps": 5, "learning_rate": 0.003}
TEXT = ("It was the best of times, it was the worst of times, it was the age of wisdom, "
        "it was the age of foolishness, it was the epoch of belief. ").encode()


def _model(studio, name):
    import io

    studio.models.create(name, **SHAPE)
    studio.models.configure(name, **SETTINGS)
    for i in range(3):
        studio.queue.add_stream(name, io.BytesIO(TEXT * (14 + i) + f" part {i}".encode()), f"part{i}.txt")


def _cllm_train(home, name, log):
    """`cllm train NAME` in a process group of its own, as a terminal would start it."""
    env = {**os.environ, "CLLM_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "cllm_app", "train", name], env=env, stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _losses(name):
    row = LanguageModel.get(LanguageModel.model_name == name)
    return [(p.step, p.train_loss) for p in row.loss_history.order_by(LossPoint.step)]


def _last_job(name) -> Job | None:
    row = LanguageModel.get(LanguageModel.model_name == name)
    return Job.select().where(Job.model == row).order_by(Job.id.desc()).first()


def _step_of(job: Job | None) -> int:
    return json.loads(job.detail or "{}").get("step", -1) if job else -1


def test_ten_sigkills_of_cllm_train_each_resume_and_end_as_an_uninterrupted_run(studio, home, tmp_path):
    _model(studio, "whole")
    studio.models.duplicate("whole", "killed")
    with open(tmp_path / "whole.log", "wb") as log:
        assert _cllm_train(home, "whole", log).wait(timeout=300) == 0, (tmp_path / "whole.log").read_text()
    total = studio.models.show("whole")["steps_trained"]
    assert total > 100

    seed = random.randrange(2**32)
    rng = random.Random(seed)
    killed_jobs = []
    for i in range(10):
        before = _last_job("killed")
        trained = LanguageModel.get(LanguageModel.model_name == "killed").steps_trained
        with open(tmp_path / f"run-{i}.log", "wb") as log:
            proc = _cllm_train(home, "killed", log)
        # It has really started: a checkpoint of its own is recorded; then it goes a random
        # number of steps further (0 to 7: up to two checkpoint intervals), killed wherever within
        # a step (or a checkpoint, or a store write) the poll happens to land.
        def checkpointed(before=before, trained=trained, proc=proc):
            job = _last_job("killed")
            fresh = job is not None and (before is None or job.id != before.id)
            return proc.poll() is not None or (fresh and LanguageModel.get(LanguageModel.model_name == "killed").steps_trained > trained)

        wait_until(checkpointed, timeout=120, what=f"run {i} to checkpoint (seed {seed})")
        first = LanguageModel.get(LanguageModel.model_name == "killed").steps_trained
        extra = rng.randrange(8)

        def stepped(first=first, extra=extra, proc=proc):
            return proc.poll() is not None or _step_of(_last_job("killed")) >= first + extra

        wait_until(stepped, timeout=120, what=f"run {i} to step (seed {seed})")
        assert proc.poll() is None, f"run {i} ended before its kill (seed {seed}): {(tmp_path / f'run-{i}.log').read_text()}"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        job = _last_job("killed")
        assert job.state == "running"  # as a killed process leaves it, until someone looks
        killed_jobs.append(job.id)

    with open(tmp_path / "final.log", "wb") as log:
        assert _cllm_train(home, "killed", log).wait(timeout=300) == 0, (tmp_path / "final.log").read_text()
    assert [Job.get_by_id(j).state for j in killed_jobs] == ["interrupted"] * 10
    row = LanguageModel.get(LanguageModel.model_name == "killed")
    resumed = [json.loads(e.detail)["step"] for e in row.events.where(ModelEvent.kind == "training_resumed").order_by(ModelEvent.id)]
    assert len(resumed) == 10 and resumed == sorted(resumed) and resumed[0] > 0, (resumed, seed)
    assert _losses("killed") == _losses("whole"), f"seed {seed}"
    assert studio.models.show("killed")["steps_trained"] == total
    mine, theirs = (load_weights(studio.models.folder(studio.models.get(n)) / WEIGHTS_FILE) for n in ("killed", "whole"))
    assert mine.keys() == theirs.keys()
    for name in mine:  # bit for bit
        assert np.array_equal(mine[name].view(np.uint32), theirs[name].view(np.uint32)), (name, seed)


def test_a_pid_is_the_same_process_only_with_the_same_start_time():
    me = process_start(os.getpid())
    assert me and process_start(os.getpid()) == me  # stable
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        theirs = process_start(child.pid)
        assert theirs and theirs != me
        assert process_alive(child.pid, theirs)
        assert not process_alive(child.pid, me)  # that pid, but not the process that started then
        assert process_alive(child.pid, None)  # no start time kept (an older job): the pid decides
    finally:
        child.communicate(b"")
    assert not process_alive(child.pid, theirs) and process_start(child.pid) is None


def _running_job(studio, name, **fields):
    """A training job that this test process holds, as `cllm train` would, with `fields` changed."""
    job = studio.training.start(name, {}, foreground=True)
    assert job["state"] == "running"
    if fields:
        Job.update(**fields).where(Job.id == job["id"]).execute()
    return job["id"]


def test_a_job_whose_pid_was_reused_counts_as_dead(studio):
    _model(studio, "r")
    reused = _running_job(studio, "r", pid_started="the start of a process that ended long ago")
    with pytest.raises(Conflict) as e:  # nobody is left to stop it: it has ended
        studio.jobs.stop(reused)
    assert e.value.code == "job_finished"
    assert studio.models.show("r")["busy"] is None
    assert studio.jobs.get(reused)["state"] == "interrupted"
    assert "Continue resumes" in studio.jobs.get(reused)["message"]
    # while a job of this very process, with its start time, is alive and holds the model
    alive = _running_job(studio, "r")
    assert Job.get_by_id(alive).pid_started == process_start(os.getpid())
    assert studio.models.show("r")["busy"] == {"job_id": alive, "kind": "train", "state": "running"}
    assert studio.jobs.recover_orphans() == 0 and studio.jobs.get(alive)["state"] == "running"


def _gone(studio):
    """Something that looks at the model ("r") first, as each entry point does."""
    return {
        "cli and api: train again": lambda: studio.training.start("r", {}),
        "models show": lambda: studio.models.show("r"),
        "rename": lambda: studio.models.rename("r", "r2"),
        "jobs list": lambda: studio.jobs.list(active=True),
        "window's runner": lambda: JobRunner(studio).tick(),
        "a crawl worker's continuous mode": lambda: _queue_training_from_a_crawl(studio),
    }


def _queue_training_from_a_crawl(studio):
    from cllm_app.store import Crawl

    crawl = Crawl.create(model=studio.models.get("r"), state="running", settings='{"train_after_tokens": 1}')
    assert studio.crawls.maybe_queue_training(crawl.id).startswith("queued training job")


@pytest.mark.parametrize("entry", list(_gone(None)))
def test_every_entry_point_recovers_a_dead_job_before_judging_the_model(studio, entry):
    _model(studio, "r")
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    job_id = _running_job(studio, "r", pid=dead.pid, pid_started=process_start(os.getpid()))
    _gone(studio)[entry]()
    job = Job.get_by_id(job_id)
    assert job.state == "interrupted" and job.finished_at is not None


def test_the_api_frees_a_model_whose_training_process_died(client, studio):
    _model(studio, "r")
    job_id = _running_job(studio, "r", pid_started="another process")
    shown = client.get("/api/models/r").get_json()
    assert shown["busy"] is None
    assert client.get(f"/api/jobs/{job_id}").get_json()["state"] == "interrupted"
    again = client.post("/api/models/r/train", json={})
    assert again.status_code == 202, again.get_json()
