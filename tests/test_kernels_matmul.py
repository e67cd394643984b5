"""The matmul kernels (our GEMM underneath) against their numpy reference, on every CPU variant.

Inputs are scaled so every output is O(1) (weights ~ N(0, 1/C)), and the
float32 products are compared with the float64 reference at
  forward: rtol = atol = 1e-5. A dot product of K float32 terms is off by
    about sqrt(K) * 6e-8 of the size of its terms, ~2e-6 for K = 1536.
  backward: rtol = atol = 1e-4, relative to the largest value of that
    gradient (normwise): dweight and dbias sum N = 2048 rows, whose float32
    rounding grows to ~1e-5 of the sum of their sizes, and single elements of
    such sums may cancel to near zero, where element-wise rtol means nothing.
"""

import numpy as np
import pytest

from cllm_app.kernels import reference
from tests.kernel_support import (
    VARIANTS,
    assert_same_from_python_threads,
    kernels,
    numeric_grad,
    randn,
    with_bad_argument,
)

FWD_TOL = 1e-5
BWD_TOL = 1e-4

# (N, C, OC): a single row and column; odd sizes; C = 48; the four linear
# layers of config A (C = 128) and B (C = 384); the tied heads have OC = V.
SHAPES = [
    (1, 1, 1),
    (37, 48, 144),
    (33, 7, 13),
    (1024, 128, 384),
    (1024, 512, 128),
    (2048, 384, 1536),
    (2048, 1536, 384),
]
TIED = [(1, 1, 1), (37, 48, 257), (1024, 128, 256), (2048, 384, 4096)]


@pytest.fixture(params=VARIANTS)
def K(request):
    return kernels(request.param)


def close(got, want, tol, name=""):
    """max |got - want| <= tol * max(1, max |want|): normwise, for sums that may cancel."""
    want = np.asarray(want, np.float64)
    err = np.abs(got.astype(np.float64) - want).max() if want.size else 0.0
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    assert err <= tol * scale, f"{name}: max error {err:.3g} > {tol:g} * {scale:.3g}"


def linear_inputs(n, c, oc, seed=0):
    rng = np.random.default_rng(seed)
    x = randn(rng, n, c)
    w = randn(rng, c, oc, scale=c**-0.5)
    b = randn(rng, oc, scale=0.1)
    dout = randn(rng, n, oc, scale=oc**-0.5)
    return x, w, b, dout


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("n,c,oc", SHAPES)
def test_forward_matches_reference(K, n, c, oc, with_bias):
    x, w, b, _ = linear_inputs(n, c, oc)
    bias = b if with_bias else None
    got = np.full((n, oc), np.nan, np.float32)  # NaN: every element must be overwritten
    want = np.empty((n, oc), np.float32)
    K.matmul_forward(got, x, w, bias)
    reference.matmul_forward(want, x, w, bias)
    np.testing.assert_allclose(got, want, rtol=FWD_TOL, atol=FWD_TOL)


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("n,c,oc", SHAPES)
def test_backward_matches_reference_and_accumulates(K, n, c, oc, with_bias):
    x, w, _, dout = linear_inputs(n, c, oc)
    rng = np.random.default_rng(1)
    start = [randn(rng, n, c), randn(rng, c, oc), randn(rng, oc) if with_bias else None]
    got = [None if a is None else a.copy() for a in start]
    want = [None if a is None else a.copy() for a in start]
    K.matmul_backward(*got, dout, x, w)
    reference.matmul_backward(*want, dout, x, w)
    for name, g, r in zip(("dinp", "dweight", "dbias"), got, want, strict=True):
        if r is not None:
            close(g, r, BWD_TOL, name)


@pytest.mark.parametrize("n,c,v", TIED)
def test_tied_forward_matches_reference(K, n, c, v):
    x, wte, _, _ = linear_inputs(n, c, v)
    wte = np.ascontiguousarray(wte.T)  # (V, C)
    got, want = np.full((n, v), np.nan, np.float32), np.empty((n, v), np.float32)
    K.matmul_forward_tied(got, x, wte)
    reference.matmul_forward_tied(want, x, wte)
    np.testing.assert_allclose(got, want, rtol=FWD_TOL, atol=FWD_TOL)


@pytest.mark.parametrize("n,c,v", TIED)
def test_tied_backward_matches_reference_and_accumulates(K, n, c, v):
    x, wte, _, dout = linear_inputs(n, c, v)
    wte = np.ascontiguousarray(wte.T)
    rng = np.random.default_rng(2)
    start = [randn(rng, n, c), randn(rng, v, c)]
    got = [a.copy() for a in start]
    want = [a.copy() for a in start]
    K.matmul_backward_tied(*got, dout, x, wte)
    reference.matmul_backward_tied(*want, dout, x, wte)
    for name, g, r in zip(("dinp", "dwte"), got, want, strict=True):
        close(g, r, BWD_TOL, name)


def test_results_are_identical_across_runs(K):
    x, w, b, dout = linear_inputs(2048, 384, 1536, seed=3)
    runs = []
    for _ in range(3):
        out = np.empty((2048, 1536), np.float32)
        K.matmul_forward(out, x, w, b)
        grads = [np.zeros_like(x), np.zeros_like(w), np.zeros_like(b)]
        K.matmul_backward(*grads, dout, x, w)
        runs.append([out, *grads])
    for again in runs[1:]:
        for a, r in zip(runs[0], again, strict=True):
            assert np.array_equal(a, r)


def test_reference_gradients_match_finite_differences():
    rng = np.random.default_rng(5)
    n, c, oc, v = 3, 4, 5, 6
    x, w, b = rng.standard_normal((n, c)), rng.standard_normal((c, oc)), rng.standard_normal(oc)
    wte = rng.standard_normal((v, c))
    dout, dlog = rng.standard_normal((n, oc)), rng.standard_normal((n, v))

    def loss():
        out, logits = np.empty((n, oc)), np.empty((n, v))
        reference.matmul_forward(out, x, w, b)
        reference.matmul_forward_tied(logits, x, wte)
        return float((out * dout).sum() + (logits * dlog).sum())

    dx, dw, db, dwte = np.zeros((n, c)), np.zeros((c, oc)), np.zeros(oc), np.zeros((v, c))
    reference.matmul_backward(dx, dw, db, dout, x, w)
    reference.matmul_backward_tied(dx, dwte, dlog, x, wte)
    for name, got, arr in (("dinp", dx, x), ("dweight", dw, w), ("dbias", db, b), ("dwte", dwte, wte)):
        np.testing.assert_allclose(got, numeric_grad(loss, arr), rtol=1e-6, atol=1e-8, err_msg=name)


def test_zero_rows_is_a_no_op(K):
    x, w, b, dout = linear_inputs(0, 4, 3)
    K.matmul_forward(np.empty((0, 3), np.float32), x, w, b)
    dw, db = np.ones_like(w), np.ones_like(b)
    K.matmul_backward(np.empty((0, 4), np.float32), dw, db, dout, x, w)
    assert (dw == 1).all() and (db == 1).all()


def _forward_args():
    x, w, b, _ = linear_inputs(4, 3, 5)
    return {"out": np.zeros((4, 5), np.float32), "inp": x, "weight": w, "bias": b}


def _backward_args():
    x, w, b, dout = linear_inputs(4, 3, 5)
    return {"dinp": np.zeros_like(x), "dweight": np.zeros_like(w), "dbias": np.zeros_like(b),
            "dout": dout, "inp": x, "weight": w}


BAD_FORWARD = {
    "weight other rows": ("weight", np.zeros((4, 5), np.float32), "weight has shape"),
    "bias too long": ("bias", np.zeros(6, np.float32), "bias has shape"),
    "out wrong columns": ("out", np.zeros((4, 6), np.float32), "out has shape"),
    "inp float64": ("inp", np.zeros((4, 3)), "inp must be float32"),
    "inp 1-D": ("inp", np.zeros(12, np.float32), "inp must be a 2-D"),
    "weight not contiguous": ("weight", np.zeros((5, 3), np.float32).T, "weight must be C-contiguous"),
    "out is inp": ("out", "inp", "out has shape"),
}

BAD_BACKWARD = {
    "dout wrong columns": ("dout", np.zeros((4, 6), np.float32), "dout has shape"),
    "dweight transposed": ("dweight", np.zeros((5, 3), np.float32), "dweight has shape"),
    "dbias float64": ("dbias", np.zeros(5), "dbias must be float32"),
    "dinp is inp": ("dinp", "inp", "dinp must not share memory with inp"),
    "dweight is weight": ("dweight", "weight", "dweight must not share memory with weight"),
}


@pytest.mark.parametrize("case", list(BAD_FORWARD), ids=list(BAD_FORWARD))
def test_forward_rejects_bad_arguments(K, case):
    with pytest.raises(ValueError, match=BAD_FORWARD[case][2]):
        K.matmul_forward(**with_bad_argument(_forward_args(), BAD_FORWARD[case]))


@pytest.mark.parametrize("case", list(BAD_BACKWARD), ids=list(BAD_BACKWARD))
def test_backward_rejects_bad_arguments(K, case):
    with pytest.raises(ValueError, match=BAD_BACKWARD[case][2]):
        K.matmul_backward(**with_bad_argument(_backward_args(), BAD_BACKWARD[case]))


def test_output_sharing_memory_with_an_input_is_rejected(K):
    x, w, _, _ = linear_inputs(3, 3, 3)
    with pytest.raises(ValueError, match="out must not share memory with inp"):
        K.matmul_forward(x, x, w, None)
    wte = np.ascontiguousarray(w.T)
    with pytest.raises(ValueError, match="out must not share memory with wte"):
        K.matmul_forward_tied(wte, x, wte)
    dout = np.zeros((3, 3), np.float32)
    with pytest.raises(ValueError, match="dinp must not share memory with dwte"):
        K.matmul_backward_tied(wte, wte, dout, x, np.ones((3, 3), np.float32))


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("n,c,oc", SHAPES)
def test_forward_adds_the_residual(K, n, c, oc, with_bias):
    # The block's residual add fused into the projection: out = inp @ weight + bias + residual.
    x, w, b, _ = linear_inputs(n, c, oc)
    residual = randn(np.random.default_rng(4), n, oc)
    bias = b if with_bias else None
    got = np.full((n, oc), np.nan, np.float32)
    want = np.empty((n, oc), np.float32)
    K.matmul_forward(got, x, w, bias, residual)
    reference.matmul_forward(want, x, w, bias, residual)
    np.testing.assert_allclose(got, want, rtol=FWD_TOL, atol=FWD_TOL)
    plain = np.empty((n, oc), np.float32)
    reference.matmul_forward(plain, x, w, bias)
    np.testing.assert_allclose(got, plain + residual, rtol=FWD_TOL, atol=FWD_TOL)


def test_forward_rejects_a_bad_residual(K):
    x, w, b, _ = linear_inputs(5, 3, 4)
    out = np.empty((5, 4), np.float32)
    with pytest.raises(ValueError, match="residual has shape"):
        K.matmul_forward(out, x, w, b, np.zeros((5, 3), np.float32))
    with pytest.raises(ValueError, match="residual must be float32"):
        K.matmul_forward(out, x, w, b, np.zeros((5, 4), np.float64))
    with pytest.raises(ValueError, match="must not share memory with residual"):
        K.matmul_forward(out, x, w, b, out)


@pytest.mark.parametrize("n,c,oc", SHAPES)
def test_backward_can_overwrite_dinp(K, n, c, oc):
    # accumulate_dinp=False writes dinp (NaN-filled here: every element must be written)
    # and still adds into dweight and dbias.
    x, w, _, dout = linear_inputs(n, c, oc)
    rng = np.random.default_rng(6)
    dw0, db0 = randn(rng, c, oc), randn(rng, oc)
    got = [np.full((n, c), np.nan, np.float32), dw0.copy(), db0.copy()]
    want = [np.zeros((n, c), np.float32), dw0.copy(), db0.copy()]
    K.matmul_backward(*got, dout, x, w, accumulate_dinp=False)
    reference.matmul_backward(*want, dout, x, w)
    for name, g, r in zip(("dinp", "dweight", "dbias"), got, want, strict=True):
        close(g, r, BWD_TOL, name)
    again = [np.full((n, c), np.nan, np.float32), dw0.copy(), db0.copy()]
    reference.matmul_backward(*again, dout, x, w, accumulate_dinp=False)
    close(again[0], want[0], 1e-12, "reference dinp")


@pytest.mark.parametrize("n,c,v", TIED)
def test_tied_backward_can_overwrite_dinp(K, n, c, v):
    x, wte, _, dout = linear_inputs(n, c, v)
    wte = np.ascontiguousarray(wte.T)
    dwte0 = randn(np.random.default_rng(7), v, c)
    got = [np.full((n, c), np.nan, np.float32), dwte0.copy()]
    want = [np.zeros((n, c), np.float32), dwte0.copy()]
    K.matmul_backward_tied(*got, dout, x, wte, accumulate_dinp=False)
    reference.matmul_backward_tied(*want, dout, x, wte)
    for name, g, r in zip(("dinp", "dwte"), got, want, strict=True):
        close(g, r, BWD_TOL, name)
    ref = [np.full((n, c), np.nan, np.float32), dwte0.copy()]
    reference.matmul_backward_tied(*ref, dout, x, wte, accumulate_dinp=False)
    close(ref[0], want[0], 1e-12, "reference dinp")


def test_concurrent_calls_from_python_threads(K):
    # The kernels release the GIL and keep packing scratch per calling thread;
    # threads calling at once must each get their own and the same results.
    cases = [linear_inputs(300 + 50 * s, 96, 200, seed=s) for s in range(6)]

    def run(case):
        x, w, b, dout = case
        out = np.empty((x.shape[0], w.shape[1]), np.float32)
        K.matmul_forward(out, x, w, b)
        grads = [np.zeros_like(x), np.zeros_like(w), np.zeros_like(b)]
        K.matmul_backward(*grads, dout, x, w)
        return [out, *grads]

    assert_same_from_python_threads(run, cases)


_THREADS_SCRIPT = """
import hashlib, sys
import numpy as np
from cllm_app.kernels import ops, reference
K = ops.load(sys.argv[1])
rng = np.random.default_rng(0)
h = hashlib.sha256()
for n, c, oc in [(1024, 128, 384), (37, 48, 144), (700, 512, 128)]:
    x = rng.standard_normal((n, c)).astype(np.float32)
    w = (rng.standard_normal((c, oc)) * c ** -0.5).astype(np.float32)
    b = rng.standard_normal(oc).astype(np.float32)
    res = rng.standard_normal((n, oc)).astype(np.float32)
    dout = rng.standard_normal((n, oc)).astype(np.float32)
    out = np.empty((n, oc), np.float32)
    K.matmul_forward(out, x, w, b, res)
    grads = [np.zeros_like(x), np.zeros_like(w), np.zeros_like(b)]
    K.matmul_backward(*grads, dout, x, w)
    for a in (out, *grads):
        h.update(a.tobytes())
B, T, C, NH = 3, 200, 96, 3
qkv = rng.standard_normal((B * T, 3 * C)).astype(np.float32)
dout = rng.standard_normal((B * T, C)).astype(np.float32)
out, lse = np.empty((B * T, C), np.float32), np.empty((B, NH, T), np.float32)
K.attention_forward(out, lse, qkv, B, T, NH)
dqkv = np.empty_like(qkv)
K.attention_backward(dqkv, dout, qkv, out, lse, B, T, NH, accumulate=False)
for a in (out, lse, dqkv):
    h.update(a.tobytes())
print(h.hexdigest())
"""


def test_results_are_bit_identical_across_thread_counts(K):
    """Every product's sums run in a fixed order whichever thread computes a block,
    so 1, 2 or 3 OpenMP threads give the same bits (matmul and attention)."""
    import os
    import subprocess
    import sys

    digests = set()
    for threads in ("1", "2", "3"):
        env = {**os.environ, "OMP_NUM_THREADS": threads}
        done = subprocess.run([sys.executable, "-c", _THREADS_SCRIPT, K.variant], env=env,
                              capture_output=True, text=True, check=True)
        digests.add(done.stdout.strip())
    assert len(digests) == 1


@pytest.mark.parametrize("n,c,oc", [(37, 48, 144), (1024, 128, 512), (300, 384, 1536)])
def test_forward_applies_gelu_as_it_stores(K, n, c, oc):
    """With dgelu, out and dgelu are gelu and gelu' of the product: the reference's
    values, and the very bits of the product followed by gelu_forward."""
    x, w, b, _ = linear_inputs(n, c, oc)
    res = randn(np.random.default_rng(2), n, oc)
    got, dgelu = np.full((n, oc), np.nan, np.float32), np.full((n, oc), np.nan, np.float32)
    K.matmul_forward(got, x, w, b, res, dgelu=dgelu)
    want, want_d = np.empty((n, oc), np.float32), np.empty((n, oc), np.float32)
    reference.matmul_forward(want, x, w, b, res, dgelu=want_d)
    np.testing.assert_allclose(got, want, rtol=FWD_TOL, atol=FWD_TOL)
    np.testing.assert_allclose(dgelu, want_d, rtol=FWD_TOL, atol=FWD_TOL)
    two_pass, two_pass_d = np.empty((n, oc), np.float32), np.empty((n, oc), np.float32)
    K.matmul_forward(two_pass, x, w, b, res)
    K.gelu_forward(two_pass, two_pass, two_pass_d)
    assert np.array_equal(got, two_pass) and np.array_equal(dgelu, two_pass_d)


@pytest.mark.parametrize("n,c,oc", [(37, 144, 48), (1024, 512, 128), (300, 1536, 384)])
def test_backward_scales_dinp_as_it_stores(K, n, c, oc):
    """With dinp_scale, dinp = dinp_scale * (dout @ weight.T): the reference's values,
    and the very bits of the product followed by gelu_backward_saved."""
    x, w, _, dout = linear_inputs(n, c, oc)
    scale = randn(np.random.default_rng(3), n, c)
    got = [np.full((n, c), np.nan, np.float32), np.zeros((c, oc), np.float32), np.zeros(oc, np.float32)]
    K.matmul_backward(*got, dout, x, w, accumulate_dinp=False, dinp_scale=scale)
    want = [np.empty((n, c), np.float32), np.zeros((c, oc), np.float32), np.zeros(oc, np.float32)]
    reference.matmul_backward(*want, dout, x, w, accumulate_dinp=False, dinp_scale=scale)
    for name, g, r in zip(("dinp", "dweight", "dbias"), got, want, strict=True):
        close(g, r, BWD_TOL, name)
    two_pass = [np.empty((n, c), np.float32), np.zeros((c, oc), np.float32), np.zeros(oc, np.float32)]
    K.matmul_backward(*two_pass, dout, x, w, accumulate_dinp=False)
    K.gelu_backward_saved(two_pass[0], scale, two_pass[0], accumulate=False)
    for g, r in zip(got, two_pass, strict=True):
        assert np.array_equal(g, r)


def test_fused_options_reject_bad_arguments(K):
    x, w, b, dout = linear_inputs(8, 4, 6)
    out = np.empty((8, 6), np.float32)
    with pytest.raises(ValueError, match="dgelu must not share memory with out"):
        K.matmul_forward(out, x, w, b, dgelu=out)
    with pytest.raises(ValueError, match="dgelu has shape"):
        K.matmul_forward(out, x, w, b, dgelu=np.empty((8, 5), np.float32))
    grads = [np.zeros_like(x), np.zeros_like(w), np.zeros_like(b)]
    with pytest.raises(ValueError, match="dinp_scale needs accumulate_dinp=False"):
        K.matmul_backward(*grads, dout, x, w, dinp_scale=np.ones_like(x))
    with pytest.raises(ValueError, match="dinp must not share memory with dinp_scale"):
        K.matmul_backward(*grads, dout, x, w, accumulate_dinp=False, dinp_scale=grads[0])
