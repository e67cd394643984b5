"""A plain numpy GPT-2 forward pass over our weight names, for checking what a model computes."""

import numpy as np


def _layernorm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def logits(w: dict, n_layer: int, n_head: int, tokens: np.ndarray) -> np.ndarray:
    w = {k: v.astype(np.float64) for k, v in w.items()}
    T = len(tokens)
    x = w["wte.weight"][tokens] + w["wpe.weight"][:T]
    C = x.shape[-1]
    hs = C // n_head
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for i in range(n_layer):
        p = f"h.{i}."
        h = _layernorm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"])
        qkv = h @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
        q, k, v = (qkv[:, j * C : (j + 1) * C].reshape(T, n_head, hs).transpose(1, 0, 2) for j in range(3))
        att = q @ k.transpose(0, 2, 1) / np.sqrt(hs) + mask
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        y = (att @ v).transpose(1, 0, 2).reshape(T, C)
        x = x + y @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        h = _layernorm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"])
        x = x + _gelu(h @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"]) @ w[p + "mlp.c_proj.weight"] + w[
            p + "mlp.c_proj.bias"
        ]
    x = _layernorm(x, w["ln_f.weight"], w["ln_f.bias"])
    return x @ w["wte.weight"].T
