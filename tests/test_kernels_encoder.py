"""The Cython token + position embedding against its numpy reference, on every CPU variant.

Tolerances: none needed. Forward adds two float32 values, one rounding, the
same in both. Backward sums float32 rows: the reference adds in float64 and
rounds once, the kernel adds in float32 row by row, so a sum of k repeats of
a token differs by up to k ulp; compared with rtol = atol = 1e-5 for the few
repeats here (1e-4 where one token repeats hundreds of times).
"""

import numpy as np
import pytest

from cllm_app.kernels import reference
from tests.kernel_support import (
    VARIANTS,
    kernels,
    numeric_grad,
    overlapping_view,
    randn,
    with_bad_argument,
)

# (B, T, V, C, maxT): one token; odd sizes everywhere; C below and above the
# 16-column bands of the backward; config A's and B's shapes.
SHAPES = [
    (1, 1, 1, 1, 1),
    (2, 37, 257, 48, 40),
    (3, 5, 7, 17, 9),
    (8, 128, 256, 128, 128),
    (8, 256, 4096, 384, 256),
]


@pytest.fixture(params=VARIANTS)
def K(request):
    return kernels(request.param)


def inputs(B, T, V, C, maxT, seed=0):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, V, (B, T)).astype(np.int32)
    return idx, randn(rng, V, C), randn(rng, maxT, C), randn(rng, B * T, C)


@pytest.mark.parametrize("shape", SHAPES)
def test_forward_matches_reference(K, shape):
    B, T, V, C, maxT = shape
    idx, wte, wpe, _ = inputs(*shape)
    got, want = np.full((B * T, C), np.nan, np.float32), np.full((B * T, C), np.nan, np.float32)
    K.encoder_forward(got, idx, wte, wpe)
    reference.encoder_forward(want, idx, wte, wpe)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("shape", SHAPES)
def test_backward_matches_reference_and_accumulates(K, shape):
    B, T, V, C, maxT = shape
    idx, _, _, dout = inputs(*shape)
    rng = np.random.default_rng(1)
    start = (randn(rng, V, C), randn(rng, maxT, C))
    got = tuple(a.copy() for a in start)
    want = tuple(a.copy() for a in start)
    K.encoder_backward(*got, dout, idx)
    reference.encoder_backward(*want, dout, idx)
    for name, g, w in zip(("dwte", "dwpe"), got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5, err_msg=name)


def test_backward_sums_a_repeated_token(K):
    # One token everywhere: every row of dout lands in the same row of dwte.
    B, T, V, C = 4, 200, 3, 40
    idx = np.ones((B, T), np.int32)
    dout = randn(np.random.default_rng(2), B * T, C)
    dwte, dwpe = np.zeros((V, C), np.float32), np.zeros((T, C), np.float32)
    K.encoder_backward(dwte, dwpe, dout, idx)
    np.testing.assert_allclose(dwte[1], dout.astype(np.float64).sum(0), rtol=1e-4, atol=1e-4)
    assert not dwte[0].any() and not dwte[2].any()
    np.testing.assert_allclose(dwpe, dout.reshape(B, T, C).astype(np.float64).sum(0), rtol=1e-5, atol=1e-5)


def test_results_are_identical_across_runs(K):
    idx, wte, wpe, dout = inputs(8, 256, 4096, 384, 256, seed=3)
    runs = []
    for _ in range(3):
        out = np.empty((8 * 256, 384), np.float32)
        K.encoder_forward(out, idx, wte, wpe)
        dwte, dwpe = np.zeros_like(wte), np.zeros_like(wpe)
        K.encoder_backward(dwte, dwpe, dout, idx)
        runs.append((out, dwte, dwpe))
    for again in runs[1:]:
        for a, b in zip(runs[0], again, strict=True):
            assert np.array_equal(a, b)


def test_reference_gradient_matches_finite_differences():
    rng = np.random.default_rng(4)
    B, T, V, C, maxT = 2, 3, 4, 3, 5
    idx = np.array([[1, 3, 1], [0, 1, 2]], np.int32)
    wte, wpe, dout = rng.standard_normal((V, C)), rng.standard_normal((maxT, C)), rng.standard_normal((B * T, C))

    def loss():
        out = np.empty((B * T, C))
        reference.encoder_forward(out, idx, wte, wpe)
        return float((out * dout).sum())

    dwte, dwpe = np.zeros((V, C)), np.zeros((maxT, C))
    reference.encoder_backward(dwte, dwpe, dout, idx)
    np.testing.assert_allclose(dwte, numeric_grad(loss, wte), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dwpe, numeric_grad(loss, wpe), rtol=1e-6, atol=1e-8)


def test_zero_batch_is_a_no_op(K):
    idx = np.zeros((0, 4), np.int32)
    wte, wpe = np.ones((5, 3), np.float32), np.ones((4, 3), np.float32)
    K.encoder_forward(np.empty((0, 3), np.float32), idx, wte, wpe)
    K.encoder_backward(wte, wpe, np.empty((0, 3), np.float32), idx)
    assert (wte == 1).all() and (wpe == 1).all()


def _forward_args():
    idx, wte, wpe, _ = inputs(2, 3, 5, 4, 6)  # wpe has out's shape
    return {"out": np.zeros((6, 4), np.float32), "inp": idx, "wte": wte, "wpe": wpe}


def _backward_args():
    idx, wte, wpe, dout = inputs(2, 3, 5, 4, 6)
    return {"dwte": np.zeros_like(wte), "dwpe": np.zeros_like(wpe), "dout": dout, "inp": idx}


BAD_FORWARD = {
    "token too large": ("inp", np.array([[0, 5, 1], [2, 3, 4]], np.int32), "token id 5"),
    "negative token": ("inp", np.array([[0, 1, 1], [2, -1, 4]], np.int32), "token id -1"),
    "ids int64": ("inp", np.zeros((2, 3), np.int64), "inp must be int32"),
    "ids 1-D": ("inp", np.zeros(6, np.int32), "inp must be a 2-D"),
    "T longer than wpe": ("inp", np.zeros((1, 7), np.int32), "longer than wpe"),
    "out wrong rows": ("out", np.zeros((5, 4), np.float32), "out has shape"),
    "out float64": ("out", np.zeros((6, 4)), "out must be float32"),
    "wpe other width": ("wpe", np.zeros((6, 5), np.float32), "wpe has shape"),
    "wte not contiguous": ("wte", np.zeros((4, 5), np.float32).T, "wte must be C-contiguous"),
    "out is wpe": ("out", "wpe", "out must not share memory with wpe"),
}

BAD_BACKWARD = {
    "token too large": ("inp", np.array([[0, 9, 1], [2, 3, 4]], np.int32), "token id 9"),
    "dout wrong width": ("dout", np.zeros((6, 3), np.float32), "dout has shape"),
    "dwte read-only": ("dwte", np.lib.stride_tricks.as_strided(np.zeros((5, 4), np.float32),
                                                               writeable=False), "read-only"),
    "dwpe is dout": ("dwpe", "dout", "dwpe must not share memory with dout"),
}


@pytest.mark.parametrize("case", list(BAD_FORWARD), ids=list(BAD_FORWARD))
def test_forward_rejects_bad_arguments(K, case):
    args = with_bad_argument(_forward_args(), BAD_FORWARD[case])
    before = args["out"].copy()
    with pytest.raises(ValueError, match=BAD_FORWARD[case][2]):
        K.encoder_forward(**args)
    if args["out"] is not args["wpe"] and args["out"].shape == before.shape:
        assert np.array_equal(args["out"], before)  # nothing written


@pytest.mark.parametrize("case", list(BAD_BACKWARD), ids=list(BAD_BACKWARD))
def test_backward_rejects_bad_arguments(K, case):
    with pytest.raises(ValueError, match=BAD_BACKWARD[case][2]):
        K.encoder_backward(**with_bad_argument(_backward_args(), BAD_BACKWARD[case]))


def test_out_partly_overlapping_an_input_is_rejected(K):
    idx, wte, _, _ = inputs(1, 2, 3, 4, 2)
    out, wpe_like = overlapping_view(np.zeros((2, 4), np.float32))
    wpe_like[...] = 1.0
    with pytest.raises(ValueError, match="out must not share memory with wpe"):
        K.encoder_forward(out, idx, wte, wpe_like)
