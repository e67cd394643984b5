"""A model's weights: GPT-2 initialisation, layer growth, and safetensors on disk.

Tensor names and layouts follow Hugging Face's GPT-2 (`h.{i}.attn.c_attn.weight`
is (n_embd, 3*n_embd), used as x @ W), so export is a copy, not a transpose.
"""

import json
import math
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load, load_file, save

from cllm_app.engine.config import GPTConfig
from cllm_app.errors import DamagedFile
from cllm_app.fsutil import atomic_write_bytes

Weights = dict[str, np.ndarray]


def _block(cfg: GPTConfig, rng: np.random.Generator, i: int, zero_out: bool) -> Weights:
    c = cfg.n_embd
    proj_std = 0.02 / math.sqrt(2 * cfg.n_layer)  # GPT-2's scaled init of residual projections

    def normal(*shape, std=0.02):
        return rng.normal(0.0, std, size=shape).astype(np.float32)

    def proj(*shape):
        # A grown block starts with zero output projections: it adds nothing to the
        # residual stream, so the model computes exactly what it did before growing.
        return np.zeros(shape, np.float32) if zero_out else normal(*shape, std=proj_std)

    p = f"h.{i}."
    return {
        p + "ln_1.weight": np.ones(c, np.float32),
        p + "ln_1.bias": np.zeros(c, np.float32),
        p + "attn.c_attn.weight": normal(c, 3 * c),
        p + "attn.c_attn.bias": np.zeros(3 * c, np.float32),
        p + "attn.c_proj.weight": proj(c, c),
        p + "attn.c_proj.bias": np.zeros(c, np.float32),
        p + "ln_2.weight": np.ones(c, np.float32),
        p + "ln_2.bias": np.zeros(c, np.float32),
        p + "mlp.c_fc.weight": normal(c, 4 * c),
        p + "mlp.c_fc.bias": np.zeros(4 * c, np.float32),
        p + "mlp.c_proj.weight": proj(4 * c, c),
        p + "mlp.c_proj.bias": np.zeros(c, np.float32),
    }


def init_weights(cfg: GPTConfig, seed: int = 1337) -> Weights:
    rng = np.random.default_rng(seed)
    w: Weights = {
        "wte.weight": rng.normal(0.0, 0.02, size=(cfg.vocab_size, cfg.n_embd)).astype(np.float32),
        "wpe.weight": rng.normal(0.0, 0.01, size=(cfg.block_size, cfg.n_embd)).astype(np.float32),
    }
    for i in range(cfg.n_layer):
        w.update(_block(cfg, rng, i, zero_out=False))
    w["ln_f.weight"] = np.ones(cfg.n_embd, np.float32)
    w["ln_f.bias"] = np.zeros(cfg.n_embd, np.float32)
    return w


def grow_layers(w: Weights, cfg: GPTConfig, n_layer: int, seed: int = 1337) -> Weights:
    """Append blocks up to `n_layer`, each an identity on the residual stream."""
    if n_layer < cfg.n_layer:
        raise ValueError("layers can be added, never removed")
    rng = np.random.default_rng([seed, cfg.n_layer, n_layer])
    grown = dict(w)
    for i in range(cfg.n_layer, n_layer):
        grown.update(_block(cfg, rng, i, zero_out=True))
    return grown


def weights_bytes(w: Weights, meta: dict | None = None) -> bytes:
    tensors = {k: np.ascontiguousarray(v) for k, v in w.items()}
    return save(tensors, metadata={k: str(v) for k, v in meta.items()} if meta else None)


def save_weights(path: Path, w: Weights, meta: dict | None = None) -> None:
    """`meta` (e.g. the step and epoch a training checkpoint reached) goes in the file's
    safetensors header, so whoever reads the file knows which state it holds."""
    atomic_write_bytes(path, weights_bytes(w, meta))


def read_weights(path: Path) -> tuple[Weights, dict[str, str]]:
    """The tensors and the header metadata of a weights file, from one read: a file replaced
    meanwhile (training saving a checkpoint) is read whole, old or new, never a mix."""
    data = Path(path).read_bytes()
    try:
        tensors = load(data)
        header_len = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8:8 + header_len]).get("__metadata__") or {}
    except (SafetensorError, ValueError) as e:
        raise damaged_weights(Path(path), str(e)) from None
    return tensors, meta


def load_weights(path: Path) -> Weights:
    """The tensors of a weights file; a truncated or garbled one is refused with its name and
    what to do (a missing one raises FileNotFoundError as before)."""
    try:
        return load_file(str(path))
    except SafetensorError as e:
        raise damaged_weights(Path(path), str(e)) from None


def damaged_weights(path: Path, why: str) -> DamagedFile:
    model = path.parent.name
    return DamagedFile(
        f"the weights file {path} of '{model}' is damaged ({why}); `cllm models repair {model}` puts back "
        "the weights of its newest good checkpoint and keeps the damaged file beside it",
        code="weights_damaged",
    )
