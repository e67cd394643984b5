"""The batch accumulator and the byte tokenizer."""

import numpy as np
import pytest

from cllm_app.engine.batches import BatchAccumulator
from cllm_app.engine.tokenizer import ByteTokenizer, tokenizer_for


def test_seed_example_one_batch_and_four_left():
    acc = BatchAccumulator(batch_size=2, context=128)
    for n in (50, 30, 80, 100):
        acc.add(np.arange(n))
    assert acc.ready()
    x, y = acc.next_batch()
    assert x.shape == y.shape == (2, 128) and x.dtype == np.int32
    assert len(acc) == 4 and not acc.ready()


def test_windows_are_the_stream_in_order_with_shifted_targets():
    stream = np.arange(1000) % 251
    acc = BatchAccumulator(batch_size=3, context=7)
    for piece in np.array_split(stream, 37):
        acc.add(piece)
    seen = []
    while acc.ready():
        x, y = acc.next_batch()
        np.testing.assert_array_equal(x.reshape(-1)[1:], y.reshape(-1)[:-1])
        seen.append(x.reshape(-1))
    flat = np.concatenate(seen)
    np.testing.assert_array_equal(flat, stream[: flat.size])
    assert len(acc) == 1000 - flat.size and len(acc) <= 21


def test_not_ready_refuses_and_clear_empties():
    acc = BatchAccumulator(1, 4)
    acc.add([1, 2, 3, 4])
    with pytest.raises(ValueError, match="needs 5 tokens"):
        acc.next_batch()
    acc.add([])
    acc.clear()
    assert len(acc) == 0


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
