"""`cllm import FILE.gguf`: a llama.cpp `gpt2` GGUF back as a model. What we export comes back
the same (weights, logits, tokenizer), the imported model generates and trains, and what the
app cannot hold is refused in words, with no model made."""

import os
import subprocess
import sys

import gguf
import numpy as np
import pytest

from cllm_app.engine import gguf_export
from cllm_app.engine.config import GPTConfig
from cllm_app.engine.generate import Sampling
from cllm_app.engine.model import GPT
from cllm_app.engine.tokenizer import load_tokenizer
from cllm_app.engine.weights import init_weights, load_weights, save_weights
from cllm_app.errors import Conflict, InvalidInput
from cllm_app.jobs.train import run_training
from cllm_app.kernels import reference
from cllm_app.services.generator_process import read_generator
from tests.bpe_support import corpus_files, varied_texts

SHAPE = {"n_layer": 2, "n_head": 2, "n_embd": 16, "block_size": 16}
TEXT = "Héllo, wörld! 日本語 😀"


def _noisy(studio, name):
    """Non-trivial weights (as if trained), so that a comparison means something."""
    path = studio.root.model_dir(name) / "model.safetensors"
    rng = np.random.default_rng(0)
    save_weights(path, {k: v + rng.normal(0, 0.05, v.shape).astype(np.float32) for k, v in load_weights(path).items()})
    return load_weights(path)


def _export(studio, name, path, dtype="f32"):
    """The model's files through the exporter (engine/gguf_export.py), as the export service writes them."""
    row = studio.models.get(name)
    folder = studio.models.folder(row)
    bpe_json = (folder / "tokenizer.json").read_text(encoding="utf-8") if row.tokenizer == "bpe" else None
    gguf_export.write_gguf(path, name, studio.models.config_of(row), load_weights(folder / "model.safetensors"),
                           row.tokenizer, bpe_json, dtype)
    return path


def _logits(cfg, weights, tokens):
    model = GPT(cfg, reference, dtype=np.float64)
    model.params.load({k: v.astype(np.float64) for k, v in weights.items()})
    return model.logits(np.asarray(tokens, np.int32)[None])


def _weights_of(studio, name):
    return load_weights(studio.root.model_dir(name) / "model.safetensors")


def test_a_byte_model_comes_back_bit_for_bit(studio, tmp_path):
    studio.models.create("src", **SHAPE)
    w = _noisy(studio, "src")
    m = studio.models.import_gguf(_export(studio, "src", tmp_path / "src.gguf"), "back")
    assert (m["n_layer"], m["n_head"], m["n_embd"], m["block_size"], m["vocab_size"]) == (2, 2, 16, 16, 257)
    assert m["tokenizer"] == "byte"
    assert m["lineage"]["events"][0]["kind"] == "imported"
    assert not (studio.root.model_dir("back") / "tokenizer.json").exists()
    back = _weights_of(studio, "back")
    assert back.keys() == w.keys()
    assert all(back[k].dtype == np.float32 and np.array_equal(back[k], v) for k, v in w.items())
    cfg = GPTConfig(vocab_size=257, **SHAPE)
    tokens = list(TEXT.encode("utf-8"))[:16]
    np.testing.assert_array_equal(_logits(cfg, back, tokens), _logits(cfg, w, tokens))


def test_f16_comes_back_as_the_rounded_weights(studio, tmp_path):
    studio.models.create("src", **SHAPE)
    w = _noisy(studio, "src")
    studio.models.import_gguf(_export(studio, "src", tmp_path / "src-f16.gguf", "f16"), "back")
    back = _weights_of(studio, "back")
    # f16 rounds the matrices but the position embedding (as llama.cpp's converter does); the
    # vectors (LayerNorm, biases) stay f32
    rounded = {k: v.astype(np.float16).astype(np.float32) if v.ndim == 2 and k != "wpe.weight" else v
               for k, v in w.items()}
    assert any(not np.array_equal(rounded[k], w[k]) for k in w)
    assert all(np.array_equal(back[k], v) for k, v in rounded.items())
    cfg = GPTConfig(vocab_size=257, **SHAPE)
    tokens = list(b"once upon a time")
    np.testing.assert_array_equal(_logits(cfg, back, tokens), _logits(cfg, rounded, tokens))


def test_a_bpe_model_comes_back_with_the_same_tokenizer(studio, tmp_path, monkeypatch):
    data = [str(p) for p in corpus_files(tmp_path)]
    studio.models.create("src", tokenizer="bpe", vocab_size=600, tokenizer_data=data, **SHAPE)
    w = _noisy(studio, "src")
    path = _export(studio, "src", tmp_path / "bpe.gguf")
    m = studio.models.import_gguf(path, "back")
    assert (m["tokenizer"], m["vocab_size"]) == ("bpe", 600)
    src_folder, back_folder = studio.root.model_dir("src"), studio.root.model_dir("back")
    assert (back_folder / "tokenizer.json").read_bytes() == (src_folder / "tokenizer.json").read_bytes()
    ours, theirs = load_tokenizer(src_folder, "bpe"), load_tokenizer(back_folder, "bpe")
    assert (theirs.fingerprint, theirs.eot, theirs.encoder) == (ours.fingerprint, ours.eot, ours.encoder)
    for text in varied_texts(n=100):
        assert np.array_equal(theirs.encode(text), ours.encode(text))
    back = _weights_of(studio, "back")
    assert all(np.array_equal(back[k], v) for k, v in w.items())
    cfg = GPTConfig(vocab_size=600, **SHAPE)
    tokens = ours.encode(TEXT)[:16]
    np.testing.assert_array_equal(_logits(cfg, back, tokens), _logits(cfg, w, tokens))
    # Another split of the text would make other tokens than the model learned on.
    original = gguf.GGUFWriter.add_tokenizer_pre
    monkeypatch.setattr(gguf.GGUFWriter, "add_tokenizer_pre", lambda self, _pre: original(self, "llama-bpe"))
    _export(studio, "src", tmp_path / "llama-bpe.gguf")
    with pytest.raises(InvalidInput, match="'llama-bpe' pre-tokenizer"):
        studio.models.import_gguf(tmp_path / "llama-bpe.gguf", "other")


def test_the_imported_model_generates_and_trains(studio, tmp_path):
    studio.models.create("src", **SHAPE)
    _noisy(studio, "src")
    studio.models.import_gguf(_export(studio, "src", tmp_path / "src.gguf"), "back")
    greedy = Sampling(max_new_tokens=12, temperature=0, repetition_penalty=1.0)
    said = {}
    for name in ("src", "back"):
        row = studio.models.get(name)
        said[name] = list(read_generator(studio.models.folder(row), row.tokenizer, 16).tokens(list(b"Hi"), greedy))
    assert len(said["back"]) == 12 and said["back"] == said["src"]
    studio.queue.add_text("back", "the quick brown fox jumps over the lazy dog. " * 20, origin="a.txt", source_kind="file")
    job = studio.training.start("back", {"batch_size": 2, "sequence_length": 16, "target_epochs": 1,
                                         "warmup_steps": 1, "eval_interval": 2, "checkpoint_interval": 2})
    assert run_training(studio, job["id"], max_steps=2) in ("done", "stopped")
    trained = _weights_of(studio, "back")
    assert all(np.isfinite(v).all() for v in trained.values())
    assert not np.array_equal(trained["wte.weight"], _weights_of(studio, "src")["wte.weight"])


def test_a_gguf_without_an_output_head_is_tied_as_llama_cpp_ties_it(studio, tmp_path, monkeypatch):
    studio.models.create("src", **SHAPE)
    w = _noisy(studio, "src")
    _tampered(monkeypatch, tensors=lambda t: t.pop("output.weight"))
    studio.models.import_gguf(_export(studio, "src", tmp_path / "headless.gguf"), "back")
    assert all(np.array_equal(_weights_of(studio, "back")[k], v) for k, v in w.items())


SKIP = object()


def _tampered(monkeypatch, tensors=None, **writer):
    """The exporter, changed: `tensors` edits a dict of the tensors it writes (in place); each
    writer method named is called with the value given instead (or not at all for SKIP)."""
    if tensors is not None:
        made = gguf_export.gguf_tensors

        def edited(*args, **kwargs):
            out = dict(made(*args, **kwargs))
            tensors(out)
            yield from out.items()

        monkeypatch.setattr(gguf_export, "gguf_tensors", edited)
    for method, value in writer.items():
        original = getattr(gguf.GGUFWriter, method)
        monkeypatch.setattr(gguf.GGUFWriter, method,
                            lambda self, _v, original=original, value=value: None if value is SKIP else original(self, value))


def _untie(t):
    t["output.weight"] = t["token_embd.weight"] + 1


@pytest.mark.parametrize("tensors, writer, refusal", [
    (lambda t: t.pop("blk.1.ffn_up.bias"), {}, "lacks 1 tensors .* e.g. blk.1.ffn_up.bias"),
    (lambda t: t.update({"blk.2.attn_norm.weight": t["blk.1.attn_norm.weight"]}), {}, "does not have, e.g. blk.2"),
    (_untie, {}, r"output head \(output.weight\) of its own"),
    (lambda t: t.update({"position_embd.weight": t["position_embd.weight"][:8]}), {}, "position_embd.weight has shape"),
    (None, {"add_block_count": SKIP}, "lacks the key gpt2.block_count"),
    (None, {"add_head_count": 3}, r"n_embd \(16\) must be a multiple of n_head \(3\)"),
    (None, {"add_tokenizer_model": "llama"}, "'llama' tokenizer"),
    (None, {"add_feed_forward_length": 48}, "feed-forward width of 48"),
    (None, {"add_layer_norm_eps": 1e-6}, "LayerNorm epsilon"),
    (None, {"add_eos_token_id": 10}, r"ends text with token 10, not <\|endoftext\|> \(256\)"),
], ids=["missing tensor", "extra block", "untied head", "wrong shape", "missing key", "uneven heads",
        "sentencepiece", "feed-forward", "epsilon", "eos"])
def test_what_the_app_cannot_hold_is_refused(studio, tmp_path, monkeypatch, tensors, writer, refusal):
    studio.models.create("src", **SHAPE)
    _tampered(monkeypatch, tensors, **writer)
    path = _export(studio, "src", tmp_path / "odd.gguf")
    with pytest.raises(InvalidInput, match=refusal) as refused:
        studio.models.import_gguf(path, "back")
    assert refused.value.code in ("import_refused", "invalid_n_embd")
    assert [m["model_name"] for m in studio.models.list()] == ["src"]


def test_other_architectures_quantized_files_and_damaged_files_are_refused(studio, tmp_path):
    llama = tmp_path / "llama.gguf"
    writer = gguf.GGUFWriter(str(llama), "llama")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(InvalidInput, match="holds a 'llama' model; only GPT-2") as refused:
        studio.models.import_gguf(llama)
    assert refused.value.code == "import_refused"

    studio.models.create("src", **SHAPE)
    q8 = _export(studio, "src", tmp_path / "q8.gguf", "q8_0")
    with pytest.raises(InvalidInput, match="holds q8_0 tensors .*only f32 and f16"):
        studio.models.import_gguf(q8)

    text = tmp_path / "notes.gguf"
    text.write_text("not a model at all\n")
    with pytest.raises(InvalidInput, match="notes.gguf is not a GGUF file"):
        studio.models.import_gguf(text)
    with pytest.raises(InvalidInput, match="is not a file"):
        studio.models.import_gguf(tmp_path)
    with pytest.raises(InvalidInput, match="is not a file"):
        studio.models.import_gguf(tmp_path / "missing.gguf")

    whole = _export(studio, "src", tmp_path / "whole.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    for size in (0, 3):
        cut.write_bytes(whole[:size])
        with pytest.raises(InvalidInput, match="not a GGUF file"):
            studio.models.import_gguf(cut)
    for size in (30, 200, len(whole) // 3, len(whole) // 2, len(whole) - 1):  # header, keys, tensors
        cut.write_bytes(whole[:size])
        with pytest.raises(InvalidInput, match="cut.gguf is a damaged or cut-short GGUF file"):
            studio.models.import_gguf(cut)
    assert [m["model_name"] for m in studio.models.list()] == ["src"]

    with pytest.raises(Conflict, match="already exists"):
        studio.models.import_gguf(tmp_path / "whole.gguf", "SRC")  # names ignore case


def test_cllm_import_takes_a_gguf_file(home, tmp_path):
    cfg = GPTConfig(vocab_size=257, **SHAPE)
    path = tmp_path / "made elsewhere.gguf"
    gguf_export.write_gguf(path, "g", cfg, init_weights(cfg, 0), "byte", None)
    env = {**os.environ, "CLLM_HOME": str(home)}

    def cllm(*args):
        return subprocess.run([sys.executable, "-m", "cllm_app", *args], capture_output=True, text=True, env=env,
                              timeout=60)

    p = cllm("import", str(path), "g")
    assert p.returncode == 0 and "imported g" in p.stdout, p.stderr
    p = cllm("import", str(path))
    assert p.returncode == 0 and "imported model_1" in p.stdout, p.stderr
    p = cllm("import", str(path), "g")
    assert p.returncode == 2 and p.stderr.startswith("error: ") and "already exists" in p.stderr
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    p = cllm("import", str(notes))
    assert p.returncode == 2 and p.stderr == "error: notes.txt is not a GGUF file\n"
