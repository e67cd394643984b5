"""The same GPT as engine/model.py, written in PyTorch: GPT-2's layout (weights stored (in, out),
as Hugging Face's Conv1D), a head tied to the token embedding, LayerNorm with eps 1e-5, the tanh
GELU and causal attention. It holds the same named tensors, so a model moves between the two
engines through its safetensors file and its checkpoints.

torch is imported here and only here; nothing that starts the app imports this module.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cllm_app.engine.config import GPTConfig
from cllm_app.engine.model import param_shapes

LAYERNORM_EPS = 1e-5  # as kernels/layernorm.pyx


def _key(name: str) -> str:
    return name.replace(".", "__")  # ParameterDict keys cannot hold dots


class TorchGPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.weights = nn.ParameterDict(
            {_key(name): nn.Parameter(torch.zeros(shape)) for name, shape in param_shapes(cfg)}
        )

    def w(self, name: str) -> torch.Tensor:
        return self.weights[_key(name)]

    @torch.no_grad()
    def load(self, weights: dict[str, np.ndarray]) -> None:
        """Take the named tensors of a model (weights.load_weights, FlatTensors.as_dict)."""
        for name, shape in param_shapes(self.cfg):
            value = torch.from_numpy(np.ascontiguousarray(weights[name], dtype=np.float32))
            if tuple(value.shape) != shape:
                raise ValueError(f"{name} has shape {tuple(value.shape)}, the model's is {shape}")
            self.w(name).copy_(value)

    def named_arrays(self, grads: bool = False) -> dict[str, np.ndarray]:
        """The weights (or their gradients) as numpy arrays under the model's names."""
        out = {}
        for name, _shape in param_shapes(self.cfg):
            t = self.w(name).grad if grads else self.w(name)
            out[name] = t.detach().to("cpu", torch.float32).numpy().copy()
        return out

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """Logits (B, T, vocab_size), and the mean cross-entropy of `targets` when given."""
        cfg = self.cfg
        B, T = idx.shape
        if T > cfg.block_size:
            raise ValueError(f"context {T} is longer than block_size {cfg.block_size}")
        C, nh = cfg.n_embd, cfg.n_head
        x = self.w("wte.weight")[idx] + self.w("wpe.weight")[:T]
        for i in range(cfg.n_layer):
            p = f"h.{i}."
            h = F.layer_norm(x, (C,), self.w(p + "ln_1.weight"), self.w(p + "ln_1.bias"), LAYERNORM_EPS)
            qkv = h @ self.w(p + "attn.c_attn.weight") + self.w(p + "attn.c_attn.bias")
            q, k, v = (t.view(B, T, nh, C // nh).transpose(1, 2) for t in qkv.split(C, dim=-1))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
            x = x + y @ self.w(p + "attn.c_proj.weight") + self.w(p + "attn.c_proj.bias")
            h = F.layer_norm(x, (C,), self.w(p + "ln_2.weight"), self.w(p + "ln_2.bias"), LAYERNORM_EPS)
            h = F.gelu(h @ self.w(p + "mlp.c_fc.weight") + self.w(p + "mlp.c_fc.bias"), approximate="tanh")
            x = x + h @ self.w(p + "mlp.c_proj.weight") + self.w(p + "mlp.c_proj.bias")
        x = F.layer_norm(x, (C,), self.w("ln_f.weight"), self.w("ln_f.bias"), LAYERNORM_EPS)
        logits = x @ self.w("wte.weight").T
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1))
