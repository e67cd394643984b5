"""The Cython LayerNorm kernel against its numpy reference, and the reference
against finite differences (so that agreeing with it means something).

Tolerances, float32 kernel against the float64 reference:
  forward (out, mean, rstd): rtol = atol = 1e-5. Each output is a handful of
    float32 operations on O(1) values, so its error is a few ulp (~1e-6).
  backward (dinp, dweight, dbias): rtol = atol = 1e-4. dinp subtracts two row
    means from w*dout, and dweight/dbias sum up to 4096 rows of O(1) terms
    (values up to ~100), so float32 rounding reaches ~1e-5 there.
"""

import numpy as np
import pytest

from cllm_app.kernels import layernorm, reference
from tests.kernel_support import VARIANTS, kernels, with_bad_argument

FWD_TOL = {"rtol": 1e-5, "atol": 1e-5}
BWD_TOL = {"rtol": 1e-4, "atol": 1e-4}

# (N, C): one row; C not a multiple of the 16-wide inner loops (so the scalar
# tails run); C smaller than 16 (tails only); a single column (variance 0);
# the two training configs the bench uses; and a large N.
SHAPES = [
    (1, 7),
    (1, 768),
    (3, 33),
    (5, 1),
    (64, 100),
    (1024, 128),
    (2048, 384),
    (4096, 384),
]


def make_inputs(n, c, seed=0, offset=0.0):
    rng = np.random.default_rng(seed)
    inp = (rng.standard_normal((n, c)) * 1.5 + offset).astype(np.float32)
    weight = rng.standard_normal(c).astype(np.float32)
    bias = rng.standard_normal(c).astype(np.float32)
    dout = rng.standard_normal((n, c)).astype(np.float32)
    return inp, weight, bias, dout


def run_forward(impl, inp, weight, bias):
    n, c = inp.shape
    out = np.full((n, c), np.nan, dtype=np.float32)
    mean = np.full(n, np.nan, dtype=np.float32)
    rstd = np.full(n, np.nan, dtype=np.float32)
    impl.layernorm_forward(out, mean, rstd, inp, weight, bias)
    return out, mean, rstd


def run_backward(impl, dout, inp, weight, mean, rstd, start=None):
    """Gradients added onto `start` (three arrays) or onto zeros."""
    n, c = inp.shape
    if start is None:
        start = (np.zeros((n, c), np.float32), np.zeros(c, np.float32), np.zeros(c, np.float32))
    dinp, dweight, dbias = (a.copy() for a in start)
    impl.layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd)
    return dinp, dweight, dbias


@pytest.mark.parametrize("n,c", SHAPES)
def test_forward_matches_reference(n, c):
    inp, weight, bias, _ = make_inputs(n, c)
    got = run_forward(layernorm, inp, weight, bias)
    want = run_forward(reference, inp, weight, bias)
    for name, g, w in zip(("out", "mean", "rstd"), got, want, strict=True):
        np.testing.assert_allclose(g, w, **FWD_TOL, err_msg=name)


@pytest.mark.parametrize("n,c", SHAPES)
def test_backward_matches_reference(n, c):
    inp, weight, bias, dout = make_inputs(n, c)
    _, mean, rstd = run_forward(layernorm, inp, weight, bias)
    _, ref_mean, ref_rstd = run_forward(reference, inp, weight, bias)
    got = run_backward(layernorm, dout, inp, weight, mean, rstd)
    want = run_backward(reference, dout, inp, weight, ref_mean, ref_rstd)
    for name, g, w in zip(("dinp", "dweight", "dbias"), got, want, strict=True):
        np.testing.assert_allclose(g, w, **BWD_TOL, err_msg=name)


def test_rows_far_from_zero_mean():
    # Rows centred at 10 with spread 1.5: a one-pass E[x^2] - mean^2 would
    # lose digits here; the kernel must still match.
    inp, weight, bias, dout = make_inputs(256, 96, seed=3, offset=10.0)
    got = run_forward(layernorm, inp, weight, bias)
    want = run_forward(reference, inp, weight, bias)
    for name, g, w in zip(("out", "mean", "rstd"), got, want, strict=True):
        np.testing.assert_allclose(g, w, **FWD_TOL, err_msg=name)
    got = run_backward(layernorm, dout, inp, weight, got[1], got[2])
    want = run_backward(reference, dout, inp, weight, want[1], want[2])
    for name, g, w in zip(("dinp", "dweight", "dbias"), got, want, strict=True):
        np.testing.assert_allclose(g, w, **BWD_TOL, err_msg=name)


@pytest.mark.parametrize("impl", [layernorm, reference], ids=["kernel", "reference"])
def test_backward_accumulates_into_gradients(impl):
    n, c = 40, 24
    inp, weight, bias, dout = make_inputs(n, c, seed=1)
    _, mean, rstd = run_forward(impl, inp, weight, bias)
    rng = np.random.default_rng(2)
    start = (
        rng.standard_normal((n, c)).astype(np.float32),
        rng.standard_normal(c).astype(np.float32),
        rng.standard_normal(c).astype(np.float32),
    )
    fresh = run_backward(impl, dout, inp, weight, mean, rstd)
    added = run_backward(impl, dout, inp, weight, mean, rstd, start=start)
    for name, a, f, s in zip(("dinp", "dweight", "dbias"), added, fresh, start, strict=True):
        np.testing.assert_allclose(a, s + f, rtol=1e-5, atol=1e-5, err_msg=name)


def test_reference_gradient_matches_finite_differences():
    # In float64 on a tiny problem: loss = sum(out * dout), whose gradient
    # with respect to out is dout, so the reference backward must match the
    # numerical derivative of the reference forward.
    rng = np.random.default_rng(7)
    n, c = 3, 5
    inp = rng.standard_normal((n, c))
    weight = rng.standard_normal(c)
    bias = rng.standard_normal(c)
    dout = rng.standard_normal((n, c))

    def loss(x, w, b):
        out, mean, rstd = np.empty((n, c)), np.empty(n), np.empty(n)
        reference.layernorm_forward(out, mean, rstd, x, w, b)
        return float((out * dout).sum())

    def numeric_grad(arr):
        h = 1e-6
        grad = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            keep = arr[idx]
            arr[idx] = keep + h
            up = loss(inp, weight, bias)
            arr[idx] = keep - h
            down = loss(inp, weight, bias)
            arr[idx] = keep
            grad[idx] = (up - down) / (2 * h)
        return grad

    out, mean, rstd = np.empty((n, c)), np.empty(n), np.empty(n)
    reference.layernorm_forward(out, mean, rstd, inp, weight, bias)
    dinp, dweight, dbias = np.zeros((n, c)), np.zeros(c), np.zeros(c)
    reference.layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd)

    np.testing.assert_allclose(dinp, numeric_grad(inp), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dweight, numeric_grad(weight), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dbias, numeric_grad(bias), rtol=1e-6, atol=1e-8)


def test_matches_torch():
    # An independent check of the semantics (biased variance, eps inside the
    # square root) that the reference and the kernel could share by mistake.
    # The test command installs the [bench] extra, so torch is always here.
    import torch

    inp, weight, bias, dout = make_inputs(32, 48, seed=5)
    x = torch.from_numpy(inp).requires_grad_()
    w = torch.from_numpy(weight).requires_grad_()
    b = torch.from_numpy(bias).requires_grad_()
    y = torch.nn.functional.layer_norm(x, (48,), w, b, eps=1e-5)
    y.backward(torch.from_numpy(dout))

    out, mean, rstd = run_forward(layernorm, inp, weight, bias)
    np.testing.assert_allclose(out, y.detach().numpy(), **FWD_TOL)
    got = run_backward(layernorm, dout, inp, weight, mean, rstd)
    for name, g, t in zip(("dinp", "dweight", "dbias"), got, (x.grad, w.grad, b.grad), strict=True):
        np.testing.assert_allclose(g, t.numpy(), **BWD_TOL, err_msg=name)


def test_zero_rows_is_a_no_op():
    inp, weight, bias, dout = make_inputs(0, 16)
    out, mean, rstd = run_forward(layernorm, inp, weight, bias)
    assert out.shape == (0, 16) and mean.shape == (0,)
    _, dweight, dbias = run_backward(layernorm, dout, inp, weight, mean, rstd)
    assert not dweight.any() and not dbias.any()


def test_results_are_identical_across_runs():
    # Bitwise, not approximately: the dweight/dbias reduction must not depend
    # on thread timing.
    inp, weight, bias, dout = make_inputs(4096, 384, seed=11)
    first = run_forward(layernorm, inp, weight, bias)
    first_grads = run_backward(layernorm, dout, inp, weight, first[1], first[2])
    for _ in range(3):
        again = run_forward(layernorm, inp, weight, bias)
        again_grads = run_backward(layernorm, dout, inp, weight, again[1], again[2])
        for a, b in zip(first + first_grads, again + again_grads, strict=True):
            assert np.array_equal(a, b)


def _forward_args(n=4, c=8):
    inp, weight, bias, _ = make_inputs(n, c)
    return {
        "out": np.zeros((n, c), np.float32),
        "mean": np.zeros(n, np.float32),
        "rstd": np.zeros(n, np.float32),
        "inp": inp,
        "weight": weight,
        "bias": bias,
    }


def _backward_args(n=4, c=8):
    inp, weight, _, dout = make_inputs(n, c)
    return {
        "dinp": np.zeros((n, c), np.float32),
        "dweight": np.zeros(c, np.float32),
        "dbias": np.zeros(c, np.float32),
        "dout": dout,
        "inp": inp,
        "weight": weight,
        "mean": np.zeros(n, np.float32),
        "rstd": np.ones(n, np.float32),
    }


BAD_FORWARD = {
    "weight too short": ("weight", np.zeros(7, np.float32), "weight has shape"),
    "bias too long": ("bias", np.zeros(9, np.float32), "bias has shape"),
    "out wrong rows": ("out", np.zeros((5, 8), np.float32), "out has shape"),
    "mean wrong length": ("mean", np.zeros(3, np.float32), "mean has shape"),
    "rstd 2-D": ("rstd", np.zeros((4, 1), np.float32), "rstd has shape"),
    "inp 1-D": ("inp", np.zeros(32, np.float32), "inp must be a 2-D"),
    "inp float64": ("inp", np.zeros((4, 8)), "inp must be float32"),
    "out not contiguous": ("out", np.zeros((8, 4), np.float32).T, "out must be C-contiguous"),
    "out read-only": ("out", np.lib.stride_tricks.as_strided(np.zeros((4, 8), np.float32),
                                                             writeable=False), "read-only"),
    "weight a list": ("weight", [0.0] * 8, "weight must be a numpy array"),
}

BAD_BACKWARD = {
    "dout wrong columns": ("dout", np.zeros((4, 9), np.float32), "dout has shape"),
    "dweight too long": ("dweight", np.zeros(9, np.float32), "dweight has shape"),
    "dbias float64": ("dbias", np.zeros(8), "dbias must be float32"),
    "dinp wrong rows": ("dinp", np.zeros((3, 8), np.float32), "dinp has shape"),
    "mean wrong length": ("mean", np.zeros(5, np.float32), "mean has shape"),
    "rstd wrong length": ("rstd", np.zeros(3, np.float32), "rstd has shape"),
    "inp no columns": ("inp", np.zeros((4, 0), np.float32), "at least one column"),
}


@pytest.mark.parametrize("case", list(BAD_FORWARD), ids=list(BAD_FORWARD))
def test_forward_rejects_bad_arguments(case):
    with pytest.raises(ValueError, match=BAD_FORWARD[case][2]):
        layernorm.layernorm_forward(**with_bad_argument(_forward_args(), BAD_FORWARD[case]))


@pytest.mark.parametrize("case", list(BAD_BACKWARD), ids=list(BAD_BACKWARD))
def test_backward_rejects_bad_arguments(case):
    with pytest.raises(ValueError, match=BAD_BACKWARD[case][2]):
        layernorm.layernorm_backward(**with_bad_argument(_backward_args(), BAD_BACKWARD[case]))


@pytest.mark.parametrize("shared", ["dout", "inp"])
def test_backward_rejects_dinp_sharing_memory_with_an_input(shared):
    # The kernel tells the compiler its outputs alias no input, so it must
    # refuse a call where they would, e.g. an in-place dinp.
    args = _backward_args()
    args["dinp"] = args[shared]
    with pytest.raises(ValueError, match=f"dinp must not share memory with {shared}"):
        layernorm.layernorm_backward(**args)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("n,c", [(1, 7), (3, 33), (64, 100), (1024, 128), (2048, 384)])
def test_backward_can_overwrite_dinp(variant, n, c):
    # accumulate_dinp=False: dinp holds garbage before and this row's gradient after,
    # while dweight and dbias are still added into.
    K = kernels(variant)
    inp, weight, bias, dout = make_inputs(n, c, seed=11)
    _, mean, rstd = run_forward(reference, inp, weight, bias)
    rng = np.random.default_rng(12)
    start_w, start_b = rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    want = [np.zeros((n, c), np.float32), start_w.copy(), start_b.copy()]
    reference.layernorm_backward(*want, dout, inp, weight, mean, rstd)
    got = [np.full((n, c), np.nan, np.float32), start_w.copy(), start_b.copy()]
    K.layernorm_backward(*got, dout, inp, weight, mean, rstd, accumulate_dinp=False)
    for name, g, w in zip(("dinp", "dweight", "dbias"), got, want, strict=True):
        np.testing.assert_allclose(g, w, **BWD_TOL, err_msg=name)
    ref = [np.full((n, c), np.nan, np.float32), start_w.copy(), start_b.copy()]
    reference.layernorm_backward(*ref, dout, inp, weight, mean, rstd, accumulate_dinp=False)
    for name, g, w in zip(("dinp", "dweight", "dbias"), ref, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6, err_msg=name)
