"""Which kernels a model computes with: the compiled ones (kernels/ops.py takes the fastest build
this CPU runs; CLLM_KERNELS=baseline, x86_64_v3 or x86_64_v4 names a build), or, with
CLLM_KERNELS=reference, the numpy references (slow: for checking a result against the reading
version of every layer). Training and evaluation ask model_kernels(); generation asks
decode_kernel(). Nothing above the engine imports cllm_app.kernels."""

import os

from cllm_app.engine.config import GPTConfig
from cllm_app.engine.generate import KVCache, decode_step_reference
from cllm_app.engine.model import FlatTensors

REFERENCE = "reference"


def model_kernels():
    if os.environ.get("CLLM_KERNELS") == REFERENCE:
        from cllm_app.kernels import reference

        return reference
    from cllm_app.kernels import ops

    return ops


def decode_kernel(cfg: GPTConfig, params: FlatTensors):
    """The per-token step: the compiled decode kernel when built, else the numpy reading version.
    Returns (step(logits, token, cache), name)."""
    try:
        from cllm_app.kernels import decode
    except ImportError:
        return (lambda logits, token, cache: decode_step_reference(logits, params, cfg, cache, token)), "reference"

    def step(logits, token: int, cache: KVCache) -> None:
        decode.decode_step(logits, params.flat, cache.k, cache.v, token, cache.length,
                           cfg.vocab_size, cfg.block_size, cfg.n_embd, cfg.n_layer, cfg.n_head)
        cache.length += 1

    return step, "compiled"
