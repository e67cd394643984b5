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
