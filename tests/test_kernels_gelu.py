"""GELU (tanh approximation) and the residual add against their numpy references, on every CPU variant.

Tolerances: forward rtol = atol = 1e-5; backward rtol = atol = 1e-5 as well
(also for the derivative the forward saves, and the backward from it).
Each value is a handful of float32 operations and one exp (accurate to 1
ulp), so the error is a few ulp (~5e-7 relative). The residual add is one
float32 rounding of an exact sum, bit-identical to the reference's.
"""

import numpy as np
import pytest

from cllm_app.kernels import reference
from tests.kernel_support import VARIANTS, kernels, numeric_grad, overlapping_view, randn

TOL = {"rtol": 1e-5, "atol": 1e-5}

# Sizes: tiny, not a multiple of any vector width, several parallel chunks
# plus a tail, and the MLP activations of configs A and B.
SHAPES = [(1,), (7,), (3, 37), (1000, 33), (1024, 512), (2048, 1536)]


@pytest.fixture(params=VARIANTS)
def K(request):
    return kernels(request.param)


def inputs(shape, seed=0, scale=3.0):
    rng = np.random.default_rng(seed)
    return randn(rng, *shape, scale=scale), randn(rng, *shape)


@pytest.mark.parametrize("shape", SHAPES)
def test_gelu_forward_matches_reference(K, shape):
    x, _ = inputs(shape)
    got, want = np.full(shape, np.nan, np.float32), np.empty(shape, np.float32)
    K.gelu_forward(got, x)
    reference.gelu_forward(want, x)
    np.testing.assert_allclose(got, want, **TOL)


@pytest.mark.parametrize("shape", SHAPES)
def test_gelu_backward_matches_reference_and_accumulates(K, shape):
    x, dout = inputs(shape)
    start = randn(np.random.default_rng(1), *shape)
    got, want = start.copy(), start.copy()
    K.gelu_backward(got, x, dout)
    reference.gelu_backward(want, x, dout)
    np.testing.assert_allclose(got, want, **TOL)


def test_gelu_extremes():
    # Far tails (exp(-2u) under- and overflows), zero, and non-finite values.
    x = np.array([-1e4, -200, -30, -9.5, -1e-6, 0.0, 1e-6, 9.5, 30, 200, 1e4, np.inf, -np.inf, np.nan],
                 np.float32)
    dout = np.ones_like(x)
    for variant in VARIANTS:
        K = kernels(variant)
        got, want = np.empty_like(x), np.empty_like(x)
        K.gelu_forward(got, x)
        with np.errstate(invalid="ignore"):  # -inf * (1 + tanh(-inf)) = -inf * 0
            reference.gelu_forward(want, x)
        np.testing.assert_allclose(got[:11], want[:11], **TOL)
        # +inf stays inf; -inf and NaN give NaN, as the formula (and PyTorch) do
        assert got[11] == np.inf and np.isnan(got[12]) and np.isnan(got[13])
        assert np.array_equal(np.isnan(got), np.isnan(want))
        gd, wd = np.zeros_like(x), np.zeros_like(x)
        K.gelu_backward(gd, x, dout)
        with np.errstate(invalid="ignore"):
            reference.gelu_backward(wd, x, dout)
        np.testing.assert_allclose(gd[:11], wd[:11], **TOL)
        assert np.isnan(gd[13])


def test_gelu_in_place(K):
    x, dout = inputs((64, 33), seed=2)
    want = np.empty_like(x)
    reference.gelu_forward(want, x)
    y = x.copy()
    K.gelu_forward(y, y)
    np.testing.assert_allclose(y, want, **TOL)
    # dinp may be dout itself: dout <- dout + gelu'(x) * dout
    g = dout.copy()
    K.gelu_backward(g, x, g)
    wg = dout.copy()
    reference.gelu_backward(wg, x, dout)
    np.testing.assert_allclose(g, wg, **TOL)


@pytest.mark.parametrize("shape", SHAPES)
def test_gelu_forward_saves_the_derivative_also_in_place(K, shape):
    # dgelu = gelu'(inp), written beside out; dgelu may be inp itself (the model's MLP).
    x, _ = inputs(shape, seed=7)
    want_y, want_g = np.empty(shape, np.float32), np.empty(shape, np.float32)
    reference.gelu_forward(want_y, x, want_g)
    y, g = np.full(shape, np.nan, np.float32), np.full(shape, np.nan, np.float32)
    K.gelu_forward(y, x, g)
    np.testing.assert_allclose(y, want_y, **TOL)
    np.testing.assert_allclose(g, want_g, **TOL)
    # the derivative is the one gelu_backward uses
    from_backward = np.zeros(shape, np.float32)
    reference.gelu_backward(from_backward, x, np.ones(shape, np.float32))
    np.testing.assert_allclose(want_g, from_backward, rtol=1e-6, atol=1e-7)
    inplace = x.copy()
    y2 = np.empty(shape, np.float32)
    K.gelu_forward(y2, inplace, inplace)
    assert np.array_equal(y2, y) and np.array_equal(inplace, g)
    ref_in = x.copy()
    reference.gelu_forward(y2, ref_in, ref_in)
    np.testing.assert_allclose(ref_in, want_g, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("shape", SHAPES)
def test_gelu_backward_saved_matches_gelu_backward(K, shape):
    x, dout = inputs(shape, seed=8)
    g, y = np.empty(shape, np.float32), np.empty(shape, np.float32)
    K.gelu_forward(y, x, g)
    start = randn(np.random.default_rng(9), *shape)
    want = start.copy()
    reference.gelu_backward(want, x, dout)
    got = start.copy()
    K.gelu_backward_saved(got, g, dout)
    np.testing.assert_allclose(got, want, **TOL)
    ref = start.copy()
    reference.gelu_backward_saved(ref, g, dout)
    np.testing.assert_allclose(ref, want, **TOL)
    # overwrite, in place over dout (the model's call) and over dgelu
    want_fresh = np.zeros(shape, np.float32)
    reference.gelu_backward(want_fresh, x, dout)
    over_dout, over_g = dout.copy(), g.copy()
    K.gelu_backward_saved(over_dout, g, over_dout, accumulate=False)
    K.gelu_backward_saved(over_g, over_g, dout, accumulate=False)
    np.testing.assert_allclose(over_dout, want_fresh, **TOL)
    assert np.array_equal(over_dout, over_g)


def test_gelu_forward_derivative_at_extremes():
    x = np.array([-1e4, -200, -30, -9.5, -1e-6, 0.0, 1e-6, 9.5, 30, 200, 1e4, np.nan], np.float32)
    want_y, want_g = np.empty_like(x), np.empty_like(x)
    reference.gelu_forward(want_y, x, want_g)
    for variant in VARIANTS:
        K = kernels(variant)
        y, g = np.empty_like(x), np.empty_like(x)
        K.gelu_forward(y, x, g)
        np.testing.assert_allclose(y[:11], want_y[:11], **TOL)
        np.testing.assert_allclose(g[:11], want_g[:11], **TOL)
        assert np.isnan(y[11]) and np.isnan(g[11])


@pytest.mark.parametrize("shape", SHAPES)
def test_residual_matches_reference_and_may_work_in_place(K, shape):
    a, b = inputs(shape, seed=3)
    want = np.empty(shape, np.float32)
    reference.residual_forward(want, a, b)
    out = np.full(shape, np.nan, np.float32)
    K.residual_forward(out, a, b)
    assert np.array_equal(out, want)
    into_a, into_b = a.copy(), b.copy()
    K.residual_forward(into_a, into_a, b)
    K.residual_forward(into_b, a, into_b)
    assert np.array_equal(into_a, want) and np.array_equal(into_b, want)


def test_arrays_are_treated_as_flat(K):
    x, _ = inputs((6, 4), seed=4)
    got = np.empty(24, np.float32)
    K.gelu_forward(got, x)
    want = np.empty((6, 4), np.float32)
    reference.gelu_forward(want, x)
    np.testing.assert_allclose(got.reshape(6, 4), want, **TOL)


def test_results_are_identical_across_runs(K):
    x, dout = inputs((2048, 1536), seed=5)
    runs = []
    for _ in range(3):
        y, d = np.empty_like(x), np.zeros_like(x)
        K.gelu_forward(y, x)
        K.gelu_backward(d, x, dout)
        runs.append((y, d))
    for again in runs[1:]:
        for a, b in zip(runs[0], again, strict=True):
            assert np.array_equal(a, b)


def test_reference_gradient_matches_finite_differences():
    rng = np.random.default_rng(6)
    x = rng.standard_normal(12) * 2
    dout = rng.standard_normal(12)

    def loss():
        out = np.empty(12)
        reference.gelu_forward(out, x)
        return float((out * dout).sum())

    dx = np.zeros(12)
    reference.gelu_backward(dx, x, dout)
    np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=1e-6, atol=1e-8)


BAD = {
    "sizes differ": (lambda K, x: K.gelu_forward(np.empty(5, np.float32), x), "has 5 elements"),
    "float64": (lambda K, x: K.gelu_forward(np.empty(6), x), "out must be float32"),
    "not contiguous": (lambda K, x: K.gelu_forward(np.empty((2, 6), np.float32)[:, ::2], x),
                       "C-contiguous"),
    "a list": (lambda K, x: K.gelu_forward([0.0] * 6, x), "must be a numpy array"),
    "backward sizes": (lambda K, x: K.gelu_backward(np.empty(6, np.float32), x, np.ones(7, np.float32)),
                       "dout has 7 elements"),
    "dgelu sizes": (lambda K, x: K.gelu_forward(np.empty(6, np.float32), x, np.empty(4, np.float32)),
                    "dgelu has 4 elements"),
    "dgelu float64": (lambda K, x: K.gelu_forward(np.empty(6, np.float32), x, np.empty(6)),
                      "dgelu must be float32"),
    "saved sizes": (lambda K, x: K.gelu_backward_saved(np.empty(6, np.float32), x, np.ones(2, np.float32)),
                    "dout has 2 elements"),
    "residual sizes": (lambda K, x: K.residual_forward(np.empty(6, np.float32), x, np.ones(3, np.float32)),
                       "b has 3 elements"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_rejects_bad_arguments(K, case):
    call, message = BAD[case]
    with pytest.raises(ValueError, match=message):
        call(K, np.ones(6, np.float32))


def test_partial_overlap_is_rejected(K):
    out, a = overlapping_view(np.zeros(100, np.float32))
    b = np.ones(100, np.float32)
    with pytest.raises(ValueError, match="out must not share memory with a"):
        K.residual_forward(out, a, b)
    with pytest.raises(ValueError, match="out must not share memory with inp"):
        K.gelu_forward(out, a)
    with pytest.raises(ValueError, match="dinp must not share memory with dout"):
        K.gelu_backward(out, b, a)
    with pytest.raises(ValueError, match="dgelu must not share memory with inp"):
        K.gelu_forward(np.empty(100, np.float32), a, out)
    with pytest.raises(ValueError, match="dinp must not share memory with dgelu"):
        K.gelu_backward_saved(out, a, b)
    # out and dgelu are two outputs: never the same memory
    x = np.ones(100, np.float32)
    with pytest.raises(ValueError, match="dgelu must not share memory with out"):
        K.gelu_forward(x, x, x)


@pytest.mark.parametrize("shape", SHAPES)
def test_gelu_backward_can_overwrite_in_place(K, shape):
    # accumulate=False: dinp = gelu'(inp) * dout, also when dinp is dout itself (the MLP's backward).
    x, dout = inputs(shape)
    want = np.zeros(shape, np.float32)
    reference.gelu_backward(want, x, dout)
    fresh = np.full(shape, np.nan, np.float32)
    K.gelu_backward(fresh, x, dout, accumulate=False)
    np.testing.assert_allclose(fresh, want, **TOL)
    inplace = dout.copy()
    K.gelu_backward(inplace, x, inplace, accumulate=False)
    np.testing.assert_allclose(inplace, want, **TOL)
    ref = dout.copy()
    reference.gelu_backward(ref, x, ref, accumulate=False)
    np.testing.assert_allclose(ref, want, rtol=1e-6, atol=1e-7)
