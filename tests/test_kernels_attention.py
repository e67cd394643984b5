"""The fused causal attention kernel against its numpy reference, on every CPU variant.

The reference builds every head's full T x T score matrix in float64; the
kernel never does (online softmax over key blocks of 32). Tolerances:
  forward (out, lse): rtol = atol = 1e-5. Each output is a convex
    combination of v rows; the float32 scores, exp (1 ulp) and the running
    rescaling add a few ulp.
  backward (dqkv): rtol = atol = 2e-4, normwise (relative to the largest
    gradient). dq and dk sum T terms of P * (dP - D) in float32, D cancels
    against dP, and the probabilities come from lse, so rounding reaches ~1e-5.
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
BWD_TOL = 2e-4

# (B, T, C, NH): one token; T not a multiple of the 32-key blocks (1, 31, 33,
# 37, 65); C = 48 with NH = 3 (hs = 16); hs = 20 and 24, not multiples of the
# 16-float vectors; one head; configs A (hs 32) and B (hs 64); long contexts
# past any tile of 64 or 128 query rows and not a multiple of one (200), up to
# a block_size of 1024.
SHAPES = [
    (1, 1, 16, 1),
    (2, 37, 48, 3),
    (1, 31, 60, 3),
    (3, 33, 72, 3),
    (2, 65, 64, 1),
    (8, 128, 128, 4),
    (4, 256, 384, 6),
    (1, 200, 64, 2),
    (1, 1024, 64, 2),
]


@pytest.fixture(params=VARIANTS)
def K(request):
    return kernels(request.param)


def close(got, want, tol, name=""):
    want = np.asarray(want, np.float64)
    err = np.abs(got.astype(np.float64) - want).max()
    scale = max(1.0, float(np.abs(want).max()))
    assert err <= tol * scale, f"{name}: max error {err:.3g} > {tol:g} * {scale:.3g}"


def inputs(B, T, C, seed=0, spread=1.0):
    rng = np.random.default_rng(seed)
    return randn(rng, B * T, 3 * C, scale=spread), randn(rng, B * T, C)


def forward(impl, qkv, B, T, NH):
    C = qkv.shape[1] // 3
    out = np.full((B * T, C), np.nan, np.float32)
    lse = np.full((B, NH, T), np.nan, np.float32)
    impl.attention_forward(out, lse, qkv, B, T, NH)
    return out, lse


@pytest.mark.parametrize("B,T,C,NH", SHAPES)
def test_forward_matches_reference(K, B, T, C, NH):
    qkv, _ = inputs(B, T, C)
    out, lse = forward(K, qkv, B, T, NH)
    want_out, want_lse = forward(reference, qkv, B, T, NH)
    np.testing.assert_allclose(out, want_out, rtol=FWD_TOL, atol=FWD_TOL, err_msg="out")
    np.testing.assert_allclose(lse, want_lse, rtol=FWD_TOL, atol=FWD_TOL, err_msg="lse")


@pytest.mark.parametrize("B,T,C,NH", SHAPES)
def test_backward_matches_reference_and_accumulates(K, B, T, C, NH):
    qkv, dout = inputs(B, T, C)
    out, lse = forward(reference, qkv, B, T, NH)
    start = randn(np.random.default_rng(1), B * T, 3 * C)
    got, want = start.copy(), start.copy()
    K.attention_backward(got, dout, qkv, out, lse, B, T, NH)
    reference.attention_backward(want, dout, qkv, out, lse, B, T, NH)
    close(got - start, want - start, BWD_TOL, "dqkv")
    close(got, want, BWD_TOL, "dqkv + start")


def test_peaked_softmax_is_stable(K):
    # Scores spread over hundreds: the running max of the online softmax moves
    # by large steps from block to block, and exp would overflow without it.
    B, T, C, NH = 2, 100, 64, 2
    qkv, dout = inputs(B, T, C, seed=2, spread=6.0)
    out, lse = forward(K, qkv, B, T, NH)
    want_out, want_lse = forward(reference, qkv, B, T, NH)
    assert np.abs(want_lse).max() > 50
    close(out, want_out, FWD_TOL, "out")
    np.testing.assert_allclose(lse, want_lse, rtol=FWD_TOL, atol=FWD_TOL, err_msg="lse")
    got, want = np.zeros_like(qkv), np.zeros_like(qkv)
    K.attention_backward(got, dout, qkv, out, lse, B, T, NH)
    reference.attention_backward(want, dout, qkv, want_out, want_lse, B, T, NH)
    close(got, want, BWD_TOL, "dqkv")


def test_first_position_attends_to_itself_only(K):
    B, T, C, NH = 1, 40, 32, 2
    qkv, _ = inputs(B, T, C, seed=3)
    out, _ = forward(K, qkv, B, T, NH)
    np.testing.assert_allclose(out[0], qkv[0, 2 * C:], rtol=1e-6, atol=1e-6)


def test_results_are_identical_across_runs(K):
    B, T, C, NH = 8, 256, 384, 6
    qkv, dout = inputs(B, T, C, seed=4)
    first = None
    for _ in range(3):
        out, lse = forward(K, qkv, B, T, NH)
        dqkv = np.zeros_like(qkv)
        K.attention_backward(dqkv, dout, qkv, out, lse, B, T, NH)
        if first is None:
            first = (out, lse, dqkv)
        else:
            for a, b in zip(first, (out, lse, dqkv), strict=True):
                assert np.array_equal(a, b)


def test_reference_gradient_matches_finite_differences():
    rng = np.random.default_rng(6)
    B, T, C, NH = 2, 4, 6, 2
    qkv = rng.standard_normal((B * T, 3 * C))
    dout = rng.standard_normal((B * T, C))

    def loss():
        out, lse = np.empty((B * T, C)), np.empty((B, NH, T))
        reference.attention_forward(out, lse, qkv, B, T, NH)
        return float((out * dout).sum())

    out, lse = np.empty((B * T, C)), np.empty((B, NH, T))
    reference.attention_forward(out, lse, qkv, B, T, NH)
    dqkv = np.zeros_like(qkv)
    reference.attention_backward(dqkv, dout, qkv, out, lse, B, T, NH)
    np.testing.assert_allclose(dqkv, numeric_grad(loss, qkv), rtol=1e-6, atol=1e-8)


def test_zero_length_is_a_no_op(K):
    # Zero-length views into buffers full of sentinels: a kernel that wrote anywhere (past
    # the end of an empty view, or through a size it got wrong) would change a sentinel.
    base = {name: np.full(64, 7.0, np.float32) for name in ("out", "lse", "qkv", "dqkv", "dout")}
    out, qkv, dqkv, dout = (base[n][:0].reshape(0, w) for n, w in (("out", 4), ("qkv", 12), ("dqkv", 12), ("dout", 4)))
    lse = base["lse"][:0].reshape(2, 2, 0)
    assert K.attention_forward(out, lse, qkv, 2, 0, 2) is None
    assert K.attention_backward(dqkv, dout, qkv, out, lse, 2, 0, 2) is None
    for name, buf in base.items():
        assert np.all(buf == 7.0), f"{name} was written"


def _forward_args():
    qkv, _ = inputs(2, 5, 12)
    return {"out": np.zeros((10, 12), np.float32), "lse": np.zeros((2, 3, 5), np.float32),
            "qkv": qkv, "B": 2, "T": 5, "NH": 3}


def _backward_args():
    qkv, dout = inputs(2, 5, 12)
    return {"dqkv": np.zeros_like(qkv), "dout": dout, "qkv": qkv,
            "out": np.zeros((10, 12), np.float32), "lse": np.zeros((2, 3, 5), np.float32),
            "B": 2, "T": 5, "NH": 3}


BAD_FORWARD = {
    "NH does not divide C": ("NH", 5, "not a multiple of NH"),
    "NH zero": ("NH", 0, "NH >= 1"),
    "qkv columns not 3C": ("qkv", np.zeros((10, 13), np.float32), "expected 3 \\* C"),
    "qkv wrong rows": ("T", 4, "qkv has shape"),
    "lse other heads": ("lse", np.zeros((2, 2, 5), np.float32), "lse has shape"),
    "out wrong width": ("out", np.zeros((10, 36), np.float32), "out has shape"),
    "qkv float64": ("qkv", np.zeros((10, 36)), "qkv must be float32"),
    "out read-only": ("out", np.lib.stride_tricks.as_strided(np.zeros((10, 12), np.float32),
                                                             writeable=False), "read-only"),
}

BAD_BACKWARD = {
    "dout wrong rows": ("dout", np.zeros((9, 12), np.float32), "dout has shape"),
    "dqkv wrong width": ("dqkv", np.zeros((10, 12), np.float32), "dqkv has shape"),
    "lse flat": ("lse", np.zeros(30, np.float32), "lse has shape"),
    "dqkv is qkv": ("dqkv", "qkv", "dqkv must not share memory with qkv"),
}


@pytest.mark.parametrize("case", list(BAD_FORWARD), ids=list(BAD_FORWARD))
def test_forward_rejects_bad_arguments(K, case):
    with pytest.raises(ValueError, match=BAD_FORWARD[case][2]):
        K.attention_forward(**with_bad_argument(_forward_args(), BAD_FORWARD[case]))


@pytest.mark.parametrize("case", list(BAD_BACKWARD), ids=list(BAD_BACKWARD))
def test_backward_rejects_bad_arguments(K, case):
    with pytest.raises(ValueError, match=BAD_BACKWARD[case][2]):
        K.attention_backward(**with_bad_argument(_backward_args(), BAD_BACKWARD[case]))


def test_out_sharing_memory_with_qkv_is_rejected(K):
    qkv, _ = inputs(1, 4, 8)
    with pytest.raises(ValueError, match="out must not share memory with qkv"):
        K.attention_forward(qkv.reshape(-1)[: 4 * 8].reshape(4, 8), np.zeros((1, 2, 4), np.float32),
                            qkv, 1, 4, 2)


def test_concurrent_calls_from_python_threads(K):
    # The kernels release the GIL and keep scratch memory between calls; two
    # threads calling at once must each get their own and the same results.
    B, T, C, NH = 4, 96, 96, 3
    cases = [inputs(B, T, C, seed=s) for s in range(6)]

    def run(case):
        qkv, dout = case
        out, lse = forward(K, qkv, B, T, NH)
        dqkv = np.zeros_like(qkv)
        K.attention_backward(dqkv, dout, qkv, out, lse, B, T, NH)
        return out, lse, dqkv

    assert_same_from_python_threads(run, cases)


@pytest.mark.parametrize("B,T,C,NH", SHAPES)
def test_backward_can_overwrite(K, B, T, C, NH):
    # accumulate=False must write every element of dqkv (NaN-filled here), each pair its own columns.
    qkv, dout = inputs(B, T, C)
    out, lse = forward(reference, qkv, B, T, NH)
    got = np.full((B * T, 3 * C), np.nan, np.float32)
    want = np.zeros((B * T, 3 * C), np.float32)
    K.attention_backward(got, dout, qkv, out, lse, B, T, NH, accumulate=False)
    reference.attention_backward(want, dout, qkv, out, lse, B, T, NH)
    close(got, want, BWD_TOL, "dqkv")
    ref = np.full((B * T, 3 * C), np.nan, np.float32)
    reference.attention_backward(ref, dout, qkv, out, lse, B, T, NH, accumulate=False)
    close(ref, want, 1e-12, "reference dqkv")
