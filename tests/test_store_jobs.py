"""Jobs in the store: one per model at a time, stop, and recovery of jobs whose process died."""

import io

import pytest

from cllm_app.errors import Conflict, InvalidInput, NotFound
from cllm_app.store import Job

SMALL = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16}


@pytest.fixture
def model(studio):
    studio.models.create("m", **SMALL)
    return "m"


def test_training_needs_data_and_a_target_left(studio, model):
    with pytest.raises(InvalidInput) as e:
        studio.training.start(model, {})
    assert e.value.code == "empty_queue"
    studio.queue.add_stream(model, io.BytesIO(b"some text " * 50), "t.txt")
    job = studio.training.start(model, {"batch_size": 2, "target_epochs": 2})
    assert job["state"] == "queued" and job["kind"] == "train"
    assert studio.models.show(model)["batch_size"] == 2  # settings are saved with the model
    with pytest.raises(Conflict) as e:
        studio.training.start(model, {})
    assert e.value.code == "already_training"
    studio.jobs.stop(job["id"])
    from cllm_app.store import LanguageModel

    LanguageModel.update(epochs_trained=2).execute()
    with pytest.raises(InvalidInput) as e:
        studio.training.start(model, {})
    assert e.value.code == "target_reached"


def test_stop_cancels_queued_and_asks_running(studio, model):
    queued = studio.jobs.submit("train", model)
    assert studio.jobs.stop(queued["id"])["state"] == "cancelled"
    with pytest.raises(Conflict):
        studio.jobs.stop(queued["id"])
    running = studio.jobs.submit("train", model, state="running")
    assert studio.jobs.stop(running["id"])["state"] == "stopping"
    assert studio.jobs.stop_requested(running["id"])
    with pytest.raises(NotFound):
        studio.jobs.stop(999)


def test_a_stop_between_the_runners_spawn_and_the_workers_start_holds(studio, model):
    """The runner picks a queued job, spawns its worker, then marks it started; the worker marks
    it again. A stop that lands anywhere in between must win (CI once trained on for minutes
    after a stop that cancelled the job just before the runner's mark)."""
    import os

    cancelled = studio.jobs.submit("train", model)
    studio.jobs.stop(cancelled["id"])  # while still queued: cancelled
    assert studio.jobs.start(cancelled["id"], os.getpid()) is False  # the runner's mark
    assert studio.jobs.start(cancelled["id"], os.getpid()) is False  # the worker's: it exits
    assert studio.jobs.get(cancelled["id"])["state"] == "cancelled"

    stopping = studio.jobs.submit("train", model)
    assert studio.jobs.start(stopping["id"], os.getpid()) is True  # the runner's mark
    studio.jobs.stop(stopping["id"])
    assert studio.jobs.start(stopping["id"], os.getpid()) is True  # the worker runs, to checkpoint
    assert studio.jobs.stop_requested(stopping["id"])


def test_a_worker_for_a_cancelled_job_exits_without_work(studio, model, monkeypatch):
    from cllm_app.jobs import worker

    monkeypatch.setattr(worker, "lower_priority", lambda niceness: None)  # not this test process
    run_job = worker.run_job

    job = studio.jobs.submit("train", model)
    studio.jobs.stop(job["id"])
    assert run_job(job["id"]) == 0
    after = studio.jobs.get(job["id"])
    assert after["state"] == "cancelled" and after["started_at"] is None


def test_a_job_holds_its_model(studio, model):
    studio.jobs.submit("train", model)
    with pytest.raises(Conflict) as e:
        studio.models.rename(model, "other")
    assert e.value.code == "model_busy"


def test_orphaned_jobs_are_marked_interrupted(studio, model):
    job = studio.jobs.submit("train", model, state="running")
    Job.update(pid=2**22 + 12345).where(Job.id == job["id"]).execute()  # no such process
    alive = studio.jobs.submit("train", model, state="running")  # this process: alive
    assert studio.jobs.recover_orphans() == 1
    assert studio.jobs.get(job["id"])["state"] == "interrupted"
    assert studio.jobs.get(alive["id"])["state"] == "running"


def test_unknown_kind(studio, model):
    with pytest.raises(InvalidInput):
        studio.jobs.submit("dance", model)
