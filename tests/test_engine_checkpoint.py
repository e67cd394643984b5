"""Checkpoints are complete, atomic, verified, and the last K are kept."""

import numpy as np

from cllm_app.engine.checkpoint import (
    clean_partials,
    list_checkpoints,
    load_latest,
    save_checkpoint,
)


def _state(step):
    return {"w": np.full((3, 4), step, np.float32), "m.w": np.zeros((3, 4), np.float32)}


def test_round_trip_and_keep_last_k(tmp_path):
    for step in (10, 20, 30, 40):
        save_checkpoint(tmp_path, step, _state(step), {"epoch": 1, "rng": {"s": step}}, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000000030", "step-000000040"]
    ck = load_latest(tmp_path)
    assert ck.step == 40 and ck.meta["rng"] == {"s": 40}
    np.testing.assert_array_equal(ck.tensors["w"], _state(40)["w"])


def test_corrupt_or_partial_checkpoint_falls_back_to_the_one_before(tmp_path):
    save_checkpoint(tmp_path, 1, _state(1), {}, keep=5)
    newest = save_checkpoint(tmp_path, 2, _state(2), {}, keep=5)
    data = bytearray((newest / "state.safetensors").read_bytes())
    data[-1] ^= 0xFF  # a flipped bit on disk
    (newest / "state.safetensors").write_bytes(bytes(data))
    assert load_latest(tmp_path).step == 1
    (newest / "DONE").unlink()  # a write cut off before its marker
    assert load_latest(tmp_path).step == 1
    third = save_checkpoint(tmp_path, 3, _state(3), {}, keep=5)
    (third / "meta.json").write_text("{")
    assert load_latest(tmp_path).step == 1


def test_nothing_there(tmp_path):
    assert load_latest(tmp_path / "none") is None
    assert load_latest(tmp_path) is None


def test_temporary_folders_of_a_killed_write_are_ignored_and_cleaned(tmp_path):
    save_checkpoint(tmp_path, 5, _state(5), {})
    (tmp_path / ".tmp-deadbeef").mkdir()
    (tmp_path / ".tmp-deadbeef" / "state.safetensors").write_bytes(b"half")
    assert load_latest(tmp_path).step == 5
    clean_partials(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["step-000000005"]


def test_same_step_rewrite_replaces(tmp_path):
    save_checkpoint(tmp_path, 7, _state(7), {"a": 1})
    save_checkpoint(tmp_path, 7, _state(8), {"a": 2})
    ck = load_latest(tmp_path)
    assert ck.meta["a"] == 2 and ck.tensors["w"][0, 0] == 8
