"""Training bundles (issue 13): `cllm bundle NAME DIR` writes a folder that trains under torchrun
in a virtual environment with torch and nothing of CLLM Studio, and `cllm bundle import DIR`
brings the result back into the same model, refusing any other model or an older state."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cllm_app.engine.token_shards import HEADER, MAGIC, read_documents
from cllm_app.errors import Conflict, InvalidInput
from cllm_app.jobs.train import run_training
from cllm_app.store import LanguageModel, LossPoint

SHAPE = {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 32}
SETTINGS = {"batch_size": 8, "sequence_length": 32, "target_epochs": 1, "eval_interval": 4,
            "checkpoint_interval": 3, "warmup_steps": 3, "learning_rate": 0.003}
TEXT = ("It was the best of times, it was the worst of times, it was the age of wisdom, "
        "it was the age of foolishness, it was the epoch of belief. ").encode()


def _model(studio, name, docs=4):
    studio.models.create(name, **SHAPE)
    for i in range(docs):
        studio.queue.add_stream(name, io.BytesIO(TEXT * (6 + i) + f" part {i}".encode()), f"part{i}.txt")


def _train(studio, name, settings) -> str:
    job = studio.training.start(name, settings, foreground=True)
    return run_training(studio, job["id"])


def _losses(name) -> list[tuple[int, float]]:
    row = LanguageModel.get(LanguageModel.model_name == name)
    return [(p.step, p.train_loss) for p in row.loss_history.order_by(LossPoint.step)]


@pytest.fixture(scope="module")
def torch_venv(tmp_path_factory) -> Path:
    """A virtual environment with torch, numpy and safetensors, and nothing of CLLM Studio."""
    venv = tmp_path_factory.mktemp("venv") / "torch-only"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "torch==2.13.0", "numpy",
                           "safetensors"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return venv


def _in_venv(venv: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "CLLM_HOME")}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    return env


def test_a_bundle_holds_the_model_its_checkpoint_its_data_and_the_code(studio, tmp_path):
    _model(studio, "b")
    assert _train(studio, "b", {**SETTINGS, "checkpoint_interval": 2}) == "done"
    out = studio.bundles.export("b", str(tmp_path / "bundle"))
    folder = Path(out["path"])
    bundle = json.loads((folder / "bundle.json").read_text())
    steps = studio.models.show("b")["steps_trained"]
    assert bundle["start"]["step"] == steps and bundle["settings"]["batch_size"] == 8
    assert [p.name for p in (folder / "checkpoints").iterdir()] == [f"step-{steps:09d}"]
    assert (folder / "model" / "model.safetensors").is_file() and os.access(folder / "launch.sh", os.X_OK)
    # the shards: the documented header, then the queue's tokens, every document once
    shard = (folder / "data" / "train-000.bin").read_bytes()
    magic, version, itemsize, count = HEADER.unpack(shard[: HEADER.size])
    assert (magic, version, itemsize) == (MAGIC, 1, 2) and count == (len(shard) - 64) // 2
    docs = {i: t for i, _k, t in read_documents(folder / "data")}
    queue = {d.doc_id: d.tokens for d in studio.training.documents(studio.models.get("b"))}
    assert docs.keys() == queue.keys() and all(np.array_equal(docs[i], queue[i]) for i in docs)
    assert any(p.name.startswith("val-") for p in (folder / "data").iterdir())
    # our code that trains, and none of the app around it
    code = {str(p.relative_to(folder / "cllm_app")) for p in (folder / "cllm_app").rglob("*.py")}
    assert {"engine/trainer.py", "engine/torch_numerics.py", "engine/torch_model.py", "engine/checkpoint.py",
            "training_settings.py", "__init__.py"} <= code
    assert not any(p.startswith(("api/", "services/", "store/", "jobs/", "kernels/")) for p in code)
    readme = (folder / "README.md").read_text()
    assert "torchrun --standalone --nproc_per_node 8 train.py" in readme and "--nnodes 2" in readme
    assert "{" not in readme  # every blank filled


def test_a_bundle_trains_under_torchrun_without_cllm_and_comes_back(studio, tmp_path, torch_venv):
    _model(studio, "out")
    assert _train(studio, "out", SETTINGS) == "done"  # epoch 1 in the app, on the built-in engine
    studio.models.configure("out", target_epochs=3)
    studio.models.duplicate("out", "twin")  # the same run, trained in the app, to compare with
    bundle = Path(studio.bundles.export("out", str(tmp_path / "bundle"))["path"])
    env = _in_venv(torch_venv)
    nothing_of_ours = subprocess.run(["python", "-c", "import cllm_app"], env=env, cwd=tmp_path, capture_output=True)
    assert nothing_of_ours.returncode != 0  # the venv has torch and not CLLM Studio

    short = subprocess.run([str(bundle / "launch.sh"), "--nproc", "2", "--max-steps", "4", "--device", "cpu"],
                           env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert short.returncode == 0, short.stdout[-3000:] + short.stderr[-3000:]
    assert "paused at step" in short.stdout
    rest = subprocess.run([str(bundle / "launch.sh"), "--nproc", "2", "--device", "cpu"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert rest.returncode == 0, rest.stdout[-3000:] + rest.stderr[-3000:]
    assert "done at step" in rest.stdout

    before = _losses("out")
    imported = studio.bundles.import_(str(bundle))
    shown = studio.models.show("out")
    assert shown["epochs_trained"] == 3 and imported["imported"]["processes"] == 2
    after = _losses("out")
    assert after[: len(before)] == before and [s for s, _ in after] == list(range(1, len(after) + 1))
    events = [e for e in shown["lineage"]["events"] if e["kind"] == "trained_outside"]
    assert events and events[-1]["detail"]["summary"] == "trained outside the app (2 processes, cpu)"
    assert any(m["kind"] == "trained_outside" for m in studio.training.history("out")["markers"])

    # the same epochs trained in the app on two PyTorch processes: the same losses
    assert _train(studio, "twin", {"engine": "torch", "device": "cpu", "nproc": 2}) == "done"
    twin = _losses("twin")
    assert [s for s, _ in twin] == [s for s, _ in after]
    np.testing.assert_allclose([v for _, v in after], [v for _, v in twin], rtol=1e-5)
    assert shown["steps_trained"] == studio.models.show("twin")["steps_trained"]

    # and the app goes on from the imported checkpoint, with either engine
    studio.models.configure("out", target_epochs=4)
    assert _train(studio, "out", {"engine": "builtin"}) == "done"
    assert studio.models.show("out")["epochs_trained"] == 4


def test_a_bundle_goes_back_only_into_its_own_model_as_it_was(studio, tmp_path):
    _model(studio, "mine")
    assert _train(studio, "mine", SETTINGS) == "done"
    studio.models.configure("mine", target_epochs=2)
    studio.models.duplicate("mine", "copy")
    bundle = studio.bundles.export("mine", str(tmp_path / "b"))["path"]
    with pytest.raises(InvalidInput) as e:
        studio.bundles.import_(bundle)
    assert e.value.code == "bundle_untrained" and "run its launch.sh first" in str(e.value)
    # as if it had trained outside: a newer checkpoint in the bundle
    from cllm_app.engine.checkpoint import load_latest, save_checkpoint

    ck = load_latest(Path(bundle) / "checkpoints")
    save_checkpoint(Path(bundle) / "checkpoints", ck.step + 5, ck.tensors, {**ck.meta, "epoch": 1})
    with pytest.raises(Conflict) as e:
        studio.bundles.import_(bundle, "copy")
    assert e.value.code == "bundle_other_model" and "'mine', not from 'copy'" in str(e.value)
    assert _train(studio, "mine", {}) == "done"  # the model trained on in the app meanwhile
    with pytest.raises(Conflict) as e:
        studio.bundles.import_(bundle)
    assert e.value.code == "bundle_outdated" and "Make a new bundle" in str(e.value)
    with pytest.raises(InvalidInput) as e:
        studio.bundles.import_(str(tmp_path))
    assert e.value.code == "not_a_bundle"
    with pytest.raises(Conflict) as e:
        studio.bundles.export("mine", bundle)
    assert e.value.code == "bundle_exists"
    assert not list(tmp_path.glob(".*partial*"))  # a refused export leaves nothing behind


def test_cllm_bundle_and_bundle_import(home, tmp_path):
    """`cllm bundle NAME DIR` and `cllm bundle import DIR`, as typed (relative folders included)."""
    from cllm_app.services.studio import Studio

    studio = Studio(home)
    _model(studio, "cli")
    studio.close()
    env = {**os.environ, "CLLM_HOME": str(home)}
    cllm = [sys.executable, "-m", "cllm_app"]
    made = subprocess.run([*cllm, "bundle", "cli", "out"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert f"wrote the training bundle of cli to {tmp_path / 'out'}" in made.stdout
    assert f"cllm bundle import {tmp_path / 'out'}" in made.stdout
    back = subprocess.run([*cllm, "bundle", "import", "out"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert back.returncode == 2 and "run its launch.sh first" in back.stderr
    with pytest.raises(InvalidInput) as e:
        Studio(home).bundles.export("cli", "relative/folder")
    assert e.value.code == "invalid_path" and "full path" in str(e.value)
