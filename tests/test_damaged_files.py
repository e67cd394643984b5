"""A data root that is not as it should be: a checkpoint with a wrong hash gives one message that
names the file; nothing is deleted; training goes on and every other model still works."""

import functools
import io
import json
import os
import subprocess
import sys

from cllm_app.jobs.train import run_training
from cllm_app.jobs.worker import run_here
from cllm_app.services.training import start_training
from cllm_app.store import ModelEvent

SHAPE = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 32}
SETTINGS = {"batch_size": 2, "sequence_length": 32, "target_epochs": 50, "checkpoint_interval": 2,
            "eval_interval": 1000, "warmup_steps": 2}
TEXT = ("It was the best of times, it was the worst of times, it was the age of wisdom, "
        "it was the age of foolishness. ").encode() * 20


def cllm(*args, home):
    env = {**os.environ, "CLLM_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "cllm_app", *args], capture_output=True, text=True, env=env,
                          timeout=120, stdin=subprocess.DEVNULL)


def ok(p):
    assert p.returncode == 0, (p.stdout, p.stderr)
    return p


def _models(studio, trained="a", other="b"):
    for name in (trained, other):
        studio.models.create(name, **SHAPE)
        studio.queue.add_stream(name, io.BytesIO(TEXT + name.encode()), f"{name}.txt")
    return _train(studio, trained, 4)


def _train(studio, name, steps):
    job = start_training(studio, name, SETTINGS)
    studio.jobs.start(job["id"], os.getpid())
    state = run_here(studio, job["id"], functools.partial(run_training, max_steps=steps))
    job = studio.jobs.get(job["id"])
    assert state == "stopped", job["error"]
    return job


def _still_works(home, other="b"):
    listed = json.loads(ok(cllm("models", "list", "--json", home=home)).stdout)
    assert other in [m["model_name"] for m in listed["models"]]
    assert json.loads(ok(cllm("models", "show", other, "--json", home=home)).stdout)["model_name"] == other
    assert ok(cllm("generate", other, "It was", "--max-tokens", "5", "--seed", "1", home=home)).stdout.startswith("It was")
    return listed


def test_a_checkpoint_with_a_wrong_hash_is_skipped_by_name_and_training_goes_on_from_the_one_before(studio, home):
    _models(studio)
    newest = home / "models" / "a" / "checkpoints" / "step-000000004"
    state = newest / "state.safetensors"
    data = bytearray(state.read_bytes())
    data[-5] ^= 0xFF  # one flipped bit in the weights: the file still loads, only its hash tells
    state.write_bytes(bytes(data))
    job = _train(studio, "a", 1)
    assert f"skipped the damaged checkpoint {newest} (state.safetensors does not match the hash" in job["message"]
    assert "went on from step 2" in job["message"]
    events = [json.loads(e.detail) for e in ModelEvent.select().where(ModelEvent.kind == "checkpoint_skipped")]
    assert events == [{"path": str(newest), "reason": "state.safetensors does not match the hash in its DONE marker"}]
    assert studio.models.show("a")["steps_trained"] == 3
    studio.close()
    _still_works(home, other="a")
