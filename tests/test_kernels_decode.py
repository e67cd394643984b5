"""The compiled decode step (cllm_app.kernels.decode) against the numpy reading version
engine.generate.decode_step_reference, token by token with a KV cache.

Tolerance: rtol 1e-4, atol 1e-5 on the logits and on the cached keys and values. The
kernel works in float32 throughout; the reference starts in float32 and turns float64
at its first attention (numpy promotes by the float64 1/sqrt(hs)), so the two differ by
float32 rounding: dot products of up to 4C terms over a few layers, about 1e-6
relative to the values (measured: at most ~6e-7 beyond rtol * |value|).

Every case runs both builds the module has (the AVX2+FMA one where the CPU has it, and
the portable one) and several thread counts, so the multi-threaded work split (by
columns, by heads, by rows of the head) is checked on small models too.
"""

import platform
from importlib import import_module

import numpy as np
import pytest

from cllm_app.engine.config import GPTConfig
from cllm_app.engine.generate import KVCache, decode_step_reference
from cllm_app.engine.model import FlatTensors
from cllm_app.engine.weights import init_weights
from cllm_app.kernels import decode, ops

TOL = {"rtol": 1e-4, "atol": 1e-5}

CONFIGS = {
    # odd sizes: C not a multiple of the 16-wide blocks, 3 heads of 16, a prime vocabulary,
    # a context that is not a multiple of anything
    "odd-L1": GPTConfig(vocab_size=257, n_layer=1, n_head=3, n_embd=48, block_size=37),
    "odd-L3": GPTConfig(vocab_size=257, n_layer=3, n_head=3, n_embd=48, block_size=37),
    # head size 5 (shorter than a vector), one head
    "tiny": GPTConfig(vocab_size=11, n_layer=2, n_head=1, n_embd=5, block_size=23),
    # a small multiple of everything, 4 heads (split by heads on 2 and 4 threads)
    "even": GPTConfig(vocab_size=96, n_layer=2, n_head=4, n_embd=64, block_size=32),
}

# (threads, portable): 0 = the automatic choice
VARIANTS = [(0, False), (1, False), (2, False), (3, False), (1, True), (2, True)]


def _model(cfg: GPTConfig, seed: int = 0) -> FlatTensors:
    """GPT-2 initialisation plus noise, so every parameter (biases, LayerNorm) matters."""
    rng = np.random.default_rng(seed)
    w = {k: v + rng.normal(0, 0.1, v.shape).astype(np.float32) for k, v in init_weights(cfg, seed=seed).items()}
    P = FlatTensors(cfg)
    P.load(w)
    return P


def _step(logits, P, cfg, cache, token, **kw):
    decode.decode_step(logits, P.flat, cache.k, cache.v, token, cache.length,
                       cfg.vocab_size, cfg.block_size, cfg.n_embd, cfg.n_layer, cfg.n_head, **kw)
    cache.length += 1


@pytest.mark.parametrize("threads,portable", VARIANTS)
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_matches_the_reference_token_by_token(name, threads, portable):
    cfg = CONFIGS[name]
    P = _model(cfg, seed=len(name))
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, cfg.vocab_size, cfg.block_size)  # every position, up to the last
    ref_cache, our_cache = KVCache(cfg), KVCache(cfg)
    ref = np.empty(cfg.vocab_size, np.float32)
    ours = np.full(cfg.vocab_size, np.nan, np.float32)
    for t, tok in enumerate(tokens):
        decode_step_reference(ref, P, cfg, ref_cache, int(tok))
        _step(ours, P, cfg, our_cache, int(tok), threads=threads, portable=portable)
        np.testing.assert_allclose(ours, ref, **TOL, err_msg=f"logits at position {t}")
        np.testing.assert_allclose(our_cache.k, ref_cache.k, **TOL, err_msg=f"keys at position {t}")
        np.testing.assert_allclose(our_cache.v, ref_cache.v, **TOL, err_msg=f"values at position {t}")
    assert our_cache.length == ref_cache.length == cfg.block_size


def test_writes_only_its_position_of_the_caches():
    cfg = CONFIGS["odd-L3"]
    P = _model(cfg)
    cache = KVCache(cfg)
    logits = np.empty(cfg.vocab_size, np.float32)
    for tok in (3, 1, 4):
        _step(logits, P, cfg, cache, tok)
    k_before, v_before = cache.k.copy(), cache.v.copy()
    _step(logits, P, cfg, cache, 1)
    changed_k = np.any(cache.k != k_before, axis=(0, 1, 3))
    changed_v = np.any(cache.v != v_before, axis=(0, 1, 3))
    assert changed_k.tolist() == changed_v.tolist() == [t == 3 for t in range(cfg.block_size)]


def _greedy(step, cfg, prompt, n):
    cache = KVCache(cfg)
    logits = np.empty(cfg.vocab_size, np.float32)
    for t in prompt:
        step(logits, t, cache)
    out = []
    for _ in range(n):
        nxt = int(np.argmax(logits))
        out.append(nxt)
        step(logits, nxt, cache)
    return out


@pytest.mark.parametrize("threads,portable", [(0, False), (2, False), (1, True)])
def test_greedy_tokens_of_a_50_token_run_equal_the_reference(threads, portable):
    cfg = GPTConfig(vocab_size=300, n_layer=2, n_head=4, n_embd=32, block_size=64)
    rng = np.random.default_rng(7)
    # larger noise than _model's: a peaked distribution, so greedy picks are not near-ties
    w = {k: v + rng.normal(0, 0.5, v.shape).astype(np.float32) for k, v in init_weights(cfg, seed=7).items()}
    P = FlatTensors(cfg)
    P.load(w)
    prompt = [5, 17, 42, 99]

    def ref(logits, token, cache):
        decode_step_reference(logits, P, cfg, cache, token)

    def ours(logits, token, cache):
        _step(logits, P, cfg, cache, token, threads=threads, portable=portable)

    expected = _greedy(ref, cfg, prompt, 50)
    assert _greedy(ours, cfg, prompt, 50) == expected
    assert len(set(expected)) > 5  # the run does not sit on one token


def test_results_are_bit_identical_across_runs_and_thread_counts():
    """The row blocks and heads, not the threads, fix the order of every sum, so any thread
    count gives the same bits (here 1 to 5: fewer threads than blocks, as many, more)."""
    cfg = CONFIGS["even"]
    P = _model(cfg, seed=3)
    tokens = np.random.default_rng(2).integers(0, cfg.vocab_size, 20)

    def run(**kw):
        cache = KVCache(cfg)
        logits = np.empty(cfg.vocab_size, np.float32)
        out = []
        for tok in tokens:
            _step(logits, P, cfg, cache, int(tok), **kw)
            out.append(logits.copy())
        return np.stack(out), cache.k, cache.v

    for portable in (False, True):
        first = run(threads=1, portable=portable)
        for threads in (0, 1, 2, 3, 4, 5):
            again = run(threads=threads, portable=portable)
            for a, b in zip(first, again, strict=True):
                assert a.tobytes() == b.tobytes(), (portable, threads)


def _other_builds():
    """setup.py also compiles this .pyx per instruction-set level (x86_64_v3: -march=x86-64-v3,
    x86_64_v4: AVX-512); those builds are checked too where this CPU can run them. A build
    missing there fails the import here, at collection, instead of leaving its test out."""
    return [import_module(f"cllm_app.kernels.{variant}.decode") for variant in ("x86_64_v4", "x86_64_v3")
            if platform.machine().lower() in ("x86_64", "amd64") and ops.cpu_supports(variant)]


@pytest.mark.parametrize("module", [decode] + _other_builds(), ids=lambda m: m.__name__)
def test_every_build_matches_the_reference(module):
    cfg = CONFIGS["odd-L3"]
    P = _model(cfg, seed=5)
    tokens = [int(t) for t in np.random.default_rng(5).integers(0, cfg.vocab_size, 25)]
    ref_cache, ref = KVCache(cfg), np.empty(cfg.vocab_size, np.float32)
    expected = []
    for tok in tokens:
        decode_step_reference(ref, P, cfg, ref_cache, tok)
        expected.append(ref.copy())
    for threads in (1, 2):
        cache, ours = KVCache(cfg), np.empty(cfg.vocab_size, np.float32)
        for t, tok in enumerate(tokens):
            module.decode_step(ours, P.flat, cache.k, cache.v, tok, t, cfg.vocab_size,
                               cfg.block_size, cfg.n_embd, cfg.n_layer, cfg.n_head, threads=threads)
            np.testing.assert_allclose(ours, expected[t], **TOL)
        np.testing.assert_allclose(cache.k, ref_cache.k, **TOL)
        np.testing.assert_allclose(cache.v, ref_cache.v, **TOL)


def test_automatic_threads_time_one_thread_and_all():
    cfg = CONFIGS["even"]  # large enough for the automatic choice to consider more threads
    P = _model(cfg)
    cache = KVCache(cfg)
    logits = np.empty(cfg.vocab_size, np.float32)
    for tok in range(6):
        _step(logits, P, cfg, cache, tok)
    shape = (cfg.vocab_size, cfg.block_size, cfg.n_embd, cfg.n_layer, cfg.n_head)
    learned = [v for k, v in decode.auto_threads_state().items() if k[:5] == shape and not k[6]]
    if decode.max_threads() > 1:
        (one, many, calls), = learned
        assert one > 0 and many > 0 and calls >= 6
    else:  # one thread is all there is: nothing to choose
        assert learned == []


def test_isa_names_the_build_in_use():
    assert decode.isa() in ("avx2+fma", "portable")


def test_n_params_follows_the_model_layout():
    for cfg in CONFIGS.values():
        assert decode.n_params(cfg.vocab_size, cfg.block_size, cfg.n_embd, cfg.n_layer) == FlatTensors(cfg).flat.size


# ---------------------------------------------------------------------------
# Argument validation: every bad call raises ValueError before anything is written.
# ---------------------------------------------------------------------------

CFG = CONFIGS["odd-L1"]


def _args():
    P = _model(CFG)
    cache = KVCache(CFG)
    logits = np.zeros(CFG.vocab_size, np.float32)
    return [logits, P.flat, cache.k, cache.v, 1, 0, CFG.vocab_size, CFG.block_size, CFG.n_embd, CFG.n_layer, CFG.n_head]


def _replace(i, value):
    def make():
        args = _args()
        args[i] = value(args) if callable(value) else value
        return args
    return make


BAD = {
    "token negative": _replace(4, -1),
    "token = V": _replace(4, CFG.vocab_size),
    "token float": _replace(4, 1.0),
    "token bool": _replace(4, True),
    "pos negative": _replace(5, -1),
    "pos = maxT": _replace(5, CFG.block_size),
    "V zero": _replace(6, 0),
    "V wrong": _replace(6, CFG.vocab_size + 1),
    "maxT wrong": _replace(7, CFG.block_size - 1),
    "C wrong": _replace(8, 51),
    "C not a multiple of NH": _replace(10, 5),
    "L wrong": _replace(9, 2),
    "L zero": _replace(9, 0),
    "NH zero": _replace(10, 0),
    "NH wrong": _replace(10, 6),
    "logits float64": _replace(0, np.zeros(CFG.vocab_size)),
    "logits short": _replace(0, np.zeros(CFG.vocab_size - 1, np.float32)),
    "logits 2-D": _replace(0, np.zeros((1, CFG.vocab_size), np.float32)),
    "logits strided": _replace(0, np.zeros(2 * CFG.vocab_size, np.float32)[::2]),
    "logits read-only": _replace(0, np.broadcast_to(np.float32(0), (CFG.vocab_size,))),
    "logits a list": _replace(0, [0.0] * CFG.vocab_size),
    "params short": _replace(1, lambda a: a[1][:-1]),
    "params float64": _replace(1, lambda a: a[1].astype(np.float64)),
    "params 2-D": _replace(1, lambda a: a[1].reshape(1, -1)),
    "params byte-swapped": _replace(1, lambda a: a[1].astype(">f4")),
    "kcache float64": _replace(2, lambda a: a[2].astype(np.float64)),
    "kcache wrong shape": _replace(2, lambda a: np.zeros((1, 3, 37, 15), np.float32)),
    "kcache 3-D": _replace(2, lambda a: a[2].reshape(3, 37, 16)),
    "kcache not contiguous": _replace(2, lambda a: np.zeros((1, 3, 16, 37), np.float32).transpose(0, 1, 3, 2)),
    "vcache wrong shape": _replace(3, lambda a: np.zeros((1, 3, 36, 16), np.float32)),
    "vcache read-only": _replace(3, lambda a: np.broadcast_to(np.float32(0), a[3].shape)),
    "vcache is kcache": _replace(3, lambda a: a[2]),
    "logits inside params": _replace(0, lambda a: a[1][: CFG.vocab_size]),
    "kcache inside params": _replace(2, lambda a: a[1][: a[2].size].reshape(a[2].shape)),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_arguments_raise_value_error_and_write_nothing(case):
    args = BAD[case]()
    before = [a.copy() if isinstance(a, np.ndarray) and a.flags.writeable else None for a in args[:4]]
    with pytest.raises(ValueError):
        decode.decode_step(*args)
    for a, b in zip(args[:4], before, strict=True):
        if b is not None:
            assert np.array_equal(a, b, equal_nan=True), case


@pytest.mark.parametrize("threads", [-1, 1.5, "2"])
def test_bad_thread_count_raises_value_error(threads):
    with pytest.raises(ValueError):
        decode.decode_step(*_args(), threads=threads)


def test_the_generation_service_uses_the_compiled_kernel():
    from cllm_app.engine.kernel_choice import decode_kernel

    cfg = CONFIGS["odd-L3"]
    P = _model(cfg)
    step, name = decode_kernel(cfg, P)
    assert name == "compiled"
    ref_cache, our_cache = KVCache(cfg), KVCache(cfg)
    ref, ours = np.empty(cfg.vocab_size, np.float32), np.empty(cfg.vocab_size, np.float32)
    for tok in (256, 10, 20, 30):
        decode_step_reference(ref, P, cfg, ref_cache, tok)
        step(ours, tok, our_cache)
        np.testing.assert_allclose(ours, ref, **TOL)
    assert our_cache.length == 4
