"""Batches across document boundaries (the seed's example) and the byte tokenizer."""

import numpy as np

from cllm_app.engine.tokenizer import ByteTokenizer, tokenizer_for
from cllm_app.engine.trainer import Document, EpochStream


def test_seed_example_one_batch_and_the_rest_left():
    """The seed's example: documents of 50, 30, 80 and 100 tokens, 256 tokens a batch, give one
    batch (each document followed by its <|endoftext|>: 264 tokens, 8 left over)."""
    docs = [Document(i, f"d{i}", np.arange(n, dtype=np.int32)) for i, n in enumerate((50, 30, 80, 100))]
    es = EpochStream(docs, epoch=0, seed=0, B=2, T=128, eot=999, order="stream")
    batches = list(es)
    assert es.n_batches == len(batches) == 1
    x, y = batches[0]
    assert x.shape == y.shape == (2, 128) and x.dtype == np.int32
    assert (x == 999).sum() == 3  # three documents end inside it; the last one's end is left over
    np.testing.assert_array_equal(x.reshape(-1)[1:], y.reshape(-1)[:-1])


def test_byte_tokenizer_round_trips_any_text():
    tok = tokenizer_for("byte")
    text = "Hello, wörld! 模型 🙂\n\ttabs"
    ids = tok.encode(text)
    assert ids.max() < 256 and tok.decode(ids) == text
    assert tok.vocab_size == 257 and tok.eot == 256
    assert tok.decode([*ids, tok.eot]) == text


def test_stream_decoder_never_splits_a_character():
    tok = ByteTokenizer()
    decoder = tok.stream_decoder()
    pieces = [decoder.push(int(t)) for t in tok.encode("é🙂a")]
    assert pieces == ["", "é", "", "", "", "🙂", "a"]
    assert decoder.flush() == ""


def test_broken_utf8_is_replaced_not_raised():
    tok = ByteTokenizer()
    assert tok.decode([0xFF, 0x41]) == "\ufffdA"
