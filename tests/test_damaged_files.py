"""A data root that is not as it should be: read-only, a truncated model.safetensors, a checkpoint
with a wrong hash, a damaged cllm.db. Each gives one message that names the file and says what to
do; nothing is deleted; the app still starts and every other model still works."""

import functools
import io
import json
import os
import sqlite3
import subprocess
import sys

import pytest
from disk_support import small_disk

from cllm_app.errors import DamagedFile, as_refusal
from cllm_app.jobs.train import run_training
from cllm_app.jobs.worker import run_here
from cllm_app.services.studio import Studio
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


def refused(p):
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in p.stderr, p.stderr
    return lines[0]


def _models(studio, trained="a", other="b"):
    for name in (trained, other):
        studio.models.create(name, **SHAPE)
        studio.queue.add_stream(name, io.BytesIO(TEXT + name.encode()), f"{name}.txt")
    return _train(studio, trained, 4)


def _train(studio, name, steps):
    job = studio.training.start(name, SETTINGS)
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


def test_a_read_only_data_root_is_refused_at_start_with_one_plain_line(tmp_path):
    with small_disk(tmp_path / "disk", size="8m") as disk:
        home = disk.path / "home"
        s = Studio(home)
        s.models.create("a", **SHAPE)
        s.close()
        disk.read_only()
        try:
            for args in (("models", "list"), ("serve",), ("window",)):
                line = refused(cllm(*args, home=home))
                assert line.startswith(f"error: the data root {home} cannot be written (it is on a read-only disk)")
                assert "set CLLM_HOME to a folder you can write" in line
        finally:
            disk.read_only(False)
        assert [m["model_name"] for m in json.loads(ok(cllm("models", "list", "--json", home=home)).stdout)["models"]] == ["a"]


def test_a_truncated_weights_file_is_named_and_repaired_from_its_checkpoint(studio, home, client):
    _models(studio)
    weights = home / "models" / "a" / "model.safetensors"
    damaged = weights.read_bytes()[: weights.stat().st_size // 2]
    weights.write_bytes(damaged)
    r = client.post("/api/models/a/complete", json={"prompt": "It was", "sampling": {"max_new_tokens": 4}})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "weights_damaged"
    assert str(weights) in r.get_json()["error"]["message"]
    assert client.post("/api/models/b/complete", json={"prompt": "It was", "sampling": {"max_new_tokens": 4}}).status_code == 200
    studio.close()
    _still_works(home)
    line = refused(cllm("generate", "a", "It was", home=home))
    assert f"the weights file {weights} of 'a' is damaged" in line and "`cllm models repair a`" in line
    assert "Error while deserializing" in line or "incomplete" in line.lower()
    assert ok(cllm("models", "show", "a", home=home))
    out = ok(cllm("models", "repair", "a", home=home)).stdout
    assert "from its checkpoint of step 4" in out
    kept = [p for p in weights.parent.iterdir() if p.name.startswith("model.safetensors.damaged-")]
    assert len(kept) == 1 and kept[0].read_bytes() == damaged and str(kept[0]) in out
    assert ok(cllm("generate", "a", "It was", "--max-tokens", "5", home=home)).stdout.startswith("It was")
    assert "nothing to do" in ok(cllm("models", "repair", "a", home=home)).stdout


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


@pytest.mark.parametrize("damage", ["header", "page"])
def test_a_damaged_store_is_moved_aside_and_the_models_come_back_from_their_folders(studio, home, damage):
    _models(studio)
    root_page = studio.database.execute_sql("SELECT rootpage FROM sqlite_master WHERE name = 'models'").fetchone()[0]
    page_size = studio.database.execute_sql("PRAGMA page_size").fetchone()[0]
    studio.close()
    db = home / "cllm.db"
    assert not (home / "cllm.db-wal").exists()
    data = bytearray(db.read_bytes())
    if damage == "header":
        data[:100] = b"\xde\xad" * 50
    else:  # the models table's page, past the schema SQLite reads on opening
        start = (root_page - 1) * page_size
        data[start: start + page_size] = b"\x5a" * page_size
    db.write_bytes(bytes(data))
    p = ok(cllm("models", "list", "--json", home=home))
    warning = p.stderr.strip()
    aside = [f for f in home.iterdir() if f.name.startswith("cllm.db.damaged-")]
    assert len(aside) == 1 and aside[0].read_bytes() == bytes(data)  # kept, byte for byte
    assert warning.startswith(f"warning: the store {db} was damaged (") and f"moved aside as {aside[0]}" in warning
    assert "'a', 'b'" in warning and ".recover" in warning
    assert (home / "logs" / "store-recovered.txt").read_text().strip() == warning[len("warning: "):]
    listed = _still_works(home)
    assert [m["model_name"] for m in listed["models"]] == ["a", "b"]
    a = next(m for m in listed["models"] if m["model_name"] == "a")
    assert a["steps_trained"] == 4 and a["queue"]["items"] == 1
    assert ok(cllm("models", "list", home=home)).stderr == ""  # told once, not at every start
    s = Studio(home)
    try:
        job = _train(s, "a", 1)
        assert s.models.show("a")["steps_trained"] == 5 and "paused at step 5" in job["message"]
        assert [e["kind"] for e in s.models.show("a")["lineage"]["events"]][:1] == ["recovered"]
    finally:
        s.close()


def test_a_worker_never_moves_a_damaged_store_from_under_the_app(studio, home):
    studio.models.create("a", **SHAPE)
    studio.close()
    db = home / "cllm.db"
    damaged = b"\xde\xad" * 50 + db.read_bytes()[100:]
    db.write_bytes(damaged)
    with pytest.raises(DamagedFile, match=f"^the store {db} is damaged .*close CLLM Studio and start it again"):
        Studio(home, recover=False)
    assert db.read_bytes() == damaged and not [f for f in home.iterdir() if ".damaged-" in f.name]


def test_damage_met_after_the_start_is_one_message_too(home):
    # SQLite may find a damaged page only when a query reads it; that says what to do, too.
    refusal = as_refusal(sqlite3.DatabaseError("database disk image is malformed"), "listing", home)
    assert isinstance(refusal, DamagedFile) and refusal.message.startswith(f"the store {home / 'cllm.db'} is damaged")
    assert "start it again" in refusal.message
