"""When a run ends before its target: a time budget (its plan fitted to the clock), a loss
reached, validation no longer improving; and the best-validation weights kept beside the
latest, served where the model asks for them."""

import io
import time

import numpy as np
import pytest

from cllm_app.engine.checkpoint import load_latest
from cllm_app.engine.config import GPTConfig
from cllm_app.engine.trainer import Document, Trainer, TrainSettings
from cllm_app.engine.weights import init_weights, load_weights
from cllm_app.jobs.train import run_training
from cllm_app.kernels import ops
from cllm_app.services.models import BEST_FILE, WEIGHTS_FILE, served_weights
from cllm_app.store import LanguageModel

CFG = GPTConfig(vocab_size=257, n_layer=1, n_head=2, n_embd=16, block_size=16)
EOT = 256
TEXT = b"The river ran past the mill and under the old stone bridge to the sea. "


def _docs():
    return [Document(i + 1, f"d{i}", np.frombuffer(TEXT * (8 + i), np.uint8)) for i in range(3)]


def _trainer(tmp_path, **kw):
    base = dict(batch_size=2, sequence_length=16, learning_rate=3e-3, target_epochs=50, warmup_steps=2,
                eval_interval=2, checkpoint_interval=1000, seed=7)
    docs = _docs()
    return Trainer(CFG, TrainSettings(**{**base, **kw}), ops, lambda: docs, tmp_path / "ck", init_weights(CFG), EOT)


def test_the_best_loss_and_patience_follow_the_evaluations(tmp_path):
    t = _trainer(tmp_path, early_stop_patience=2, early_stop_min_delta=0.05)
    seen = []
    for step, val in enumerate([3.0, 2.9, 2.88, 2.87, 2.80, 2.9], start=1):
        t.step = step
        seen.append((t._judge(val), t.best["step"], t.stale_evals))
    # 2.88 and 2.87 are better, but not by 0.05 on 2.9: two stale evaluations end the run
    assert seen[:4] == [(None, 1, 0), (None, 2, 0), (None, 3, 1), ("early_stopped", 4, 2)]
    assert t.best == {"step": 5, "loss": 2.80}


def test_early_stopping_ends_the_run_checkpointed_and_resumes_knowing_it(tmp_path):
    t = _trainer(tmp_path, early_stop_patience=1, early_stop_min_delta=10.0)
    assert t.run() == "early_stopped" and t.step == 4  # evaluations at steps 2 and 4
    ck = load_latest(tmp_path / "ck")
    assert ck.meta["step"] == 4 and ck.meta["stale_evals"] == 1 and ck.meta["best"]["step"] in (2, 4)
    again = _trainer(tmp_path, early_stop_patience=1, early_stop_min_delta=10.0)
    assert (again.best, again.stale_evals) == (t.best, 1)


def test_stop_at_loss_ends_at_the_first_evaluation_at_or_below_it(tmp_path):
    t = _trainer(tmp_path, stop_at_loss=100.0)
    assert t.run() == "loss_reached" and t.step == 2


def test_stop_at_loss_watches_the_training_loss_without_a_validation_split(tmp_path):
    t = _trainer(tmp_path, stop_at_loss=100.0, validation_share=0.0)
    assert t.run() == "loss_reached" and t.step == 2 and t.best is None


class FakeClock:
    """time.monotonic for the trainer, moved on by each step: the plan's fitting to the clock
    is checked without depending on how busy the machine is."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now

    def perf_counter(self):
        return time.perf_counter()


def test_a_time_budget_ends_the_run_with_the_rate_decayed_to_its_floor(tmp_path, monkeypatch):
    from cllm_app.engine import trainer as trainer_module

    clock = FakeClock()
    monkeypatch.setattr(trainer_module, "time", clock)
    t = _trainer(tmp_path, minutes=0.03, eval_interval=1000)  # 1.8 s: 180 steps of 10 ms

    def step(r):
        rates.append(r.learning_rate)
        clock.now += 0.01 if r.step < 100 else 0.012  # and the machine gets a little slower

    rates = []
    assert t.run(on_step=step) == "time_up"
    assert 140 <= len(rates) <= 180 and max(rates) == pytest.approx(3e-3)
    # the plan is refitted to the clock as it goes: the rate ends near its floor (3e-4)
    assert rates[-1] < 0.2 * 3e-3
    assert load_latest(tmp_path / "ck").meta["step"] == t.step


def _model(studio, name, **settings):
    studio.models.create(name, **{"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16})
    for i in range(3):
        studio.queue.add_stream(name, io.BytesIO(TEXT * (10 + 3 * i)), f"part{i}.txt")
    base = {"batch_size": 2, "sequence_length": 16, "eval_interval": 3, "checkpoint_interval": 3,
            "warmup_steps": 2, "learning_rate": 0.003}
    return studio.training.start(name, {**base, **settings}, foreground=True)


def test_the_best_weights_are_kept_and_served_where_the_model_asks(studio):
    job = _model(studio, "m", target_epochs=2)
    assert run_training(studio, job["id"]) == "done"
    row = LanguageModel.get(LanguageModel.model_name == "m")
    folder = studio.models.folder(row)
    assert row.best_step is not None and (folder / BEST_FILE).exists()
    shown = studio.models.show("m")
    assert shown["best"] == {"step": row.best_step, "val_loss": row.best_val_loss}
    assert served_weights(folder, row) == folder / WEIGHTS_FILE  # latest by default
    studio.models.configure("m", use_weights="best")
    row = LanguageModel.get_by_id(row.id)
    assert served_weights(folder, row) == folder / BEST_FILE
    # Evaluate on its own validation split now reads the best weights: the trainer's best loss
    result, _ = studio.research.evaluate("m", {"source": "validation"})
    assert result["loss"] == pytest.approx(row.best_val_loss, abs=1e-9)
    best, latest = load_weights(folder / BEST_FILE), load_weights(folder / WEIGHTS_FILE)
    assert best.keys() == latest.keys()
    # layers added: the best weights have the old shape, so they are gone until the next evaluation
    studio.models.configure("m", n_layer=2)
    row = LanguageModel.get_by_id(row.id)
    assert row.best_step is None and not (folder / BEST_FILE).exists()
    assert served_weights(folder, row) == folder / WEIGHTS_FILE


def test_a_time_budget_job_counts_epochs_and_sets_the_target_to_the_epoch_it_was_in(studio):
    job = _model(studio, "t", minutes=0.03, target_epochs=1)
    assert run_training(studio, job["id"]) == "done"
    final = studio.jobs.get(job["id"])
    assert final["message"].startswith("trained for 0.03 minutes")
    row = LanguageModel.get(LanguageModel.model_name == "t")
    assert row.steps_trained > 0 and row.target_epochs >= max(1, row.epochs_trained)
    # a budget trains even past a reached target: Start/Continue are not refused
    again = studio.training.start("t", {})
    assert again["state"] == "queued"


def test_a_time_budget_on_a_trained_model_warms_up_and_decays_again(tmp_path, monkeypatch):
    from cllm_app.engine import trainer as trainer_module

    done = _trainer(tmp_path, target_epochs=1, eval_interval=1000)
    done.run()  # to its target: the rate ends at its floor
    clock = FakeClock()
    monkeypatch.setattr(trainer_module, "time", clock)
    t = _trainer(tmp_path, minutes=0.02, eval_interval=1000)
    rates = []

    def step(r):
        rates.append(r.learning_rate)
        clock.now += 0.01

    assert t.run(on_step=step) == "time_up"
    floor = 3e-4
    assert rates[0] == pytest.approx(floor + (3e-3 - floor) / 2)  # warmup_steps 2, from the floor
    assert max(rates) == pytest.approx(3e-3) and rates[-1] < 0.2 * 3e-3
