"""Helpers shared by the kernel tests: the CPU variants to test, inputs, finite differences."""

import numpy as np

from cllm_app.kernels import ops

# Every build of the kernels this machine can run (baseline, x86_64_v3, ...):
# each parity test runs once per variant.
VARIANTS = ops.available_variants()


def kernels(variant: str):
    """The kernel functions of one variant, as a namespace like ``ops``."""
    return ops.load(variant)


def with_bad_argument(args: dict, case: tuple) -> dict:
    """`args` with one argument made bad, as a test's table of refusals says: (name, value,
    message). A value naming another argument passes that argument (an output sharing memory
    with an input)."""
    name, value, _message = case
    args[name] = args[value] if isinstance(value, str) and value in args else value
    return args


def randn(rng, *shape, scale=1.0, dtype=np.float32):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def numeric_grad(loss, arr, h=1e-6):
    """Central differences of loss() with respect to every element of arr (float64, changed in place and restored)."""
    grad = np.zeros_like(arr)
    for idx in np.ndindex(arr.shape):
        keep = arr[idx]
        arr[idx] = keep + h
        up = loss()
        arr[idx] = keep - h
        down = loss()
        arr[idx] = keep
        grad[idx] = (up - down) / (2 * h)
    return grad


def overlapping_view(a, shift=1):
    """A view of the same shape as a's first len-shift elements, moved by shift: memory that overlaps a partly."""
    flat = np.zeros(a.size + shift, a.dtype)
    return flat[shift:].reshape(a.shape), flat[:-shift].reshape(a.shape)


def assert_same_from_python_threads(run, cases, workers=3, rounds=3):
    """run(case) from several Python threads at once gives, for every case, the very
    arrays it gives when called alone (kernels release the GIL and keep scratch)."""
    from concurrent.futures import ThreadPoolExecutor

    serial = [run(c) for c in cases]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in range(rounds):
            for got, want in zip(pool.map(run, cases), serial, strict=True):
                for a, b in zip(got, want, strict=True):
                    assert np.array_equal(a, b)
