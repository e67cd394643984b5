"""Softmax cross-entropy against its numpy reference, on every CPU variant.

Tolerances: forward (losses, mean) rtol = atol = 1e-5: a loss is
log(sum exp) + max - x_t, with the sum of V exps (1 ulp each) accumulated in
float lanes and double blocks. Backward rtol = atol = 1e-5 on dlogits / scale
(softmax minus one-hot, values in [-1, 1]).
"""

import numpy as np
import pytest

from cllm_app.kernels import reference
from tests.kernel_support import VARIANTS, kernels, numeric_grad, overlapping_view, randn

TOL = {"rtol": 1e-5, "atol": 1e-5}

# (N, V): one class; V not a multiple of the 16 lanes (257, 13); V over the
# 512-element blocks of the sum (1000); configs A and B.
SHAPES = [(1, 1), (3, 13), (37, 257), (100, 1000), (1024, 256), (2048, 4096)]


@pytest.fixture(params=VARIANTS)
def K(request):
    return kernels(request.param)


def inputs(n, v, seed=0, scale=3.0, offset=0.0):
    rng = np.random.default_rng(seed)
    logits = randn(rng, n, v, scale=scale) + np.float32(offset)
    return logits, rng.integers(0, v, n).astype(np.int32)


@pytest.mark.parametrize("n,v", SHAPES)
def test_forward_matches_reference(K, n, v):
    logits, targets = inputs(n, v)
    got, want = np.full(n, np.nan, np.float32), np.empty(n, np.float32)
    mean = K.crossentropy_forward(got, logits, targets)
    want_mean = reference.crossentropy_forward(want, logits, targets)
    np.testing.assert_allclose(got, want, **TOL)
    assert isinstance(mean, float)
    np.testing.assert_allclose(mean, want_mean, **TOL)


@pytest.mark.parametrize("n,v", SHAPES)
def test_backward_matches_reference(K, n, v):
    logits, targets = inputs(n, v)
    scale = 1.0 / n
    got = np.full((n, v), np.nan, np.float32)
    want = np.empty((n, v), np.float32)
    K.crossentropy_backward(got, logits, targets, scale)
    reference.crossentropy_backward(want, logits, targets, scale)
    np.testing.assert_allclose(got / scale, want / scale, **TOL)


@pytest.mark.parametrize("impl", ["kernel", "reference"])
def test_backward_may_overwrite_the_logits(impl):
    # The model passes the logits array itself as dlogits.
    logits, targets = inputs(64, 257, seed=1)
    want = np.empty_like(logits)
    reference.crossentropy_backward(want, logits, targets, 0.5)
    for variant in VARIANTS if impl == "kernel" else ["reference"]:
        fn = reference if impl == "reference" else kernels(variant)
        same = logits.copy()
        fn.crossentropy_backward(same, same, targets, 0.5)
        np.testing.assert_allclose(same, want, **TOL)


def test_large_and_equal_logits(K):
    # Rows far from zero (exp would overflow without subtracting the max), a
    # row of equal logits (uniform softmax), and a row with one huge logit.
    logits, targets = inputs(4, 300, seed=2, offset=1000.0)
    logits[1] = 7.0
    logits[2, :] = -50.0
    logits[2, 5] = 80.0
    targets[2] = 5
    got, want = np.empty(4, np.float32), np.empty(4, np.float32)
    K.crossentropy_forward(got, logits, targets)
    reference.crossentropy_forward(want, logits, targets)
    np.testing.assert_allclose(got, want, **TOL)
    np.testing.assert_allclose(got[1], np.log(300), rtol=1e-6)
    g, w = np.empty_like(logits), np.empty_like(logits)
    K.crossentropy_backward(g, logits, targets, 1.0)
    reference.crossentropy_backward(w, logits, targets, 1.0)
    np.testing.assert_allclose(g, w, **TOL)


def test_nan_logits_give_nan_losses(K):
    logits, targets = inputs(3, 40, seed=3)
    logits[1, 7] = np.nan
    losses = np.empty(3, np.float32)
    mean = K.crossentropy_forward(losses, logits, targets)
    assert np.isnan(losses[1]) and np.isfinite(losses[[0, 2]]).all() and np.isnan(mean)


def test_results_are_identical_across_runs(K):
    logits, targets = inputs(2048, 4096, seed=4)
    runs = []
    for _ in range(3):
        losses, d = np.empty(2048, np.float32), np.empty_like(logits)
        mean = K.crossentropy_forward(losses, logits, targets)
        K.crossentropy_backward(d, logits, targets, 1 / 2048)
        runs.append((losses, d, np.array(mean)))
    for again in runs[1:]:
        for a, b in zip(runs[0], again, strict=True):
            assert np.array_equal(a, b)


def test_reference_gradient_matches_finite_differences():
    rng = np.random.default_rng(5)
    n, v = 3, 5
    logits = rng.standard_normal((n, v))
    targets = np.array([4, 0, 2], np.int32)

    def loss():
        return reference.crossentropy_forward(np.empty(n), logits, targets)

    d = np.empty((n, v))
    reference.crossentropy_backward(d, logits, targets, 1.0 / n)
    np.testing.assert_allclose(d, numeric_grad(loss, logits), rtol=1e-6, atol=1e-8)


def test_zero_rows(K):
    logits = np.zeros((0, 5), np.float32)
    targets = np.zeros(0, np.int32)
    assert np.isnan(K.crossentropy_forward(np.zeros(0, np.float32), logits, targets))
    K.crossentropy_backward(np.zeros((0, 5), np.float32), logits, targets, 1.0)


@pytest.mark.parametrize("bad", [-1, 5, 2**31 - 1])
def test_targets_out_of_range_raise_before_any_work(K, bad):
    logits, _ = inputs(4, 5, seed=6)
    targets = np.array([0, 1, bad, 2], np.int32)
    losses = np.full(4, 7.0, np.float32)
    with pytest.raises(ValueError, match=f"target {bad} at row 2 is outside"):
        K.crossentropy_forward(losses, logits, targets)
    assert (losses == 7.0).all()
    d = logits.copy()
    with pytest.raises(ValueError, match="outside"):
        K.crossentropy_backward(d, d, targets, 1.0)
    assert np.array_equal(d, logits)
    with pytest.raises(ValueError, match="outside"):
        reference.crossentropy_forward(np.empty(4, np.float32), logits, targets)


BAD = {
    "targets int64": (lambda K, lg, t: K.crossentropy_forward(np.empty(4, np.float32), lg, t.astype(np.int64)),
                      "targets must be int32"),
    "targets short": (lambda K, lg, t: K.crossentropy_forward(np.empty(4, np.float32), lg, t[:3]),
                      "targets has shape"),
    "losses short": (lambda K, lg, t: K.crossentropy_forward(np.empty(3, np.float32), lg, t),
                     "losses has shape"),
    "logits 1-D": (lambda K, lg, t: K.crossentropy_forward(np.empty(4, np.float32), lg.ravel(), t),
                   "logits must be a 2-D"),
    "logits float64": (lambda K, lg, t: K.crossentropy_backward(np.empty((4, 5)), lg.astype(np.float64), t, 1.0),
                       "logits must be float32"),
    "dlogits wrong shape": (lambda K, lg, t: K.crossentropy_backward(np.empty((4, 6), np.float32), lg, t, 1.0),
                            "dlogits has shape"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_rejects_bad_arguments(K, case):
    call, message = BAD[case]
    logits, targets = inputs(4, 5, seed=7)
    with pytest.raises(ValueError, match=message):
        call(K, logits, targets)


def test_dlogits_partly_overlapping_logits_is_rejected(K):
    d, logits = overlapping_view(np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match="dlogits must not share memory with logits"):
        K.crossentropy_backward(d, logits, np.zeros(4, np.int32), 1.0)
