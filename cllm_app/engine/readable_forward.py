"""A readable float64 forward pass that keeps what the fast one throws away: every attention
probability, for looking inside a model (the Research tab's Inspect view).

It follows engine/model.py layer for layer (pre-LayerNorm blocks, tanh GELU, tied head) but
in plain numpy, so it never touches the kernels and holds the full T x T attention matrices,
which the fused attention kernel never builds.
"""

from dataclasses import dataclass

import numpy as np

from cllm_app.engine.config import GPTConfig


@dataclass
class Inside:
    """What one forward pass over a (T,) token sequence shows: logits (T, V) and attention
    probabilities (n_layer, n_head, T, T), row t being what position t attends to."""

    logits: np.ndarray
    attention: np.ndarray


def _layernorm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def forward_inside(cfg: GPTConfig, weights: dict[str, np.ndarray], tokens: np.ndarray) -> Inside:
    """Logits and all attention probabilities of `tokens` (1-D, at most block_size long)."""
    tokens = np.asarray(tokens, dtype=np.int64)
    T = tokens.size
    if T < 1 or T > cfg.block_size:
        raise ValueError(f"need 1 to {cfg.block_size} tokens, got {T}")
    w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
    C, NH = cfg.n_embd, cfg.n_head
    hs = C // NH
    x = w["wte.weight"][tokens] + w["wpe.weight"][:T]
    future = np.triu(np.ones((T, T), dtype=bool), 1)
    attention = np.empty((cfg.n_layer, NH, T, T))
    for i in range(cfg.n_layer):
        p = f"h.{i}."
        h = _layernorm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"])
        qkv = h @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
        q, k, v = (qkv[:, j * C : (j + 1) * C].reshape(T, NH, hs).transpose(1, 0, 2) for j in range(3))
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(hs)
        scores[:, future] = -np.inf
        scores -= scores.max(-1, keepdims=True)
        att = np.exp(scores)
        att /= att.sum(-1, keepdims=True)
        attention[i] = att
        y = (att @ v).transpose(1, 0, 2).reshape(T, C)
        x = x + y @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        h = _layernorm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"])
        fc = _gelu(h @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"])
        x = x + fc @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    x = _layernorm(x, w["ln_f.weight"], w["ln_f.bias"])
    return Inside(logits=x @ w["wte.weight"].T, attention=attention)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log probabilities, computed stably."""
    z = logits - logits.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))
