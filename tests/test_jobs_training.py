"""Training as a background job in its own process: progress in the store, stop, and SIGKILL at
any moment then resume giving the same losses as a run never interrupted."""

import json
import os
import signal
import time

import pytest

from cllm_app.engine.checkpoint import list_checkpoints
from cllm_app.engine.config import GPTConfig
from cllm_app.engine.generate import Generator, Sampling
from cllm_app.engine.kernel_choice import decode_kernel
from cllm_app.engine.model import FlatTensors
from cllm_app.engine.tokenizer import load_tokenizer
from cllm_app.engine.weights import load_weights
from cllm_app.jobs.runner import JobRunner
from cllm_app.jobs.train import SAMPLE_SAMPLING, run_training
from cllm_app.procs import spawn_worker
from cllm_app.store import LanguageModel, LossPoint, QueueEntry
from tests.conftest import wait_until

SHAPE = {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 32}
SETTINGS = {"batch_size": 4, "sequence_length": 32, "target_epochs": 3, "eval_interval": 5,
            "checkpoint_interval": 4, "warmup_steps": 5, "learning_rate": 0.003}
TEXT = ("It was the best of times, it was the worst of times, it was the age of wisdom, "
        "it was the age of foolishness, it was the epoch of belief. ").encode()


def _model(studio, name, docs=3, shape=SHAPE):
    studio.models.create(name, **shape)
    import io

    for i in range(docs):
        studio.queue.add_stream(name, io.BytesIO(TEXT * (6 + i) + f" part {i}".encode()), f"part{i}.txt")


def _wait(predicate, timeout=120.0, what="condition"):
    wait_until(predicate, timeout, what)


def _losses(model_name):
    row = LanguageModel.get(LanguageModel.model_name == model_name)
    return [(p.step, p.train_loss) for p in row.loss_history.order_by(LossPoint.step)]


def _job_state(studio, job_id):
    return studio.jobs.get(job_id)["state"]


def test_runner_trains_a_model_to_its_target(studio):
    _model(studio, "r")
    job = studio.training.start("r", SETTINGS)
    runner = JobRunner(studio).start()
    try:
        _wait(lambda: _job_state(studio, job["id"]) in ("done", "failed"), what="the job to finish")
    finally:
        runner.shutdown()
    final = studio.jobs.get(job["id"])
    assert final["state"] == "done", final["error"]
    m = studio.models.show("r")
    assert m["epochs_trained"] == 3 and m["steps_trained"] > 0
    losses = _losses("r")
    assert len(losses) == m["steps_trained"] and losses[-1][1] < losses[0][1]
    assert final["detail"]["step"] == m["steps_trained"] and final["progress"] == pytest.approx(1.0)
    used = [json.loads(e.epochs_used) for e in QueueEntry.select()]
    assert used and all(u == [1, 2, 3] for u in used)  # every queue item records the epochs it was in
    row = LanguageModel.get(LanguageModel.model_name == "r")
    assert any(p.val_loss is not None for p in row.loss_history)


def test_stop_checkpoints_within_a_second_and_continue_resumes(studio):
    _model(studio, "s", docs=4)
    job = studio.training.start("s", {**SETTINGS, "target_epochs": 200})
    runner = JobRunner(studio).start()
    try:
        _wait(lambda: len(_losses("s")) >= 6, what="a few steps")
        t0 = time.monotonic()
        studio.jobs.stop(job["id"])
        _wait(lambda: _job_state(studio, job["id"]) == "stopped", timeout=10, what="the stop")
        assert time.monotonic() - t0 < 2.0
        stopped_at = studio.models.show("s")["steps_trained"]
        assert stopped_at == _losses("s")[-1][0]  # the stop wrote a checkpoint of the last step
        again = studio.training.start("s", {})
        _wait(lambda: len(_losses("s")) >= stopped_at + 3, what="more steps")
        studio.jobs.stop(again["id"])
        _wait(lambda: _job_state(studio, again["id"]) == "stopped", timeout=10, what="the second stop")
    finally:
        runner.shutdown()
    steps = [s for s, _ in _losses("s")]
    assert steps == list(range(1, len(steps) + 1))  # continued, no gap, no repeat
    kinds = [e["kind"] for e in studio.models.show("s")["lineage"]["events"]]
    assert "training_resumed" in kinds


def test_sigkill_at_any_moment_then_resume_gives_the_same_losses(studio, tmp_path):
    _model(studio, "whole")
    studio.models.duplicate("whole", "killed")
    root = studio.root.path
    # the run never interrupted, in a worker process like any job
    # Long enough that the last kill lands well before the end even with fast kernels: a run
    # that finished before its kill would prove nothing (and end "done", not "interrupted").
    long = {**SETTINGS, "target_epochs": 8}
    job = studio.training.start("whole", long)
    proc = spawn_worker(job["id"], root, tmp_path / "whole.log")
    assert proc.wait(timeout=300) == 0, (tmp_path / "whole.log").read_text()
    whole = _losses("whole")
    assert len(whole) > 30
    # the same run, killed with SIGKILL three times at different moments, resumed each time
    for kill_after in (3, 9, 14):
        job = studio.training.start("killed", long if kill_after == 3 else {})
        proc = spawn_worker(job["id"], root, tmp_path / f"killed-{kill_after}.log")
        # This worker's own steps: the killed run before it left losses in the store, and a kill
        # before the worker has even started proves nothing (and leaves the job queued).
        _wait(lambda k=kill_after, p=proc, j=job["id"]: studio.jobs.get(j)["detail"].get("step", 0) >= k
              or p.poll() is not None, what="steps before the kill")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        studio.jobs.recover_orphans()
        assert _job_state(studio, job["id"]) == "interrupted"
    job = studio.training.start("killed", {})
    proc = spawn_worker(job["id"], root, tmp_path / "final.log")
    assert proc.wait(timeout=300) == 0, (tmp_path / "final.log").read_text()
    assert _losses("killed") == whole  # bit for bit, step by step
    assert studio.models.show("killed")["epochs_trained"] == studio.models.show("whole")["epochs_trained"]


def _writes(folder, weights, sampling: dict) -> str:
    """What `weights` write with these settings, through the generation service's decode path."""
    cfg = GPTConfig.load(folder / "config.json")
    params = FlatTensors(cfg)
    params.load(weights)
    step, _ = decode_kernel(cfg, params)
    gen = Generator(cfg, params, load_tokenizer(folder, "byte"), step, context=SETTINGS["sequence_length"])
    return "".join(gen.text("", Sampling(**sampling)))


def test_the_sample_at_an_evaluation_is_what_the_checkpoint_of_that_step_writes(studio, tmp_path):
    # A block twice the training context: a 120-token sample written past the 32 trained
    # positions (where position embeddings are still random) was the noise the issue saw.
    _model(studio, "s", docs=4, shape={**SHAPE, "block_size": 64})
    folder = studio.models.folder(studio.models.get("s"))
    initial = load_weights(folder / "model.safetensors")
    # evaluations and checkpoints at the same steps; the last three checkpoints are kept. A first
    # part here stops after 6 steps, so the worker's samples come from a resumed run.
    first = studio.training.start("s", {**SETTINGS, "eval_interval": 4, "checkpoint_interval": 4}, foreground=True)
    assert run_training(studio, first["id"], max_steps=6) == "stopped"
    job = studio.training.start("s", {})
    proc = spawn_worker(job["id"], studio.root.path, tmp_path / "s.log")  # a worker process, as in the window
    assert proc.wait(timeout=300) == 0, (tmp_path / "s.log").read_text()
    samples = studio.jobs.get(job["id"])["detail"]["samples"]
    assert samples[0]["step"] > 6 and len(samples) == 5 and all(s["sampling"] == {**SAMPLE_SAMPLING, "seed": s["step"]} for s in samples)
    checkpoints = {int(p.name.split("-")[1]): p for p in list_checkpoints(folder / "checkpoints")}
    compared = 0
    for sample in samples:
        if sample["step"] not in checkpoints:
            continue
        tensors = load_weights(checkpoints[sample["step"]] / "state.safetensors")
        weights = {k[len("param."):]: v for k, v in tensors.items() if k.startswith("param.")}
        assert sample["text"] == _writes(folder, weights, sample["sampling"]), sample["step"]
        # and not what the fresh model, before any step, writes with that seed
        assert sample["text"] != _writes(folder, initial, sample["sampling"])
        compared += 1
    assert compared >= 2, (sorted(checkpoints), [s["step"] for s in samples])


def test_a_job_runs_every_thread_below_the_app_s_priority(studio, monkeypatch):
    from cllm_app.procs import JOB_NICENESS
    from cllm_app.store import Job

    monkeypatch.delenv("CLLM_JOB_NICENESS", raising=False)  # the suite runs its jobs at 0 (conftest)
    _model(studio, "n")
    job = studio.training.start("n", {**SETTINGS, "target_epochs": 200})
    runner = JobRunner(studio).start()
    try:
        _wait(lambda: len(_losses("n")) >= 2, what="a few steps")  # its kernels' threads are running
        pid = Job.get_by_id(job["id"]).pid
        nice = {}
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                nice[tid] = int(f.read().rsplit(")", 1)[1].split()[16])
        studio.jobs.stop(job["id"])
        _wait(lambda: _job_state(studio, job["id"]) == "stopped", what="the stop")
    finally:
        runner.shutdown()
    assert len(nice) > 1  # the worker's threads (OpenMP's, OpenBLAS's), not only its main one
    assert set(nice.values()) == {min(19, os.getpriority(os.PRIO_PROCESS, 0) + JOB_NICENESS)}
