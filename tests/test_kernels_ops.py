"""The kernel namespace ``ops``: the names the model uses, run-time CPU dispatch, determinism.

Also runs LayerNorm (whose own tests use the baseline module) on every CPU
variant, with that file's tolerances.
"""

import inspect
import json
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from cllm_app.kernels import ops, reference
from tests.kernel_support import VARIANTS, kernels, randn


def test_ops_and_reference_expose_the_same_functions_with_the_same_signatures():
    for name in ops.FUNCTIONS:
        kernel, ref = getattr(ops, name), getattr(reference, name)
        kernel_params = list(inspect.signature(kernel).parameters)
        ref_params = list(inspect.signature(ref).parameters)
        assert kernel_params == ref_params, name


def test_every_available_variant_has_every_function():
    assert VARIANTS and VARIANTS[-1] == "baseline"
    for variant in VARIANTS:
        k = kernels(variant)
        assert k.variant == variant
        for name in ops.FUNCTIONS:
            assert callable(getattr(k, name)), (variant, name)


def test_the_best_variant_is_chosen():
    if os.environ.get(ops.ENV_VAR):
        pytest.fail(f"{ops.ENV_VAR} is set in the test environment; unset it to test dispatch")
    assert ops.VARIANT == VARIANTS[0]
    assert ops.attention_forward is kernels(VARIANTS[0]).attention_forward


def test_avx2_machines_build_and_use_x86_64_v3():
    # Guards against the build silently dropping the fast variant.
    if platform.machine().lower() in ("x86_64", "amd64") and ops.cpu_supports("x86_64_v3"):
        assert ops.is_built("x86_64_v3")
        assert "x86_64_v3" in VARIANTS
    else:
        assert VARIANTS == ["baseline"] or VARIANTS[0] != "x86_64_v3"


def test_x86_machines_build_the_avx512_kernels_and_avx512_machines_use_them():
    # setup.py compiles x86_64_v4 on every x86-64 machine; only a CPU with AVX-512 may run it.
    if platform.machine().lower() not in ("x86_64", "amd64"):
        assert "x86_64_v4" not in VARIANTS
        return
    if ops.cpu_supports("x86_64_v4"):
        assert VARIANTS[0] == "x86_64_v4" and ops.VARIANT == "x86_64_v4"
    else:
        assert "x86_64_v4" not in VARIANTS
        with pytest.raises(RuntimeError, match="cannot run"):
            ops.load("x86_64_v4")


def _train_steps(variant: str, steps: int = 3):
    """Losses and final weights of a few training steps on an odd-sized model (edge tiles
    everywhere: 37 positions, 48 dims, vocab 97), with one variant's kernels."""
    from cllm_app.engine.config import GPTConfig
    from cllm_app.engine.model import GPT, FlatTensors
    from cllm_app.engine.trainer import TrainSettings, optimizer_step
    from cllm_app.engine.weights import init_weights

    K = kernels(variant)
    cfg = GPTConfig(vocab_size=97, n_layer=2, n_head=3, n_embd=48, block_size=37)
    model = GPT(cfg, K)
    model.params.load(init_weights(cfg, seed=3))
    m, v = FlatTensors(cfg), FlatTensors(cfg)
    s = TrainSettings(learning_rate=1e-2)
    rng = np.random.default_rng(7)
    losses = []
    for step in range(1, steps + 1):
        x = rng.integers(0, 97, (3, 37)).astype(np.int32)
        y = rng.integers(0, 97, (3, 37)).astype(np.int32)
        model.zero_grad()
        losses.append(model.forward(x, y))
        model.backward()
        optimizer_step(K, model, m, v, step, 1e-2, s)
    return losses, model.params.flat.copy()


def test_the_vector_builds_train_to_the_same_bits():
    """Every build above the baseline (AVX2, and AVX-512 where the CPU has it) keeps each output
    one FMA chain in the same order, whatever its tile: the same losses and weights, bit for bit,
    as the AVX2 build, and as itself run again."""
    fast = [v for v in VARIANTS if v != "baseline"]
    assert fast or platform.machine().lower() not in ("x86_64", "amd64")
    for variant in fast:
        first = _train_steps(fast[-1])
        losses, weights = _train_steps(variant)
        assert losses == first[0], variant
        assert weights.tobytes() == first[1].tobytes(), variant


def _run(code, **env):
    full = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), timeout=300)


def test_environment_variable_forces_a_variant():
    done = _run("from cllm_app.kernels import ops; print(ops.VARIANT)", CLLM_KERNELS="baseline")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "baseline"


def test_environment_variable_with_an_unknown_or_unusable_variant_fails_loudly():
    done = _run("from cllm_app.kernels import ops", CLLM_KERNELS="pentium")
    assert done.returncode != 0 and "unknown kernel variant 'pentium'" in done.stderr
    if "x86_64_v4" not in VARIANTS:
        done = _run("from cllm_app.kernels import ops", CLLM_KERNELS="x86_64_v4")
        assert done.returncode != 0
        assert "cannot run the x86_64_v4" in done.stderr or "No module named" in done.stderr


def test_unknown_variant_in_load():
    with pytest.raises(ValueError, match="unknown kernel variant"):
        ops.load("sse9")


DIGEST = r"""
import hashlib, json, sys
import numpy as np
from cllm_app.kernels import ops
out = {}
for variant in ops.available_variants():
    K = ops.load(variant)
    rng = np.random.default_rng(0)
    B, T, C, NH, V = 8, 256, 384, 6, 4096
    N = B * T
    r = lambda *s: rng.standard_normal(s).astype(np.float32)
    h = hashlib.sha256()
    qkv, dy = r(N, 3 * C), r(N, C)
    y, lse, dq = np.empty((N, C), np.float32), np.empty((B, NH, T), np.float32), np.zeros((N, 3 * C), np.float32)
    K.attention_forward(y, lse, qkv, B, T, NH)
    K.attention_backward(dq, dy, qkv, y, lse, B, T, NH)
    logits, t = r(N, V), rng.integers(0, V, N).astype(np.int32)
    losses, dl = np.empty(N, np.float32), np.empty((N, V), np.float32)
    mean = K.crossentropy_forward(losses, logits, t)
    K.crossentropy_backward(dl, logits, t, 1.0 / N)
    x = r(N, 4 * C)
    g, dg = np.empty_like(x), np.zeros_like(x)
    K.gelu_forward(g, x)
    K.gelu_backward(dg, x, x)
    idx = rng.integers(0, V, (B, T)).astype(np.int32)
    wte, wpe, e = r(V, C), r(T, C), np.empty((N, C), np.float32)
    K.encoder_forward(e, idx, wte, wpe)
    K.encoder_backward(wte, wpe, y, idx)
    p, grads, m, v = r(3_000_000), r(3_000_000), np.zeros(3_000_000, np.float32), np.zeros(3_000_000, np.float32)
    K.adamw_update(p, grads, m, v, 1e-3, 0.9, 0.95, 1e-8, 0.1, 1, 1.0)
    for a in (y, lse, dq, losses, dl, g, dg, e, wte, wpe, p, m, v):
        h.update(a.tobytes())
    h.update(np.array([mean, K.grad_norm_squared(grads)]).tobytes())
    out[variant] = h.hexdigest()
print(json.dumps(out))
"""


def test_results_do_not_depend_on_the_thread_count():
    # Every kernel here but matmul (BLAS) and layernorm (per-thread partial
    # sums) splits work so that each output is computed by one thread in a
    # fixed order: 1 and 2 threads must agree bit for bit.
    digests = []
    for threads in ("1", "2"):
        done = _run(DIGEST, OMP_NUM_THREADS=threads)
        assert done.returncode == 0, done.stderr
        digests.append(json.loads(done.stdout))
    assert digests[0] == digests[1]
    assert set(digests[0]) == set(VARIANTS)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("n,c", [(3, 33), (1024, 128), (2048, 384)])
def test_layernorm_matches_reference_on_every_variant(variant, n, c):
    K = kernels(variant)
    rng = np.random.default_rng(0)
    x, w, b, dout = randn(rng, n, c, scale=1.5), randn(rng, c), randn(rng, c), randn(rng, n, c)
    got = [np.empty((n, c), np.float32), np.empty(n, np.float32), np.empty(n, np.float32)]
    want = [np.empty((n, c), np.float32), np.empty(n, np.float32), np.empty(n, np.float32)]
    K.layernorm_forward(*got, x, w, b)
    reference.layernorm_forward(*want, x, w, b)
    for g, r in zip(got, want, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5)
    grads = [np.zeros((n, c), np.float32), np.zeros(c, np.float32), np.zeros(c, np.float32)]
    ref_grads = [a.copy() for a in grads]
    K.layernorm_backward(*grads, dout, x, w, got[1], got[2])
    reference.layernorm_backward(*ref_grads, dout, x, w, want[1], want[2])
    for g, r in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4)


def test_cllm_kernels_reference_means_the_numpy_references_wherever_a_model_computes(monkeypatch):
    from cllm_app.engine.kernel_choice import model_kernels
    from cllm_app.kernels import ops, reference

    monkeypatch.setenv("CLLM_KERNELS", "reference")
    assert model_kernels() is reference
    monkeypatch.delenv("CLLM_KERNELS")
    assert model_kernels() is ops
    # Training and evaluation ask the one picker (they each had a copy of it).
    import inspect

    from cllm_app.jobs import train
    from cllm_app.services.research import evaluate
    for module in (train, evaluate):
        assert "model_kernels()" in inspect.getsource(module)
