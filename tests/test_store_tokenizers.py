"""Creating models with a BPE tokenizer: from files or another model's queue, kept in the model's
folder through rename, duplicate, trash and restore, all or nothing, fixed once trained; the
API (with browser uploads) and the CLI; generation and Hugging Face export/import."""

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cllm_app.engine.bpe import BPETokenizer
from cllm_app.engine.tokenizer import TOKENIZER_FILE, load_tokenizer
from cllm_app.errors import InvalidInput
from cllm_app.services.failpoints import InjectedFailure, armed
from tests.bpe_support import corpus_files, varied_texts
from tests.conftest import snapshot

SHAPE = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 32}


@pytest.fixture
def data_files(tmp_path):
    return [str(p) for p in corpus_files(tmp_path)]


def _bpe_of(studio, name) -> BPETokenizer:
    return load_tokenizer(studio.root.model_dir(name), "bpe")


def test_create_from_files_keeps_tokenizer_json_and_its_size(studio, data_files):
    m = studio.models.create("b", tokenizer="bpe", vocab_size=700, tokenizer_data=data_files, **SHAPE)
    assert (m["tokenizer"], m["vocab_size"]) == ("bpe", 700)
    tok = _bpe_of(studio, "b")
    assert tok.vocab_size == 700
    created = m["lineage"]["events"][0]
    assert created["kind"] == "created" and created["detail"]["tokenizer"]["fingerprint"] == tok.fingerprint
    assert created["detail"]["tokenizer"]["files"] == data_files
    from cllm_app.engine.config import GPTConfig

    assert GPTConfig.load(studio.root.model_dir("b") / "config.json").vocab_size == 700
    from cllm_app.engine.weights import load_weights

    assert load_weights(studio.root.model_dir("b") / "model.safetensors")["wte.weight"].shape == (700, 16)


def test_default_vocab_size_and_training_on_another_models_queue(studio, data_files):
    studio.models.create("src", **SHAPE)
    result = studio.queue.add_files("src", data_files)
    assert result["added"] == 3
    m = studio.models.create("q", tokenizer="bpe", tokenizer_from="SRC", **SHAPE)  # names ignore case
    assert m["vocab_size"] == 4096 == _bpe_of(studio, "q").vocab_size
    assert m["lineage"]["events"][0]["detail"]["tokenizer"]["from_queue_of"] == "src"
    # The same text gives the same tokenizer, whichever way it arrived.
    f = studio.models.create("f", tokenizer="bpe", tokenizer_data=data_files, **SHAPE)
    assert f["vocab_size"] == m["vocab_size"]


def test_tokenizer_travels_with_rename_duplicate_trash_restore(studio, data_files):
    studio.models.create("t", tokenizer="bpe", vocab_size=600, tokenizer_data=data_files, **SHAPE)
    fp = _bpe_of(studio, "t").fingerprint
    studio.models.rename("t", "t2")
    assert _bpe_of(studio, "t2").fingerprint == fp and not studio.root.model_dir("t").exists()
    dup = studio.models.duplicate("t2", "t3")
    assert (dup["tokenizer"], dup["vocab_size"]) == ("bpe", 600) and _bpe_of(studio, "t3").fingerprint == fp
    entry = studio.models.delete("t2", confirm=True)
    trashed = studio.root.trash_dir / next(p.name for p in studio.root.trash_dir.iterdir())
    assert (trashed / TOKENIZER_FILE).is_file()
    back = studio.models.restore(entry["id"])
    assert back["tokenizer"] == "bpe" and _bpe_of(studio, "t2").fingerprint == fp


def _refused(studio, match, **fields):
    before = snapshot(studio.root.path)
    with pytest.raises(InvalidInput, match=match):
        studio.models.create("nope", **{**SHAPE, **fields})
    assert studio.models.list() == [] and snapshot(studio.root.path) == before


def test_bad_tokenizer_input_is_refused_and_leaves_nothing(studio, tmp_path, data_files):
    binary = tmp_path / "b.bin"
    binary.write_bytes(b"text\x00\x01\x02" * 400)
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\xe9 ".encode("latin-1") * 400)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    blank = tmp_path / "blank.txt"
    blank.write_text(" \n\t" * 500)
    cut = tmp_path / "cut.txt"
    cut.write_bytes(("word " * 500).encode() + "é".encode()[:1])
    _refused(studio, "does not exist", tokenizer="bpe", tokenizer_data=[str(tmp_path / "missing.txt")])
    _refused(studio, "looks binary", tokenizer="bpe", tokenizer_data=data_files + [str(binary)])
    _refused(studio, r"not UTF-8 text \(byte 3 ", tokenizer="bpe", tokenizer_data=[str(latin)])
    _refused(studio, "is empty", tokenizer="bpe", tokenizer_data=[str(empty)])
    _refused(studio, "only white space", tokenizer="bpe", tokenizer_data=[str(blank)])
    _refused(studio, "middle of a UTF-8 character", tokenizer="bpe", tokenizer_data=[str(cut)])
    _refused(studio, "is a folder", tokenizer="bpe", tokenizer_data=[str(tmp_path)])
    _refused(studio, "non-empty list", tokenizer="bpe", tokenizer_data=[])
    _refused(studio, "non-empty list", tokenizer="bpe", tokenizer_data="a.txt")
    _refused(studio, "one of the two", tokenizer="bpe")
    _refused(studio, "one of the two", tokenizer="bpe", tokenizer_data=data_files, tokenizer_from="x")
    _refused(studio, "512 to 32768", tokenizer="bpe", vocab_size=100, tokenizer_data=data_files)
    _refused(studio, "one of: byte, bpe", tokenizer="wordpiece")
    _refused(studio, "needs no training", tokenizer_data=data_files)
    _refused(studio, "at least 1,024 bytes", tokenizer="bpe", tokenizer_data=[str(_small(tmp_path))])
    _refused(studio, "fewer than the 32,768", tokenizer="bpe", vocab_size=32768, tokenizer_data=data_files[:1])


def _small(tmp_path):
    p = tmp_path / "small.txt"
    p.write_text("a little text\n")
    return p


def test_training_on_an_empty_or_missing_queue_is_refused(studio):
    from cllm_app.errors import NotFound

    studio.models.create("empty", **SHAPE)
    with pytest.raises(InvalidInput, match="queue of 'empty' is empty"):
        studio.models.create("x", tokenizer="bpe", tokenizer_from="empty")
    with pytest.raises(NotFound):
        studio.models.create("x", tokenizer="bpe", tokenizer_from="ghost")
    assert [m["model_name"] for m in studio.models.list()] == ["empty"]


@pytest.mark.parametrize("point", ["create.files", "create.commit"])
def test_a_failure_while_creating_a_bpe_model_leaves_nothing(studio, data_files, point):
    before = snapshot(studio.root.path)
    with armed(point), pytest.raises(InjectedFailure):
        studio.models.create("fp", tokenizer="bpe", vocab_size=600, tokenizer_data=data_files, **SHAPE)
    assert studio.models.list() == [] and snapshot(studio.root.path) == before
    assert not [p for p in studio.root.models_dir.iterdir()]


def test_tokenizer_can_change_until_the_model_has_trained(studio, data_files):
    studio.models.create("c", **SHAPE)
    m = studio.models.set_tokenizer("c", "bpe", 600, tokenizer_data=data_files)
    assert (m["tokenizer"], m["vocab_size"]) == ("bpe", 600) and (studio.root.model_dir("c") / TOKENIZER_FILE).is_file()
    assert m["lineage"]["events"][-1]["kind"] == "tokenizer_changed"
    m = studio.models.set_tokenizer("c", "byte")
    assert (m["tokenizer"], m["vocab_size"]) == ("byte", 257) and not (studio.root.model_dir("c") / TOKENIZER_FILE).exists()
    with armed("tokenizer.commit"), pytest.raises(InjectedFailure):
        studio.models.set_tokenizer("c", "bpe", 600, tokenizer_data=data_files)
    assert studio.models.show("c")["tokenizer"] == "byte" and not (studio.root.model_dir("c") / TOKENIZER_FILE).exists()

    studio.models.set_tokenizer("c", "bpe", 600, tokenizer_data=data_files)
    from cllm_app.store import LanguageModel

    LanguageModel.update(steps_trained=10).where(LanguageModel.model_name == "c").execute()
    before = snapshot(studio.root.path)
    with pytest.raises(InvalidInput, match="fixed: it has trained") as e:
        studio.models.set_tokenizer("c", "byte")
    assert e.value.code == "tokenizer_locked" and snapshot(studio.root.path) == before


def test_streamed_generation_equals_decoding_all_tokens(studio, data_files):
    from cllm_app.engine.generate import Sampling
    from cllm_app.services.generator_process import read_generator

    studio.models.create("g", tokenizer="bpe", vocab_size=600, tokenizer_data=data_files, **SHAPE)
    row = studio.models.get("g")
    gen = read_generator(studio.models.folder(row), row.tokenizer, row.sequence_length)
    assert gen.tok.kind == "bpe"
    s = Sampling(temperature=1.5, top_k=0, top_p=1.0, max_new_tokens=120, seed=4)
    ids = list(gen.tokens(list(gen.tok.encode("日本語 der")), s))
    pieces = list(gen.text("日本語 der", s))
    assert len(ids) > 20 and "".join(pieces) == gen.tok.decode(ids)


# ---- Hugging Face ----------------------------------------------------------------------------


def _noisy(studio, name):
    from cllm_app.engine.weights import load_weights, save_weights

    path = studio.root.model_dir(name) / "model.safetensors"
    rng = np.random.default_rng(0)
    save_weights(path, {k: v + rng.normal(0, 0.05, v.shape).astype(np.float32) for k, v in load_weights(path).items()})
    return load_weights(path)


def _logits(cfg, weights, ids):
    from cllm_app.engine.model import GPT
    from cllm_app.kernels import reference

    model = GPT(cfg, reference, dtype=np.float64)
    model.params.load({k: v.astype(np.float64) for k, v in weights.items()})
    return model.logits(np.array([ids], np.int32))


def test_hf_export_loads_in_transformers_and_imports_back_the_same(studio, data_files, tmp_path):
    import torch
    from transformers import GPT2LMHeadModel, GPT2TokenizerFast

    from cllm_app.engine.config import GPTConfig
    from cllm_app.engine.weights import load_weights

    studio.models.create("h", tokenizer="bpe", vocab_size=800, tokenizer_data=data_files, **SHAPE)
    w = _noisy(studio, "h")
    ours = _bpe_of(studio, "h")
    out = Path(studio.exports.export("h", "hf", str(tmp_path / "hf"))["path"])
    assert {p.name for p in out.iterdir()} >= {
        "config.json", "model.safetensors", "tokenizer.json", "vocab.json", "merges.txt",
        "tokenizer_config.json", "special_tokens_map.json",
    }
    theirs = GPT2TokenizerFast.from_pretrained(out)
    assert theirs.eos_token_id == ours.eot and len(theirs) == 800
    for text in [t for t in varied_texts(seed=11, n=80) if "<|endoftext|>" not in t] + ["Héllo, wörld! 😀 1234"]:
        assert theirs(text)["input_ids"] == ours.encode(text).tolist(), repr(text[:60])
    ids = ours.encode("Héllo, wörld! 😀 1234 def f(x):").tolist()
    assert theirs.decode(ids) == ours.decode(ids)
    hf = GPT2LMHeadModel.from_pretrained(out).eval()
    with torch.no_grad():
        hf_logits = hf(torch.tensor([ids])).logits.numpy()
    cfg = GPTConfig(vocab_size=800, **SHAPE)
    np.testing.assert_allclose(_logits(cfg, w, ids), hf_logits, atol=1e-4, rtol=1e-4)

    back = studio.models.import_hf(out, "h back")
    assert (back["tokenizer"], back["vocab_size"]) == ("bpe", 800)
    assert _bpe_of(studio, "h back").fingerprint == ours.fingerprint
    w2 = load_weights(studio.root.model_dir("h back") / "model.safetensors")
    np.testing.assert_array_equal(_logits(cfg, w, ids), _logits(cfg, w2, ids))


def test_import_refuses_a_vocabulary_without_its_tokenizer(studio, data_files, tmp_path):
    studio.models.create("h", tokenizer="bpe", vocab_size=600, tokenizer_data=data_files, **SHAPE)
    out = Path(studio.exports.export("h", "hf", str(tmp_path / "hf"))["path"])
    (out / "tokenizer.json").unlink()
    with pytest.raises(InvalidInput, match="no usable byte-level BPE tokenizer.json"):
        studio.models.import_hf(out, "again")
    assert [m["model_name"] for m in studio.models.list()] == ["h"]


# ---- API and CLI -----------------------------------------------------------------------------




def test_api_upload_then_create_then_change_tokenizer(client, studio, data_files):
    files = [(open(p, "rb"), os.path.basename(p)) for p in data_files]
    try:
        r = client.post("/api/tokenizer-data", data={"files": files}, content_type="multipart/form-data")
    finally:
        for f, _ in files:
            f.close()
    assert r.status_code == 201, r.get_json()
    staged = r.get_json()
    assert [f["name"] for f in staged["files"]] == ["part0.txt", "part1.txt", "part2.txt"]
    assert all(os.path.isfile(p) and p.startswith(str(studio.root.path)) for p in staged["paths"])
    r = client.post("/api/models", json={"model_name": "up", "tokenizer": "bpe", "vocab_size": 640,
                                         "tokenizer_data": staged["paths"], **SHAPE})
    assert r.status_code == 201, r.get_json()
    assert (r.get_json()["tokenizer"], r.get_json()["vocab_size"]) == ("bpe", 640)
    assert not any(os.path.exists(p) for p in staged["paths"])  # staged files go once used
    shown = client.get("/api/models/up").get_json()
    assert (shown["tokenizer"], shown["vocab_size"]) == ("bpe", 640)

    r = client.put("/api/models/up/tokenizer", json={"tokenizer": "byte"})
    assert r.status_code == 200 and r.get_json()["vocab_size"] == 257
    r = client.post("/api/models", json={"tokenizer": "bpe", "vocab_size": 10, "tokenizer_data": data_files})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "invalid_vocab_size"
    r = client.post("/api/models", json={"tokenizer": "bpe", "tokenizer_data": ["/no/such/file.txt"]})
    assert r.status_code == 400 and "does not exist" in r.get_json()["error"]["message"]
    r = client.post("/api/tokenizer-data", data={}, content_type="multipart/form-data")
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "no_files"
    r = client.post("/api/tokenizer-data", data={"files": [(io.BytesIO(b""), "e.txt")]}, content_type="multipart/form-data")
    assert r.status_code == 201  # staged as sent; the refusal (empty) comes when a model trains on it
    r = client.post("/api/models", json={"tokenizer": "bpe", "tokenizer_data": r.get_json()["paths"]})
    assert r.status_code == 400 and "is empty" in r.get_json()["error"]["message"]
    assert [m["model_name"] for m in client.get("/api/models").get_json()["models"]] == ["up"]


def test_cli_create_and_show_a_bpe_model(home, data_files):
    env = {**os.environ, "CLLM_HOME": str(home)}

    def cllm(*a):
        return subprocess.run([sys.executable, "-m", "cllm_app", *a], capture_output=True, text=True, env=env, timeout=120)

    data = [x for p in data_files for x in ("--tokenizer-data", p)]
    p = cllm("models", "create", "cb", "--tokenizer", "bpe", "--vocab-size", "600", *data,
             "--layers", "1", "--heads", "2", "--dim", "16", "--context", "16")
    assert p.returncode == 0, p.stderr
    assert "bpe tokenizer of 600 tokens" in p.stdout
    p = cllm("models", "show", "cb")
    assert p.returncode == 0 and "tokenizer   bpe, vocab_size 600" in p.stdout
    p = cllm("models", "create", "cq", "--tokenizer-from", "cb")
    assert p.returncode == 2 and p.stderr.startswith("error: the queue of 'cb' is empty")
    p = cllm("models", "create", "cv", "--tokenizer", "bpe", "--vocab-size", "99", *data)
    assert p.returncode == 2 and "512 to 32768" in p.stderr
    p = cllm("models", "set-tokenizer", "cb", "--tokenizer", "byte")
    assert p.returncode == 0 and "byte tokenizer of 257 tokens" in p.stdout
