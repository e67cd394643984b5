"""Generation: the KV-cache step computes what the full forward pass computes; sampling rules."""

import numpy as np

from cllm_app.engine.config import GPTConfig
from cllm_app.engine.generate import Generator, KVCache, Sampling, decode_step_reference, sample
from cllm_app.engine.model import FlatTensors
from cllm_app.engine.tokenizer import ByteTokenizer
from cllm_app.engine.weights import init_weights
from tests.gpt_reference import logits as full_logits

CFG = GPTConfig(vocab_size=257, n_layer=2, n_head=2, n_embd=16, block_size=12)


def _params(seed=0):
    rng = np.random.default_rng(seed)
    w = {k: v + rng.normal(0, 0.1, v.shape).astype(np.float32) for k, v in init_weights(CFG).items()}
    P = FlatTensors(CFG)
    P.load(w)
    return P, w


def test_kv_cache_step_matches_the_full_forward_at_every_position():
    P, w = _params()
    tokens = [256, 72, 105, 33, 200, 7, 7, 9]
    expected = full_logits(w, CFG.n_layer, CFG.n_head, np.array(tokens))
    cache = KVCache(CFG)
    out = np.empty(CFG.vocab_size, np.float32)
    for t, tok in enumerate(tokens):
        decode_step_reference(out, P, CFG, cache, tok)
        np.testing.assert_allclose(out, expected[t], rtol=1e-4, atol=1e-5)


def test_greedy_and_degenerate_filters_take_the_argmax():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=257).astype(np.float32)
    seen = np.zeros(257, np.int64)
    best = int(np.argmax(logits))
    assert sample(logits, Sampling(temperature=0), rng, seen) == best
    assert sample(logits, Sampling(top_k=1, repetition_penalty=1.0), rng, seen) == best
    assert sample(logits, Sampling(top_p=1e-9, top_k=0, repetition_penalty=1.0), rng, seen) == best


def test_top_k_never_leaves_the_k_best():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=257).astype(np.float32)
    allowed = set(np.argsort(-logits)[:5].tolist())
    picks = {sample(logits, Sampling(temperature=2.0, top_k=5, top_p=1.0, repetition_penalty=1.0), rng, np.zeros(257, np.int64)) for _ in range(300)}
    assert picks <= allowed and len(picks) > 1


def test_repetition_penalty_pushes_seen_tokens_down():
    logits = np.zeros(257, np.float32)
    logits[10] = logits[11] = 2.0
    seen = np.zeros(257, np.int64)
    seen[10] = 1
    s = Sampling(temperature=0, repetition_penalty=1.5)
    assert sample(logits, s, np.random.default_rng(0), seen) == 11


def test_seeded_generation_repeats_and_streams_whole_characters():
    P, _ = _params(3)
    gen = Generator(CFG, P, ByteTokenizer())
    s = Sampling(temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=30, seed=42)
    a = list(gen.tokens([104, 105], s))
    b = list(gen.tokens([104, 105], s))
    assert a == b and 0 < len(a) <= 30
    tok = ByteTokenizer()
    streamed = "".join(gen.text("hé", s))
    assert streamed == tok.decode(list(gen.tokens(list(tok.encode("hé")), s)))


def test_generation_runs_past_the_context_and_can_be_stopped():
    P, _ = _params(4)
    gen = Generator(CFG, P, ByteTokenizer())
    eot_free = Sampling(temperature=1.0, max_new_tokens=40, seed=1)
    logits_bias = P["wte.weight"]  # make <|endoftext|> unlikely so the run is long
    logits_bias[256] -= 10.0
    out = list(gen.tokens([65] * 10, eot_free))
    assert len(out) == 40  # 10 + 40 tokens > block_size 12: the cache was rebuilt
    calls = {"n": 0}

    def stop_after_five():
        calls["n"] += 1
        return calls["n"] > 5

    assert len(list(gen.tokens([65], eot_free, should_stop=stop_after_five))) == 5


def test_generation_never_steps_past_the_context_it_was_trained_on():
    # Positions past the training context have untrained (random) position embeddings; a model
    # trained on 6 positions of a 12-position block must slide its window at 6, not 12.
    P, _ = _params(4)
    P["wte.weight"][256] -= 10.0  # keep <|endoftext|> unlikely so the run is long
    positions: list[int] = []

    def recording(logits, token, cache):
        positions.append(cache.length)
        decode_step_reference(logits, P, CFG, cache, token)

    s = Sampling(temperature=1.0, max_new_tokens=40, seed=1)
    assert len(list(Generator(CFG, P, ByteTokenizer(), recording, context=6).tokens([65] * 10, s))) == 40
    assert max(positions) == 5
    positions.clear()
    list(Generator(CFG, P, ByteTokenizer(), recording).tokens([65] * 10, s))
    assert max(positions) == CFG.block_size - 1  # no context given: the whole block
    assert Generator(CFG, P, ByteTokenizer(), context=99).context == CFG.block_size
