"""The PyTorch engine as a training job (issue 13): chosen per model, shown in the job, one loss
curve across engine changes; DDP over two gloo processes equals one process; a rank killed
fails the job with a plain message and Continue resumes to the losses of a run never killed."""

import io
import os
import signal
from pathlib import Path

import numpy as np

from cllm_app.jobs.train import run_training
from cllm_app.procs import spawn_worker
from cllm_app.store import LanguageModel, LossPoint
from tests.conftest import wait_until

SHAPE = {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 32}
SETTINGS = {"batch_size": 8, "sequence_length": 32, "target_epochs": 2, "eval_interval": 5,
            "checkpoint_interval": 3, "warmup_steps": 4, "learning_rate": 0.003, "grad_accum": 2}
TEXT = ("It was the best of times, it was the worst of times, it was the age of wisdom, "
        "it was the age of foolishness, it was the epoch of belief. ").encode()


def _model(studio, name, docs=3):
    studio.models.create(name, **SHAPE)
    for i in range(docs):
        studio.queue.add_stream(name, io.BytesIO(TEXT * (8 + i) + f" part {i}".encode()), f"part{i}.txt")


def _losses(name) -> list[tuple[int, float]]:
    row = LanguageModel.get(LanguageModel.model_name == name)
    return [(p.step, p.train_loss) for p in row.loss_history.order_by(LossPoint.step)]


def _run_worker(studio, job, log: Path, timeout=300) -> None:
    proc = spawn_worker(job["id"], studio.root.path, log)
    assert proc.wait(timeout=timeout) == 0, log.read_text()


def _rank_pids(studio, job_id: int, rank: int) -> list[int]:
    """The processes of one rank of a job of this data root (job ids repeat across the tests
    running beside this one), found by their command lines and CLLM_HOME."""
    home = f"CLLM_HOME={studio.root.path}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"worker" in args and str(job_id).encode() in args and b"--rank" in args and home in env:
            if args[args.index(b"--rank") + 1] == str(rank).encode():
                found.append(int(entry.name))
    return found


def test_a_model_trains_on_pytorch_and_the_job_says_so(studio):
    _model(studio, "t")
    job = studio.training.start("t", {**SETTINGS, "engine": "torch", "device": "cpu"}, foreground=True)
    assert run_training(studio, job["id"]) == "done"
    shown = studio.models.show("t")
    assert (shown["engine"], shown["device"], shown["nproc"]) == ("torch", "cpu", 1)  # remembered
    assert shown["epochs_trained"] == 2
    engine = studio.jobs.get(job["id"])["detail"]["engine"]
    assert engine["engine"] == "torch" and engine["label"] == "PyTorch · cpu · fp32"
    losses = [loss for _, loss in _losses("t")]
    assert losses[-1] < losses[0] - 0.5
    samples = studio.jobs.get(job["id"])["detail"]["samples"]  # the text written at each evaluation
    assert samples and all(isinstance(x["text"], str) for x in samples)


def test_switching_engines_keeps_one_curve_with_a_marker(studio):
    _model(studio, "s")
    first = studio.training.start("s", {**SETTINGS, "target_epochs": 1}, foreground=True)
    assert run_training(studio, first["id"]) == "done"
    steps = len(_losses("s"))
    second = studio.training.start("s", {"target_epochs": 2, "engine": "torch", "device": "cpu"}, foreground=True)
    assert run_training(studio, second["id"]) == "done"
    assert [s for s, _ in _losses("s")] == list(range(1, 2 * steps + 1))  # one curve, no gap
    markers = [m for m in studio.training.history("s")["markers"] if m["kind"] == "engine_changed"]
    assert len(markers) == 1 and markers[0]["detail"]["step"] == steps
    assert (markers[0]["detail"]["from"], markers[0]["detail"]["to"]) == ("builtin", "torch")


def test_two_gloo_processes_give_the_losses_of_one(studio, tmp_path):
    """batch_size is the global batch: 2 processes take 4 rows each of the 8 one process takes."""
    _model(studio, "one")
    studio.models.duplicate("one", "two")
    _run_worker(studio, studio.training.start("one", {**SETTINGS, "engine": "torch", "device": "cpu"}), tmp_path / "1.log")
    job = studio.training.start("two", {**SETTINGS, "engine": "torch", "device": "cpu", "nproc": 2})
    _run_worker(studio, job, tmp_path / "2.log")
    assert studio.jobs.get(job["id"])["detail"]["engine"]["processes"] == 2
    one, two = _losses("one"), _losses("two")
    assert [s for s, _ in one] == [s for s, _ in two] and len(one) >= 10
    np.testing.assert_allclose([v for _, v in two], [v for _, v in one], rtol=1e-5)


def test_a_killed_rank_fails_the_job_plainly_and_continue_gives_the_same_losses(studio, tmp_path):
    _model(studio, "whole")
    studio.models.duplicate("whole", "killed")
    ddp = {**SETTINGS, "target_epochs": 3, "engine": "torch", "device": "cpu", "nproc": 2}
    _run_worker(studio, studio.training.start("whole", ddp), tmp_path / "whole.log")
    whole = _losses("whole")

    # rank 1 killed: the job fails with a plain message, and does not hang
    job = studio.training.start("killed", ddp)
    proc = spawn_worker(job["id"], studio.root.path, tmp_path / "killed.log")
    wait_until(lambda: studio.jobs.get(job["id"])["detail"].get("step", 0) >= 4 or proc.poll() is not None,
               120, "steps before the kill")
    assert proc.poll() is None, (tmp_path / "killed.log").read_text()
    for pid in _rank_pids(studio, job["id"], 1):
        os.kill(pid, signal.SIGKILL)
    assert proc.wait(timeout=120) != 0 or studio.jobs.get(job["id"])["state"] == "failed"
    failed = studio.jobs.get(job["id"])
    assert failed["state"] == "failed", failed
    assert "training process 2 of 2 was killed (signal 9); Continue resumes from the last checkpoint" in failed["error"]

    # rank 0 (the job's own process) killed: the other rank goes with it
    job = studio.training.start("killed", {})
    proc = spawn_worker(job["id"], studio.root.path, tmp_path / "killed-0.log")
    wait_until(lambda: len(_rank_pids(studio, job["id"], 1)) == 1 and studio.jobs.get(job["id"])["detail"].get("step", 0)
               >= 9 or proc.poll() is not None, 120, "more steps before the second kill")
    assert proc.poll() is None, (tmp_path / "killed-0.log").read_text()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    wait_until(lambda: not _rank_pids(studio, job["id"], 1), 30, "rank 1 to end with rank 0")
    studio.jobs.recover_orphans()
    assert studio.jobs.get(job["id"])["state"] == "interrupted"

    _run_worker(studio, studio.training.start("killed", {}), tmp_path / "final.log")
    killed = _losses("killed")
    assert [s for s, _ in killed] == [s for s, _ in whole]
    np.testing.assert_allclose([v for _, v in killed], [v for _, v in whole], rtol=1e-6)


def test_the_engines_here_are_listed_with_their_devices(client):
    listed = client.get("/api/engines?refresh=1").get_json()["engines"]
    builtin, torch_engine = listed
    assert builtin["name"] == "builtin" and builtin["available"] is True
    assert torch_engine["available"] is True, torch_engine  # the test command installs the extra
    assert torch_engine["version"].startswith("2.")
    assert [d["name"] for d in torch_engine["devices"]][:2] == ["auto", "cpu"]
    assert torch_engine["install"] == "pip install 'cllm-studio[torch]'"


def test_start_refuses_what_the_engine_cannot_do_here(studio, monkeypatch):
    import pytest

    from cllm_app.errors import InvalidInput
    from cllm_app.services import engines

    _model(studio, "m")
    with pytest.raises(InvalidInput) as refused:
        studio.training.start("m", {"engine": "torch", "nproc": 3, "batch_size": 8})
    assert refused.value.code == "invalid_nproc" and "choose a multiple of 3" in str(refused.value)
    with pytest.raises(InvalidInput) as refused:
        studio.training.start("m", {"device": "mps", "nproc": 2})
    assert refused.value.code == "invalid_nproc" and "set nproc to 1" in str(refused.value)
    monkeypatch.setattr(engines.importlib.util, "find_spec", lambda name: None)  # as on a machine without torch
    with pytest.raises(InvalidInput) as refused:
        studio.training.start("m", {"nproc": 1})
    assert refused.value.code == "engine_unavailable"
    assert "pip install 'cllm-studio[torch]'" in str(refused.value)
    assert studio.models.show("m")["engine"] == "torch"  # the choice is kept; the built-in engine still trains
    assert studio.training.start("m", {"engine": "builtin"})["state"] == "queued"
    assert not engines.engines(refresh=True)["engines"][1]["available"]
    monkeypatch.undo()
    assert engines.engines(refresh=True)["engines"][1]["available"]  # the next test sees this machine again


def test_the_app_starts_without_torch(tmp_path):
    """Nothing the app imports to start pulls in torch (it is an optional extra)."""
    import subprocess
    import sys

    code = ("import sys; import cllm_app.cli, cllm_app.api, cllm_app.jobs.runner, cllm_app.jobs.train, "
            "cllm_app.jobs.worker, cllm_app.services.studio; print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_cllm_train_on_two_pytorch_processes(home, tmp_path):
    """`cllm train NAME --engine torch --device cpu --nproc 2`, as a person types it."""
    import subprocess
    import sys

    from cllm_app.services.studio import Studio

    studio = Studio(home)
    _model(studio, "c")
    studio.close()
    env = {**os.environ, "CLLM_HOME": str(home)}
    cllm = [sys.executable, "-m", "cllm_app"]
    done = subprocess.run([*cllm, "train", "c", "--engine", "torch", "--device", "cpu", "--nproc", "2",
                           "--epochs", "1", "--batch-size", "4", "--warmup-steps", "2"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "trained to epoch 1 of 1" in done.stdout
    shown = subprocess.run([*cllm, "models", "show", "c", "--json"], capture_output=True, text=True, env=env)
    import json

    model = json.loads(shown.stdout)
    assert (model["engine"], model["device"], model["nproc"], model["epochs_trained"]) == ("torch", "cpu", 2, 1)
    listed = subprocess.run([*cllm, "engines"], capture_output=True, text=True, env=env, timeout=120)
    assert "PyTorch 2." in listed.stdout and "--device cpu" in listed.stdout


def test_sigkill_of_a_one_process_torch_run_then_continue_is_bit_for_bit(studio, tmp_path):
    _model(studio, "whole")
    studio.models.duplicate("whole", "killed")
    torch_run = {**SETTINGS, "target_epochs": 3, "engine": "torch", "device": "cpu"}
    _run_worker(studio, studio.training.start("whole", torch_run), tmp_path / "whole.log")
    whole = _losses("whole")
    for kill_after in (4, 11):
        job = studio.training.start("killed", torch_run if kill_after == 4 else {})
        proc = spawn_worker(job["id"], studio.root.path, tmp_path / f"killed-{kill_after}.log")
        wait_until(lambda k=kill_after, p=proc, j=job["id"]: studio.jobs.get(j)["detail"].get("step", 0) >= k
                   or p.poll() is not None, 120, "steps before the kill")
        assert proc.poll() is None, (tmp_path / f"killed-{kill_after}.log").read_text()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        studio.jobs.recover_orphans()
        assert studio.jobs.get(job["id"])["state"] == "interrupted"
    _run_worker(studio, studio.training.start("killed", {}), tmp_path / "final.log")
    assert _losses("killed") == whole  # bit for bit, step by step


def test_stop_reaches_every_process_and_checkpoints(studio, tmp_path):
    from cllm_app.jobs.runner import JobRunner

    _model(studio, "s")
    job = studio.training.start("s", {**SETTINGS, "target_epochs": 50, "engine": "torch", "device": "cpu",
                                      "nproc": 2})
    runner = JobRunner(studio).start()
    try:
        wait_until(lambda: studio.jobs.get(job["id"])["detail"].get("step", 0) >= 3, 120, "steps before the stop")
        assert studio.jobs.get(job["id"])["state"] == "running"  # something to stop
        studio.jobs.stop(job["id"])
        wait_until(lambda: studio.jobs.get(job["id"])["state"] == "stopped", 60, "the stop")
    finally:
        runner.shutdown()
    stopped_at = studio.models.show("s")["steps_trained"]
    assert stopped_at == _losses("s")[-1][0]  # the stop wrote a checkpoint of the last step
    assert not _rank_pids(studio, job["id"], 1)  # the other process ended too
