"""The whole model: its gradient against finite differences (float64, reference kernels), its
logits against an independent forward pass, and the compiled kernels against the references."""

import numpy as np
import pytest

from cllm_app.engine.config import GPTConfig
from cllm_app.engine.model import GPT, FlatTensors
from cllm_app.engine.weights import init_weights
from cllm_app.kernels import ops, reference
from tests.gpt_reference import logits as reference_logits

TINY = GPTConfig(vocab_size=11, n_layer=2, n_head=2, n_embd=8, block_size=6)


def _batch(cfg: GPTConfig, B: int, T: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, cfg.vocab_size, size=(B, T), dtype=np.int32)
    y = rng.integers(0, cfg.vocab_size, size=(B, T), dtype=np.int32)
    return x, y


def _random_weights(cfg: GPTConfig, seed: int = 1) -> dict:
    """Init weights plus noise everywhere, so zero-initialised biases and projections are tested too."""
    rng = np.random.default_rng(seed)
    return {k: v + rng.normal(0, 0.1, v.shape).astype(np.float32) for k, v in init_weights(cfg).items()}


def test_layout_puts_matrices_first_and_covers_every_weight():
    flat = FlatTensors(TINY)
    assert set(flat.views) == set(init_weights(TINY))
    decay = [k for k, v in flat.views.items() if v.ndim == 2]
    assert sum(flat.views[k].size for k in decay) == flat.n_decay
    assert flat.flat.size == TINY.n_params


def test_forward_matches_an_independent_numpy_model():
    w = _random_weights(TINY)
    model = GPT(TINY, reference, dtype=np.float64)
    model.params.load({k: v.astype(np.float64) for k, v in w.items()})
    x, y = _batch(TINY, 1, 6)
    loss = model.forward(x, y)
    expected = reference_logits(w, TINY.n_layer, TINY.n_head, x[0])
    shifted = expected - expected.max(-1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    np.testing.assert_allclose(loss, -logp[np.arange(6), y[0]].mean(), rtol=1e-10)


def test_whole_model_gradient_matches_finite_differences():
    """float64, reference kernels: every parameter's gradient, central differences."""
    model = GPT(TINY, reference, dtype=np.float64)
    model.params.load({k: v.astype(np.float64) for k, v in _random_weights(TINY).items()})
    x, y = _batch(TINY, 2, 5)
    model.zero_grad()
    model.forward(x, y)
    model.backward()
    analytic = model.grads.flat.copy()
    flat = model.params.flat
    rng = np.random.default_rng(3)
    # every vector entry is cheap enough; sample the matrices
    idx = np.concatenate([rng.choice(model.params.n_decay, 300, replace=False), np.arange(model.params.n_decay, flat.size)])
    h = 1e-6
    numeric = np.empty(idx.size)
    for j, i in enumerate(idx):
        old = flat[i]
        flat[i] = old + h
        up = model.forward(x, y)
        flat[i] = old - h
        down = model.forward(x, y)
        flat[i] = old
        numeric[j] = (up - down) / (2 * h)
    np.testing.assert_allclose(analytic[idx], numeric, rtol=1e-5, atol=1e-8)


def test_backward_scale_scales_the_gradient():
    model = GPT(TINY, reference, dtype=np.float64)
    model.params.load({k: v.astype(np.float64) for k, v in _random_weights(TINY).items()})
    x, y = _batch(TINY, 2, 4)
    model.zero_grad()
    model.forward(x, y)
    model.backward()
    full = model.grads.flat.copy()
    model.zero_grad()
    model.forward(x, y)
    model.backward(scale=0.25)
    np.testing.assert_allclose(model.grads.flat, 0.25 * full, rtol=1e-12)


@pytest.mark.parametrize("cfg", [TINY, GPTConfig(vocab_size=257, n_layer=2, n_head=3, n_embd=48, block_size=37)])
def test_compiled_kernels_match_the_references(cfg):
    """float32 compiled model against the float64 reference model: loss and every gradient."""
    w = _random_weights(cfg)
    fast = GPT(cfg, ops)
    fast.params.load(w)
    slow = GPT(cfg, reference, dtype=np.float64)
    slow.params.load({k: v.astype(np.float64) for k, v in w.items()})
    x, y = _batch(cfg, 3, cfg.block_size)
    for m in (fast, slow):
        m.zero_grad()
    lf, ls = fast.forward(x, y), slow.forward(x, y)
    fast.backward()
    slow.backward()
    assert abs(lf - ls) < 1e-5 * max(1.0, abs(ls))
    for name, g in fast.grads.views.items():
        ref = slow.grads.views[name]
        np.testing.assert_allclose(g, ref, rtol=1e-3, atol=2e-5 * max(1.0, np.abs(ref).max()), err_msg=name)


def test_context_longer_than_block_size_is_refused():
    model = GPT(TINY, reference)
    x, y = _batch(TINY, 1, TINY.block_size + 1)
    with pytest.raises(ValueError, match="block_size"):
        model.forward(x, y)
