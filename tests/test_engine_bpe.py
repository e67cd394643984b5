"""Byte-level BPE: training limits, tiktoken encoding exactly like `tokenizers` (or falling back
when it would not), byte-exact decoding and streaming, and a fingerprint of the content."""

import json
import time

import numpy as np
import pytest

from cllm_app.engine.bpe import (
    EOT_TEXT,
    PROBE_TEXT,
    BPETokenizer,
    TokenizerError,
    train_bpe,
)
from cllm_app.engine.tokenizer import TOKENIZER_FILE, load_tokenizer
from tests.bpe_support import corpus, varied_texts


@pytest.fixture(scope="module")
def trained():
    return train_bpe(iter(corpus()), 1024)


@pytest.fixture(scope="module")
def bpe(trained):
    return BPETokenizer.from_hf(trained)


def _hf_ids(tok: BPETokenizer, text: str) -> list[int]:
    return tok.hf.encode(text, add_special_tokens=False).ids


def test_training_gives_the_asked_size_with_eot_and_every_byte(trained, bpe):
    assert trained.get_vocab_size() == bpe.vocab_size == 1024
    assert bpe.kind == "bpe" and bpe.token_bytes(bpe.eot) == b""
    assert trained.token_to_id(EOT_TEXT) == bpe.eot
    assert {bpe.token_bytes(i) for i in range(bpe.vocab_size) if len(bpe.token_bytes(i)) == 1} == {bytes([b]) for b in range(256)}


@pytest.mark.parametrize("size", [511, 32769, 0, -5, 1024.5, True, "1024", None])
def test_vocab_size_outside_512_to_32768_is_refused(size):
    with pytest.raises(TokenizerError, match="512 to 32768"):
        train_bpe(iter(["some text " * 500]), size)


def test_too_little_text_is_refused_with_the_reason():
    with pytest.raises(TokenizerError, match="at least 1,024 bytes"):
        train_bpe(iter(["tiny"]), 512)
    with pytest.raises(TokenizerError, match="at least 1,024 bytes"):
        train_bpe(iter([]), 512)
    # Enough bytes, too few distinct pairs for the size asked: says how far it got.
    with pytest.raises(TokenizerError, match=r"only yields [\d,]+ tokens, fewer than the 4,096"):
        train_bpe(iter(["abab cdcd " * 2000]), 4096)
    with pytest.raises(TokenizerError, match="must be strings"):
        train_bpe(iter([b"bytes" * 500]), 512)


def test_tiktoken_encodes_exactly_like_tokenizers(bpe):
    assert bpe.encoder == "tiktoken"
    texts = varied_texts() + corpus(n_prose=200, seed=7) + [PROBE_TEXT]
    for text in texts:
        ours = bpe.encode(text)
        assert ours.dtype == np.uint16
        assert ours.tolist() == _hf_ids(bpe, text), repr(text[:80])


def test_endoftext_inside_a_text_is_plain_text(bpe):
    ids = bpe.encode(f"a{EOT_TEXT}b").tolist()
    assert bpe.eot not in ids and len(ids) > 3
    assert bpe.decode(ids) == f"a{EOT_TEXT}b"


def test_encode_batch_is_encode_of_each(bpe):
    texts = varied_texts(seed=3, n=50)
    batch = bpe.encode_batch(texts)
    assert [b.tolist() for b in batch] == [bpe.encode(t).tolist() for t in texts]
    assert bpe.encode_batch([]) == []


def test_long_whitespace_and_letter_runs_stay_fast(bpe):
    for text in (" " * 200_000, "\n" * 200_000, "a" * 20_000, "\u3000" * 50_000):
        start = time.perf_counter()
        ids = bpe.encode(text)
        assert time.perf_counter() - start < 10
        assert bpe.decode(ids) == text


def test_fallback_to_tokenizers_when_ids_do_not_follow_merges(trained):
    data = json.loads(trained.to_str())
    vocab = data["model"]["vocab"]
    first, second = (data["model"]["merges"][i] for i in (0, 1))
    a, b = "".join(first), "".join(second)
    vocab[a], vocab[b] = vocab[b], vocab[a]  # the second merge's token now has the lower id
    tok = BPETokenizer(json.dumps(data))
    assert tok.encoder == "tokenizers"
    for text in varied_texts(seed=5, n=60):
        assert tok.encode(text).tolist() == _hf_ids(tok, text)
        assert tok.decode(tok.encode(text)) == text
    assert [x.tolist() for x in tok.encode_batch(["one", "two three"])] == [_hf_ids(tok, "one"), _hf_ids(tok, "two three")]


def test_decode_is_byte_exact_and_streaming_holds_back_partial_characters(bpe):
    for text in varied_texts(seed=9, n=100):
        assert bpe.decode(bpe.encode(text)) == text
    ids = bpe.encode("日本語 😀 ok").tolist()
    dec = bpe.stream_decoder()
    pieces = [dec.push(t) for t in ids] + [dec.flush()]
    assert "".join(pieces) == "日本語 😀 ok"
    assert all("\ufffd" not in p for p in pieces)  # never half a character
    emoji = bpe.encode("😀").tolist()
    if len(emoji) > 1:  # split over byte tokens: nothing shows until the last one
        dec = bpe.stream_decoder()
        assert [dec.push(t) for t in emoji[:-1]] == [""] * (len(emoji) - 1)
        assert dec.push(emoji[-1]) == "😀"
    assert bpe.decode([bpe.eot, 70_000, -1]) == ""


def test_fingerprint_names_the_content(trained, bpe, tmp_path):
    again = BPETokenizer(json.dumps(json.loads(trained.to_str()), indent=1))  # same content, other layout
    assert again.fingerprint == bpe.fingerprint and bpe.fingerprint.startswith("bpe1024-")
    other = BPETokenizer.from_hf(train_bpe(iter(corpus(seed=2)), 1024))
    assert other.fingerprint != bpe.fingerprint
    smaller = BPETokenizer.from_hf(train_bpe(iter(corpus()), 600))
    assert smaller.fingerprint != bpe.fingerprint and smaller.vocab_size == 600


def test_load_tokenizer_reads_the_models_tokenizer_json(bpe, tmp_path):
    (tmp_path / TOKENIZER_FILE).write_text(bpe.json_text, encoding="utf-8")
    tok = load_tokenizer(tmp_path, "bpe")
    assert tok.fingerprint == bpe.fingerprint and tok.encode("hello").tolist() == bpe.encode("hello").tolist()
    assert load_tokenizer(tmp_path, "byte").fingerprint == "byte"
    with pytest.raises(TokenizerError, match="missing"):
        load_tokenizer(tmp_path / "nowhere", "bpe")


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: "not json {", "not JSON"),
        (lambda d: {**d, "model": {**d["model"], "type": "WordPiece"}}, "only byte-level BPE"),
        (lambda d: {**d, "pre_tokenizer": {"type": "Whitespace"}}, "pre-tokenizer"),
        (lambda d: {**d, "model": {**d["model"], "vocab": {k: v for k, v in d["model"]["vocab"].items() if k != EOT_TEXT}}}, "no <|endoftext|>"),
        (lambda d: {**d, "model": {**d["model"], "vocab": {**d["model"]["vocab"], "Ġzz": 5000}}}, "0..N-1"),
    ],
)
def test_a_damaged_tokenizer_json_is_refused_with_the_reason(trained, damage, message):
    result = damage(json.loads(trained.to_str()))
    with pytest.raises(TokenizerError, match=message):
        BPETokenizer(result if isinstance(result, str) else json.dumps(result))
