"""AdamW and the squared gradient norm against their numpy references, on every CPU variant.

The reference is torch.optim.AdamW's documented algorithm in float64
(decoupled weight decay params *= 1 - lr * wd, then the bias-corrected Adam
step with eps added to sqrt(vhat)). PyTorch itself is not a test dependency;
bench/bench_kernels.py compares with it. Tolerances after 3 steps:
params rtol = 1e-6, atol = 1e-7 (float32 arithmetic on values ~0.02 with
steps ~lr); v rtol = 1e-5 (a few roundings of positive terms); m, a signed
sum of gradients ~1e-3 that may cancel to nearly zero, atol = 1e-9 (float32
rounding of its terms is ~1e-10). The norm is squared and summed in double:
rtol = 1e-12.
"""

import numpy as np
import pytest

from cllm_app.kernels import reference
from tests.kernel_support import VARIANTS, kernels, overlapping_view, randn, with_bad_argument

HYPER = {"lr": 3e-3, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1}

# Sizes: one element; odd, under one parallel chunk; several chunks plus a
# tail; about the size of config B's parameters.
SIZES = [1, 37, 50_001, 12_000_000]


@pytest.fixture(params=VARIANTS)
def K(request):
    return kernels(request.param)


def state(p, seed=0):
    rng = np.random.default_rng(seed)
    return randn(rng, p, scale=0.02), np.zeros(p, np.float32), np.zeros(p, np.float32), rng


def run(impl, params, m, v, grads_per_step, grad_scale=1.0, hyper=HYPER, first_step=1):
    for k, g in enumerate(grads_per_step):
        impl.adamw_update(params, g, m, v, hyper["lr"], hyper["beta1"], hyper["beta2"],
                          hyper["eps"], hyper["weight_decay"], first_step + k, grad_scale)


@pytest.mark.parametrize("p", SIZES)
def test_three_steps_match_reference(K, p):
    params, m, v, rng = state(p)
    grads = [randn(rng, p, scale=1e-2) for _ in range(3)]
    got = (params.copy(), m.copy(), v.copy())
    want = (params.copy(), m.copy(), v.copy())
    run(K, *got, grads, grad_scale=0.5)
    run(reference, *want, grads, grad_scale=0.5)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6, atol=1e-7, err_msg="params")
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-9, err_msg="m")
    np.testing.assert_allclose(got[2], want[2], rtol=1e-5, atol=1e-15, err_msg="v")


def test_no_decay_and_a_late_step(K):
    # weight_decay 0 (the vectors' slice) and a step count far from 1, where
    # the bias corrections are ~1.
    params, m, v, rng = state(1000, seed=1)
    m[:] = randn(rng, 1000, scale=1e-3)
    v[:] = np.abs(randn(rng, 1000, scale=1e-5))
    hyper = dict(HYPER, weight_decay=0.0)
    grads = [randn(rng, 1000, scale=1e-2)]
    got = (params.copy(), m.copy(), v.copy())
    want = (params.copy(), m.copy(), v.copy())
    run(K, *got, grads, hyper=hyper, first_step=5000)
    run(reference, *want, grads, hyper=hyper, first_step=5000)
    for name, g, w in zip(("params", "m", "v"), got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-9, err_msg=name)


def test_reference_is_torchs_documented_update():
    # One step written out from the PyTorch documentation's pseudo-code.
    lr, b1, b2, eps, wd = 0.01, 0.8, 0.9, 1e-6, 0.2
    p, g = np.array([0.5, -1.0]), np.array([0.1, 0.3])
    m, v = np.array([0.01, -0.02]), np.array([0.001, 0.002])
    step = 3
    expect_p = p * (1 - lr * wd)
    expect_m = b1 * m + (1 - b1) * g
    expect_v = b2 * v + (1 - b2) * g * g
    mhat, vhat = expect_m / (1 - b1**step), expect_v / (1 - b2**step)
    expect_p = expect_p - lr * mhat / (np.sqrt(vhat) + eps)
    reference.adamw_update(p, g, m, v, lr, b1, b2, eps, wd, step, 1.0)
    np.testing.assert_allclose(p, expect_p, rtol=1e-15)
    np.testing.assert_allclose(m, expect_m, rtol=1e-15)
    np.testing.assert_allclose(v, expect_v, rtol=1e-15)


def test_updates_a_slice_of_a_flat_buffer(K):
    # The trainer passes slices of its flat buffers; elements outside stay put.
    params, m, v, rng = state(100, seed=2)
    grads = randn(rng, 100)
    keep = params.copy()
    K.adamw_update(params[10:60], grads[10:60], m[10:60], v[10:60], 0.1, 0.9, 0.99, 1e-8, 0.0, 1, 1.0)
    assert np.array_equal(params[:10], keep[:10]) and np.array_equal(params[60:], keep[60:])
    assert not np.array_equal(params[10:60], keep[10:60])
    assert not m[:10].any() and not m[60:].any()


def test_results_are_identical_across_runs(K):
    p = 3_000_000
    runs = []
    for _ in range(2):
        params, m, v, rng = state(p, seed=3)
        grads = [randn(rng, p, scale=1e-2) for _ in range(2)]
        run(K, params, m, v, grads)
        runs.append((params, m, v, np.array(K.grad_norm_squared(grads[0]))))
    for a, b in zip(*runs, strict=True):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("p", [0, 1, 37, 4097, 1_000_003])
def test_grad_norm_squared_matches_reference(K, p):
    g = randn(np.random.default_rng(4), p, scale=3.0)
    got = K.grad_norm_squared(g)
    assert isinstance(got, float)
    np.testing.assert_allclose(got, reference.grad_norm_squared(g), rtol=1e-12, atol=0)


def test_grad_norm_squared_keeps_double_precision(K):
    # 10 million terms of 1 + tiny: a float32 running sum would be off by far more.
    g = np.full(10_000_000, 1.0001, np.float32)
    np.testing.assert_allclose(K.grad_norm_squared(g), 10_000_000 * float(np.float32(1.0001)) ** 2,
                               rtol=1e-12)


def _args():
    params, m, v, rng = state(8)
    return {"params": params, "grads": randn(rng, 8), "m": m, "v": v}


BAD = {
    "grads shorter": ("grads", np.zeros(7, np.float32), "grads has shape"),
    "m float64": ("m", np.zeros(8), "m must be float32"),
    "v 2-D": ("v", np.zeros((2, 4), np.float32), "v must be a 1-D"),
    "params read-only": ("params", np.lib.stride_tricks.as_strided(np.zeros(8, np.float32),
                                                                   writeable=False), "read-only"),
    "params strided": ("params", np.zeros(16, np.float32)[::2], "params must be C-contiguous"),
    "m is v": ("m", "v", "m must not share memory with v"),
    "params is grads": ("params", "grads", "params must not share memory with grads"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_rejects_bad_arguments(K, case):
    with pytest.raises(ValueError, match=BAD[case][2]):
        K.adamw_update(**with_bad_argument(_args(), BAD[case]), lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8,
                       weight_decay=0.0, step=1, grad_scale=1.0)


def test_rejects_step_zero_and_overlap(K):
    args = _args()
    with pytest.raises(ValueError, match="step counts from 1"):
        K.adamw_update(*args.values(), 0.1, 0.9, 0.99, 1e-8, 0.0, 0, 1.0)
    with pytest.raises(ValueError, match="step counts from 1"):
        reference.adamw_update(*args.values(), 0.1, 0.9, 0.99, 1e-8, 0.0, 0, 1.0)
    params, m = overlapping_view(np.zeros(8, np.float32))
    with pytest.raises(ValueError, match="params must not share memory with m"):
        K.adamw_update(params, args["grads"], m, args["v"], 0.1, 0.9, 0.99, 1e-8, 0.0, 1, 1.0)
    with pytest.raises(ValueError, match="grads must be a 1-D"):
        K.grad_norm_squared(np.zeros((2, 2), np.float32))
