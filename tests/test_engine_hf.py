"""Export to Hugging Face's GPT-2 layout and import back: same weights, same logits, and
transformers' GPT2LMHeadModel computes what we compute."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cllm_app.engine.config import GPTConfig
from cllm_app.engine.model import GPT
from cllm_app.engine.weights import load_weights
from cllm_app.kernels import reference

SHAPE = {"n_layer": 2, "n_head": 2, "n_embd": 16, "block_size": 16}


def _noisy(studio, name):
    """Give the model non-trivial weights (as if trained) so the comparison means something."""
    from cllm_app.engine.weights import save_weights

    path = studio.root.model_dir(name) / "model.safetensors"
    rng = np.random.default_rng(0)
    save_weights(path, {k: v + rng.normal(0, 0.05, v.shape).astype(np.float32) for k, v in load_weights(path).items()})
    return load_weights(path)


def _our_logits(cfg, weights, tokens):
    model = GPT(cfg, reference, dtype=np.float64)
    model.params.load({k: v.astype(np.float64) for k, v in weights.items()})
    return model.logits(tokens)


def test_export_then_import_gives_identical_weights_and_logits(studio, tmp_path):
    studio.models.create("src", **SHAPE)
    w = _noisy(studio, "src")
    out = Path(studio.exports.export("src", "hf", str(tmp_path / "hf"))["path"])
    assert {p.name for p in out.iterdir()} >= {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}
    m = studio.models.import_hf(out, "back")
    assert (m["n_layer"], m["n_embd"], m["block_size"], m["vocab_size"]) == (2, 16, 16, 257)
    back = load_weights(studio.root.model_dir("back") / "model.safetensors")
    assert all(np.array_equal(back[k], v) for k, v in w.items())
    cfg = GPTConfig(vocab_size=257, **SHAPE)
    tokens = np.frombuffer(b"hello, world!", np.uint8).astype(np.int32)[None]
    np.testing.assert_array_equal(_our_logits(cfg, w, tokens), _our_logits(cfg, back, tokens))
    assert m["lineage"]["events"][0]["kind"] == "imported"


def test_transformers_gpt2_computes_our_logits(studio, tmp_path):
    import torch
    from transformers import AutoTokenizer, GPT2LMHeadModel

    studio.models.create("hfm", **SHAPE)
    w = _noisy(studio, "hfm")
    out = Path(studio.exports.export("hfm", "hf", str(tmp_path / "hf"))["path"])
    hf = GPT2LMHeadModel.from_pretrained(out).eval()
    text = "Héllo, wörld!"
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok(text)["input_ids"]
    assert ids == list(text.encode("utf-8"))  # the exported tokenizer is our byte tokenizer
    assert tok.decode(ids) == text
    with torch.no_grad():
        theirs = hf(torch.tensor([ids])).logits.numpy()
    ours = _our_logits(GPTConfig(vocab_size=257, **SHAPE), w, np.array([ids], np.int32))
    np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=1e-4)


def test_import_refuses_what_it_cannot_read(studio, tmp_path):
    from cllm_app.errors import InvalidInput

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidInput, match="config.json"):
        studio.models.import_hf(empty)
    bad = tmp_path / "llama"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(InvalidInput, match="only GPT-2"):
        studio.models.import_hf(bad)
    studio.models.create("x", **SHAPE)
    out = Path(studio.exports.export("x", "hf", str(tmp_path / "x"))["path"])
    (out / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InvalidInput, match="cannot be read"):
        studio.models.import_hf(out)
    assert [m["model_name"] for m in studio.models.list()] == ["x"]
    from cllm_app.errors import Conflict

    with pytest.raises(Conflict):
        studio.exports.export("x", "hf", str(out))  # not empty


def test_cli_export_import(home, tmp_path):
    env = {**os.environ, "CLLM_HOME": str(home)}

    def cllm(*a):
        return subprocess.run([sys.executable, "-m", "cllm_app", *a], capture_output=True, text=True, env=env, timeout=60)

    assert cllm("models", "create", "c", "--layers", "1", "--heads", "2", "--dim", "16", "--context", "16").returncode == 0
    p = cllm("export", "c", "--format", "hf", str(tmp_path / "out"))
    assert p.returncode == 0, p.stderr
    p = cllm("import", str(tmp_path / "out"), "c2")
    assert p.returncode == 0 and "imported c2" in p.stdout
    p = cllm("import", str(tmp_path / "out"), "c2")
    assert p.returncode == 2 and p.stderr.startswith("error: ")
