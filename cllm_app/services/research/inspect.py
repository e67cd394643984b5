"""Inspect: what the model predicts after a prompt, how surprised it is by each token of it,
and where one attention head looks.

The prompt is read after <|endoftext|> (as Evaluate reads a text), so every prompt token has a
surprisal: -log2 p(token | the tokens before it), in bits. Only the last MAX_TOKENS tokens
(and at most block_size with the <|endoftext|>) are looked at, so a T x T heatmap stays small.
"""

import math

import numpy as np

from cllm_app.engine.readable_forward import forward_inside, log_softmax
from cllm_app.engine.tokenizer import Tokenizer
from cllm_app.errors import InvalidInput
from cllm_app.services.research.sources import model_parts
from cllm_app.services.validate import as_int

MAX_TOKENS = 256
MAX_TOP_K = 100
MAX_PROMPT_CHARS = 100_000
_NAMED = {9: "\\t", 10: "\\n", 13: "\\r", 32: "␣"}


def readable(tok: Tokenizer, token: int) -> str:
    """A token as a person can read it: a byte token is its character when it is printable
    ASCII and an escape otherwise (\\n, \\t, \\xe2); a space shows as ␣."""
    if token == tok.eot:
        return "<|endoftext|>"
    if tok.kind == "byte":
        if token in _NAMED:
            return _NAMED[token]
        return chr(token) if 33 <= token < 127 else f"\\x{token:02x}"
    text = tok.decode([token])
    return "".join(_NAMED.get(ord(c), c) if ord(c) < 128 else c for c in text)


def inspect(models, model_name: str, prompt, top_k=10, layer=0, head=0) -> dict:
    """Top-k next tokens, per-token surprisal and one head's attention for `prompt`."""
    row = models.get(model_name)
    if not isinstance(prompt, str) or not prompt:
        raise InvalidInput("write a prompt to inspect", code="empty_prompt")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidInput(f"the prompt is longer than {MAX_PROMPT_CHARS:,} characters", code="prompt_too_long")
    top_k = as_int("top_k", top_k, 1, MAX_TOP_K)
    layer = as_int("layer", layer, 0, row.n_layer - 1)
    head = as_int("head", head, 0, row.n_head - 1)
    cfg, weights, tok = model_parts(models, row)
    ids = tok.encode(prompt).astype(np.int64)
    keep = min(MAX_TOKENS, cfg.block_size) - 1
    cut = max(0, ids.size - keep)
    tokens = np.concatenate(([tok.eot], ids[cut:]))
    inside = forward_inside(cfg, weights, tokens)
    logp = log_softmax(inside.logits)
    probs = np.exp(logp[-1])
    order = np.argsort(-probs, kind="stable")[:top_k]
    surprisal = [-float(logp[t - 1, tokens[t]]) / math.log(2) for t in range(1, tokens.size)]
    att = inside.attention[layer, head]
    return {
        "model_name": row.model_name,
        "tokens": [{"id": int(t), "text": readable(tok, int(t))} for t in tokens],
        "truncated_tokens": int(cut),
        "surprisal_bits": [None, *surprisal],
        "mean_surprisal_bits": float(np.mean(surprisal)) if surprisal else None,
        "top_k": [
            {"id": int(t), "text": readable(tok, int(t)), "probability": float(probs[t])} for t in order
        ],
        "layer": layer,
        "head": head,
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "attention": np.round(att, 5).tolist(),
    }
