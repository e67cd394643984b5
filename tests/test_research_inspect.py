"""Inspect: the numpy forward against the model's own logits, probabilities that sum to one,
causal attention rows that sum to one, surprisal and readable tokens."""

import math

import numpy as np
import pytest
from gpt_reference import logits as reference_logits
from research_support import SHAPE, make_model, weights_of

from cllm_app.engine.config import GPTConfig
from cllm_app.engine.model import GPT, FlatTensors
from cllm_app.engine.readable_forward import forward_inside, log_softmax
from cllm_app.engine.tokenizer import ByteTokenizer
from cllm_app.errors import InvalidInput
from cllm_app.kernels import ops
from cllm_app.services.research.inspect import readable


def test_forward_inside_matches_the_models_logits(studio):
    make_model(studio, "m")
    cfg = GPTConfig(**{**SHAPE, "vocab_size": 257})
    w = weights_of(studio, "m")
    tokens = np.array([256, *b"attention, please"][:16])
    inside = forward_inside(cfg, w, tokens)
    params = FlatTensors(cfg)
    params.load(w)
    fast = GPT(cfg, ops, params).logits(tokens[None, :].astype(np.int32))[0]
    np.testing.assert_allclose(inside.logits, fast, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(inside.logits, reference_logits(w, 2, 2, tokens), rtol=1e-10, atol=1e-10)
    att = inside.attention
    assert att.shape == (2, 2, tokens.size, tokens.size)
    np.testing.assert_allclose(att.sum(-1), 1.0, atol=1e-12)
    assert np.all(np.triu(att, 1) == 0)  # causal: nothing looks ahead
    assert np.all(att >= 0)


def test_inspect_top_k_surprisal_and_heatmap(studio):
    make_model(studio, "m")
    out = studio.research.inspect("m", "hi\nthere", top_k=100, layer=1, head=1)
    probs = [t["probability"] for t in out["top_k"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-9
    assert len(out["top_k"]) == 100
    tokens = [t["id"] for t in out["tokens"]]
    assert tokens == [256, *b"hi\nthere"]
    assert [t["text"] for t in out["tokens"]][:4] == ["<|endoftext|>", "h", "i", "\\n"]
    z = log_softmax(reference_logits(weights_of(studio, "m"), 2, 2, np.array(tokens)))
    expected = [-z[t - 1, tokens[t]] / math.log(2) for t in range(1, len(tokens))]
    assert out["surprisal_bits"][0] is None
    np.testing.assert_allclose(out["surprisal_bits"][1:], expected, rtol=1e-9)
    # all next-token probabilities (from the same forward) sum to 1
    assert np.exp(z[-1]).sum() == pytest.approx(1.0)
    att = np.array(out["attention"])
    assert att.shape == (len(tokens), len(tokens))
    np.testing.assert_allclose(att.sum(-1), 1.0, atol=1e-4)
    assert np.all(np.triu(att, 1) == 0)
    assert (out["layer"], out["head"]) == (1, 1)


def test_long_prompts_keep_their_last_tokens(studio):
    make_model(studio, "m")
    out = studio.research.inspect("m", "0123456789" * 5)
    assert len(out["tokens"]) == SHAPE["block_size"]
    assert out["truncated_tokens"] == 50 - (SHAPE["block_size"] - 1)
    assert "".join(t["text"] for t in out["tokens"][1:]) == ("0123456789" * 5)[-15:]


def test_readable_byte_tokens():
    tok = ByteTokenizer()
    assert [readable(tok, t) for t in (65, 32, 9, 0, 0xE2, 256)] == ["A", "␣", "\\t", "\\x00", "\\xe2", "<|endoftext|>"]


def test_inspect_refusals(studio):
    make_model(studio, "m")
    for kwargs, code in [
        ({"prompt": ""}, "empty_prompt"),
        ({"prompt": "x", "layer": 2}, "invalid_layer"),
        ({"prompt": "x", "head": -1}, "invalid_head"),
        ({"prompt": "x", "top_k": 0}, "invalid_top_k"),
        ({"prompt": 5}, "empty_prompt"),
    ]:
        with pytest.raises(InvalidInput) as e:
            studio.research.inspect("m", **kwargs)
        assert e.value.code == code
