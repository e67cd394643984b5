"""Raising a reached target: the added epochs go on at the learning rate's floor unless a new
warmup-and-decay cycle is asked for (the API's new_cycle, `cllm train --new-cycle`)."""

import io
import os
import subprocess
import sys

from cllm_app.jobs.train import run_training
from cllm_app.store import LanguageModel, LossPoint, ModelEvent

SMALL = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16}
SETTINGS = {"batch_size": 2, "sequence_length": 16, "eval_interval": 50, "checkpoint_interval": 50,
            "target_epochs": 1, "warmup_steps": 2, "learning_rate": 0.002}
TEXT = b"A small book about rivers, mills and bridges, read aloud by the sea. " * 30


def _trained(studio, name):
    studio.models.create(name, **SMALL)
    studio.queue.add_stream(name, io.BytesIO(TEXT), "book.txt")
    job = studio.training.start(name, SETTINGS, foreground=True)
    assert run_training(studio, job["id"]) == "done"
    return LanguageModel.get(LanguageModel.model_name == name)


def _rates(row, after_step):
    return [p.learning_rate for p in LossPoint.select().where((LossPoint.model == row.id) & (LossPoint.step > after_step))
            .order_by(LossPoint.step)]


def test_raised_without_a_new_cycle_the_added_epoch_trains_at_the_floor(studio, client):
    row = _trained(studio, "plain")
    floor = _rates(row, 0)[-1]
    assert floor < 0.002 * 0.11
    r = client.post("/api/models/plain/train", json={"target_epochs": 2})
    assert r.status_code == 202
    assert run_training(studio, r.get_json()["id"]) == "done"
    assert max(_rates(row, row.steps_trained)) <= floor * 1.0001


def test_a_new_cycle_warms_up_to_the_peak_again_and_is_marked_on_the_chart(studio, client):
    row = _trained(studio, "cycled")
    r = client.post("/api/models/cycled/train", json={"target_epochs": 3, "new_cycle": True})
    assert r.status_code == 202 and r.get_json()["params"] == {"new_cycle": True}
    assert run_training(studio, r.get_json()["id"]) == "done"
    rates = _rates(row, row.steps_trained)
    assert max(rates) == 0.002 and rates[-1] < 0.002 * 0.11
    event = ModelEvent.get((ModelEvent.model == row.id) & (ModelEvent.kind == "new_cycle"))
    assert event is not None
    markers = studio.training.history("cycled")["markers"]
    assert [m["detail"]["step"] for m in markers if m["kind"] == "new_cycle"] == [row.steps_trained]


def test_new_cycle_must_be_a_boolean_and_a_refusal_queues_nothing(studio, client):
    _trained(studio, "m")
    r = client.post("/api/models/m/train", json={"target_epochs": 2, "new_cycle": "yes"})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "invalid_new_cycle"
    assert studio.jobs.list("m", active=True) == []


def test_the_cli_takes_new_cycle(studio, home):
    row = _trained(studio, "cli")
    env = {**os.environ, "CLLM_HOME": str(home)}
    p = subprocess.run([sys.executable, "-m", "cllm_app", "train", "cli", "--epochs", "2", "--new-cycle"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    assert max(_rates(row, row.steps_trained)) == 0.002
