"""The GPT-2-style model for training: one flat parameter buffer, forward and backward.

Like llm.c's train_gpt2.c: every layer is a kernel pair over flat float32 arrays
(cllm_app.kernels), and this file only lays out memory and calls them in the order
data flows. Pre-LayerNorm blocks, learned positions, causal self-attention, GELU
MLP of 4x width, output head tied to `wte`.

Parameters live in one buffer, matrices first and vectors after, so AdamW's
weight decay (matrices only) is two calls over two contiguous slices.
"""

from dataclasses import dataclass

import numpy as np

from cllm_app.engine import memory
from cllm_app.engine.config import GPTConfig


def param_shapes(cfg: GPTConfig) -> list[tuple[str, tuple[int, ...]]]:
    """Every tensor's name and shape, matrices first (Hugging Face GPT-2 names and layouts)."""
    C, L = cfg.n_embd, cfg.n_layer
    matrices = [("wte.weight", (cfg.vocab_size, C)), ("wpe.weight", (cfg.block_size, C))]
    vectors = []
    for i in range(L):
        p = f"h.{i}."
        matrices += [
            (p + "attn.c_attn.weight", (C, 3 * C)),
            (p + "attn.c_proj.weight", (C, C)),
            (p + "mlp.c_fc.weight", (C, 4 * C)),
            (p + "mlp.c_proj.weight", (4 * C, C)),
        ]
        vectors += [
            (p + "ln_1.weight", (C,)),
            (p + "ln_1.bias", (C,)),
            (p + "attn.c_attn.bias", (3 * C,)),
            (p + "attn.c_proj.bias", (C,)),
            (p + "ln_2.weight", (C,)),
            (p + "ln_2.bias", (C,)),
            (p + "mlp.c_fc.bias", (4 * C,)),
            (p + "mlp.c_proj.bias", (C,)),
        ]
    vectors += [("ln_f.weight", (C,)), ("ln_f.bias", (C,))]
    return matrices + vectors


class FlatTensors:
    """Named views into one flat buffer; `n_decay` is where the matrices end."""

    def __init__(self, cfg: GPTConfig, dtype=np.float32, buffer: np.ndarray | None = None):
        shapes = param_shapes(cfg)
        total = sum(int(np.prod(s)) for _, s in shapes)
        self.flat = memory.zeros(total, dtype) if buffer is None else buffer
        if self.flat.size != total:
            raise ValueError(f"buffer holds {self.flat.size} values, the model needs {total}")
        self.views: dict[str, np.ndarray] = {}
        offset = 0
        self.n_decay = 0
        for name, shape in shapes:
            n = int(np.prod(shape))
            self.views[name] = self.flat[offset : offset + n].reshape(shape)
            offset += n
            if len(shape) == 2:
                self.n_decay = offset

    def __getitem__(self, name: str) -> np.ndarray:
        return self.views[name]

    def load(self, weights: dict[str, np.ndarray]) -> None:
        missing = set(self.views) - set(weights)
        if missing:
            raise ValueError(f"weights lack {sorted(missing)[:3]}…")
        for name, view in self.views.items():
            if weights[name].shape != view.shape:
                raise ValueError(f"{name} has shape {weights[name].shape}, the model needs {view.shape}")
            view[...] = weights[name]

    def as_dict(self) -> dict[str, np.ndarray]:
        return {name: view.copy() for name, view in self.views.items()}


@dataclass
class _Layer:
    """Activations of one block, kept for the backward pass."""

    ln1: np.ndarray
    ln1_mean: np.ndarray
    ln1_rstd: np.ndarray
    qkv: np.ndarray
    atty: np.ndarray
    att_lse: np.ndarray
    residual2: np.ndarray
    ln2: np.ndarray
    ln2_mean: np.ndarray
    ln2_rstd: np.ndarray
    fch: np.ndarray  # the c_fc output, overwritten by gelu' of it: all the backward needs
    fch_gelu: np.ndarray
    residual3: np.ndarray


class Activations:
    """All buffers of one (B, T) forward/backward pass, allocated once and reused."""

    def __init__(self, cfg: GPTConfig, B: int, T: int, dtype=np.float32):
        C, V, NH, N = cfg.n_embd, cfg.vocab_size, cfg.n_head, B * T
        self.B, self.T = B, T
        layer = {
            "ln1": (N, C), "ln1_mean": (N,), "ln1_rstd": (N,), "qkv": (N, 3 * C), "atty": (N, C),
            "att_lse": (B, NH, T), "residual2": (N, C), "ln2": (N, C), "ln2_mean": (N,), "ln2_rstd": (N,),
            "fch": (N, 4 * C), "fch_gelu": (N, 4 * C), "residual3": (N, C),
        }
        rest = {
            "encoded": (N, C), "lnf": (N, C), "lnf_mean": (N,), "lnf_rstd": (N,), "logits": (N, V),
            "losses": (N,),
            # backward scratch: one residual-stream gradient and per-layer temporaries
            "dresidual": (N, C), "dln": (N, C), "dbig": (N, 4 * C), "dqkv": (N, 3 * C), "datty": (N, C),
        }
        # one block on huge pages for all of them (see memory.py)
        arrays = iter(memory.carve([*rest.values(), *list(layer.values()) * cfg.n_layer], dtype))
        for name in rest:
            setattr(self, name, next(arrays))
        self.layers = [_Layer(**{name: next(arrays) for name in layer}) for _ in range(cfg.n_layer)]


class GPT:
    """Forward and backward of the model over a kernel namespace `K` (compiled or reference)."""

    def __init__(self, cfg: GPTConfig, kernels, params: FlatTensors | None = None, dtype=np.float32):
        """`dtype` float64 with the reference kernels is for gradient checks only."""
        self.cfg = cfg
        self.K = kernels
        self.dtype = dtype
        self.params = params or FlatTensors(cfg, dtype)
        self.grads = FlatTensors(cfg, dtype)
        self.acts: Activations | None = None
        self._inputs: np.ndarray | None = None

    def _acts(self, B: int, T: int) -> Activations:
        if self.acts is None or (self.acts.B, self.acts.T) != (B, T):
            self.acts = Activations(self.cfg, B, T, self.dtype)
        return self.acts

    def forward(self, idx: np.ndarray, targets: np.ndarray) -> float:
        """Mean cross-entropy of `targets` given `idx`, both (B, T) int32; keeps activations."""
        K, P, cfg = self.K, self.params, self.cfg
        B, T = idx.shape
        if T > cfg.block_size:
            raise ValueError(f"context {T} is longer than block_size {cfg.block_size}")
        a = self._acts(B, T)
        idx = np.ascontiguousarray(idx, dtype=np.int32)
        targets = np.ascontiguousarray(targets, dtype=np.int32)
        self._inputs, self._targets = idx, targets
        K.encoder_forward(a.encoded, idx, P["wte.weight"], P["wpe.weight"])
        residual = a.encoded
        for i, L in enumerate(a.layers):
            p = f"h.{i}."
            K.layernorm_forward(L.ln1, L.ln1_mean, L.ln1_rstd, residual, P[p + "ln_1.weight"], P[p + "ln_1.bias"])
            K.matmul_forward(L.qkv, L.ln1, P[p + "attn.c_attn.weight"], P[p + "attn.c_attn.bias"])
            K.attention_forward(L.atty, L.att_lse, L.qkv, B, T, cfg.n_head)
            # the projections add the residual stream as they write (bias + residual, then the product)
            K.matmul_forward(L.residual2, L.atty, P[p + "attn.c_proj.weight"], P[p + "attn.c_proj.bias"], residual)
            K.layernorm_forward(L.ln2, L.ln2_mean, L.ln2_rstd, L.residual2, P[p + "ln_2.weight"], P[p + "ln_2.bias"])
            # GELU as the product is stored: fch_gelu = gelu(h), fch = gelu'(h) for the backward
            K.matmul_forward(L.fch_gelu, L.ln2, P[p + "mlp.c_fc.weight"], P[p + "mlp.c_fc.bias"], dgelu=L.fch)
            K.matmul_forward(L.residual3, L.fch_gelu, P[p + "mlp.c_proj.weight"], P[p + "mlp.c_proj.bias"], L.residual2)
            residual = L.residual3
        K.layernorm_forward(a.lnf, a.lnf_mean, a.lnf_rstd, residual, P["ln_f.weight"], P["ln_f.bias"])
        K.matmul_forward_tied(a.logits, a.lnf, P["wte.weight"])
        return K.crossentropy_forward(a.losses, a.logits, targets.reshape(-1))

    def logits(self, idx: np.ndarray) -> np.ndarray:
        """(B, T, vocab_size) next-token logits for `idx` (B, T)."""
        self.forward(idx, np.zeros_like(idx, dtype=np.int32))
        B, T = idx.shape
        return self.acts.logits.reshape(B, T, -1).copy()

    def backward(self, scale: float = 1.0) -> None:
        """Gradients of `scale` times the last forward's mean loss, ADDED into self.grads
        (zero them first; gradient accumulation passes scale = 1/steps).

        Scratch gradients (dln, dbig, datty, dqkv) and the residual stream's gradient
        dres are first written by the kernel that produces them (accumulate False), so
        none needs zeroing; dres is then summed into over the branches."""
        K, P, G, cfg, a = self.K, self.params, self.grads, self.cfg, self.acts
        B, T = a.B, a.T
        dlogits = a.logits  # the loss gradient overwrites the logits: they are not needed again
        K.crossentropy_backward(dlogits, a.logits, self._targets.reshape(-1), scale / (B * T))
        residual = a.layers[-1].residual3 if a.layers else a.encoded
        dres = a.dresidual  # written by ln_f's backward, then summed into over the branches
        K.matmul_backward_tied(a.dln, G["wte.weight"], dlogits, a.lnf, P["wte.weight"], accumulate_dinp=False)
        K.layernorm_backward(dres, G["ln_f.weight"], G["ln_f.bias"], a.dln, residual, P["ln_f.weight"], a.lnf_mean, a.lnf_rstd, accumulate_dinp=False)
        for i in reversed(range(cfg.n_layer)):
            L, p = a.layers[i], f"h.{i}."
            residual = a.layers[i - 1].residual3 if i > 0 else a.encoded
            # MLP: dres flows through the residual unchanged and into the MLP branch
            # dbig = gelu'(h) * (dres @ W.T), through the GELU as it is stored
            K.matmul_backward(a.dbig, G[p + "mlp.c_proj.weight"], G[p + "mlp.c_proj.bias"], dres, L.fch_gelu, P[p + "mlp.c_proj.weight"], accumulate_dinp=False, dinp_scale=L.fch)
            K.matmul_backward(a.dln, G[p + "mlp.c_fc.weight"], G[p + "mlp.c_fc.bias"], a.dbig, L.ln2, P[p + "mlp.c_fc.weight"], accumulate_dinp=False)
            K.layernorm_backward(dres, G[p + "ln_2.weight"], G[p + "ln_2.bias"], a.dln, L.residual2, P[p + "ln_2.weight"], L.ln2_mean, L.ln2_rstd)
            # attention
            K.matmul_backward(a.datty, G[p + "attn.c_proj.weight"], G[p + "attn.c_proj.bias"], dres, L.atty, P[p + "attn.c_proj.weight"], accumulate_dinp=False)
            K.attention_backward(a.dqkv, a.datty, L.qkv, L.atty, L.att_lse, B, T, cfg.n_head, accumulate=False)
            K.matmul_backward(a.dln, G[p + "attn.c_attn.weight"], G[p + "attn.c_attn.bias"], a.dqkv, L.ln1, P[p + "attn.c_attn.weight"], accumulate_dinp=False)
            K.layernorm_backward(dres, G[p + "ln_1.weight"], G[p + "ln_1.bias"], a.dln, residual, P[p + "ln_1.weight"], L.ln1_mean, L.ln1_rstd)
        K.encoder_backward(G["wte.weight"], G["wpe.weight"], dres, self._inputs)

    def zero_grad(self) -> None:
        self.grads.flat.fill(0.0)
