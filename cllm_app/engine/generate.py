"""Generation: a KV cache, one token at a time, with temperature, top-k, top-p, a repetition
penalty and a seed; tokens stream out as they are made and the caller can stop at any time.

The per-token step is `decode_step(...)` over the model's flat parameter buffer (the
layout of engine/model.py); `decode_step_reference` below is its numpy reading version.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from cllm_app.engine.config import GPTConfig
from cllm_app.engine.model import FlatTensors
from cllm_app.engine.tokenizer import Tokenizer

GELU_SCALE = np.sqrt(2.0 / np.pi)


@dataclass
class Sampling:
    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    repetition_penalty: float = 1.1
    max_new_tokens: int = 200
    seed: int | None = None


class KVCache:
    """Keys and values of every layer and head for up to block_size positions."""

    def __init__(self, cfg: GPTConfig):
        hs = cfg.n_embd // cfg.n_head
        self.k = np.zeros((cfg.n_layer, cfg.n_head, cfg.block_size, hs), np.float32)
        self.v = np.zeros_like(self.k)
        self.length = 0


def _ln(x, w, b):
    mu = x.mean()
    var = ((x - mu) ** 2).mean()
    return (x - mu) / np.sqrt(var + 1e-5) * w + b


def decode_step_reference(logits: np.ndarray, P: FlatTensors, cfg: GPTConfig, cache: KVCache, token: int) -> None:
    """Logits of the next token after `token` at position cache.length; appends to the cache."""
    C, NH = cfg.n_embd, cfg.n_head
    hs = C // NH
    pos = cache.length
    x = P["wte.weight"][token] + P["wpe.weight"][pos]
    for i in range(cfg.n_layer):
        p = f"h.{i}."
        qkv = _ln(x, P[p + "ln_1.weight"], P[p + "ln_1.bias"]) @ P[p + "attn.c_attn.weight"] + P[p + "attn.c_attn.bias"]
        q, k, v = qkv[:C].reshape(NH, hs), qkv[C : 2 * C].reshape(NH, hs), qkv[2 * C :].reshape(NH, hs)
        cache.k[i, :, pos], cache.v[i, :, pos] = k, v
        att = np.einsum("hd,htd->ht", q, cache.k[i, :, : pos + 1]) / np.sqrt(hs)
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        y = np.einsum("ht,htd->hd", att, cache.v[i, :, : pos + 1]).reshape(C)
        x = x + y @ P[p + "attn.c_proj.weight"] + P[p + "attn.c_proj.bias"]
        h = _ln(x, P[p + "ln_2.weight"], P[p + "ln_2.bias"]) @ P[p + "mlp.c_fc.weight"] + P[p + "mlp.c_fc.bias"]
        h = 0.5 * h * (1 + np.tanh(GELU_SCALE * (h + 0.044715 * h**3)))
        x = x + h @ P[p + "mlp.c_proj.weight"] + P[p + "mlp.c_proj.bias"]
    logits[:] = _ln(x, P["ln_f.weight"], P["ln_f.bias"]) @ P["wte.weight"].T
    cache.length = pos + 1


def sample(logits: np.ndarray, s: Sampling, rng: np.random.Generator, seen: np.ndarray) -> int:
    """One token from `logits`; `seen` counts the tokens so far (for the repetition penalty)."""
    z = logits.astype(np.float64)
    if s.repetition_penalty != 1.0:
        used = seen > 0
        z[used] = np.where(z[used] > 0, z[used] / s.repetition_penalty, z[used] * s.repetition_penalty)
    if s.temperature <= 0:
        return int(np.argmax(z))
    z /= s.temperature
    if 0 < s.top_k < z.size:
        kth = np.partition(z, -s.top_k)[-s.top_k]
        z[z < kth] = -np.inf
    p = np.exp(z - z.max())
    p /= p.sum()
    if 0 < s.top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        cum = np.cumsum(p[order])
        cut = int(np.searchsorted(cum, s.top_p)) + 1  # the smallest set whose mass reaches top_p
        keep = np.zeros_like(p, dtype=bool)
        keep[order[:cut]] = True
        p = np.where(keep, p, 0.0)
        p /= p.sum()
    return int(rng.choice(p.size, p=p))


def window_context(cfg: GPTConfig, context: int | None) -> int:
    """The positions a generator writes over: the training context, within block_size."""
    return max(2, min(cfg.block_size, context or cfg.block_size))


class Generator:
    """Streams text from a model. `step` is the decode kernel (compiled or reference).

    `context` is how many positions the model was trained on (its sequence_length): the window
    slides there, not at block_size, because a position it never trained has a random position
    embedding, and text written past it turns to noise."""

    def __init__(self, cfg: GPTConfig, params: FlatTensors, tokenizer: Tokenizer, step: Callable | None = None,
                 context: int | None = None):
        self.cfg, self.P, self.tok = cfg, params, tokenizer
        self.context = window_context(cfg, context)
        self.step = step or (lambda logits, token, cache: decode_step_reference(logits, self.P, self.cfg, cache, token))

    def tokens(self, prompt_ids: list[int], s: Sampling, should_stop: Callable[[], bool] = lambda: False) -> Iterator[int]:
        cfg = self.cfg
        rng = np.random.default_rng(s.seed)
        ids = [self.tok.eot] + [int(t) for t in prompt_ids]  # <|endoftext|> starts every document
        seen = np.zeros(cfg.vocab_size, np.int64)
        np.add.at(seen, prompt_ids, 1)
        logits = np.empty(cfg.vocab_size, np.float32)
        cache = KVCache(cfg)
        window = ids[-self.context :]
        for t in window:
            self.step(logits, t, cache)
        for _ in range(s.max_new_tokens):
            if should_stop():
                return
            nxt = sample(logits, s, rng, seen)
            if nxt == self.tok.eot:
                return
            yield nxt
            seen[nxt] += 1
            ids.append(nxt)
            if cache.length == self.context:
                # The context is full: keep the last half and rebuild the cache from it.
                cache = KVCache(cfg)
                for t in ids[-(self.context // 2) : -1]:
                    self.step(logits, t, cache)
            self.step(logits, nxt, cache)

    def text(self, prompt: str, s: Sampling, should_stop: Callable[[], bool] = lambda: False) -> Iterator[str]:
        """Text pieces as they are generated; a character split over byte tokens comes out whole."""
        decoder = self.tok.stream_decoder()
        for t in self.tokens(list(self.tok.encode(prompt)), s, should_stop):
            piece = decoder.push(t)
            if piece:
                yield piece
        tail = decoder.flush()
        if tail:
            yield tail
