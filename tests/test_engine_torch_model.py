"""The PyTorch GPT is the built-in engine's network: with the same weights and the same batch,
on the CPU in float32, its loss and every weight's gradient equal the built-in engine's to 1e-5
relative (issue 13's first rule)."""

import numpy as np
import pytest
import torch

from cllm_app.engine.config import GPTConfig
from cllm_app.engine.kernel_choice import model_kernels
from cllm_app.engine.model import GPT, param_shapes
from cllm_app.engine.torch_model import TorchGPT
from cllm_app.engine.weights import init_weights

# Odd sizes on purpose: no dimension a power of two, two layers, three heads.
CONFIGS = [
    GPTConfig(vocab_size=259, n_layer=2, n_head=3, n_embd=48, block_size=24),
    GPTConfig(vocab_size=513, n_layer=1, n_head=2, n_embd=64, block_size=32),
]


def _weights(cfg: GPTConfig, seed: int = 1) -> dict:
    """Init weights plus noise, so zero-initialised biases and projections are tested too."""
    rng = np.random.default_rng(seed)
    return {k: v + rng.normal(0, 0.1, v.shape).astype(np.float32) for k, v in init_weights(cfg).items()}


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a.astype(np.float64) - b) / max(np.linalg.norm(b.astype(np.float64)), 1e-30))


@pytest.mark.parametrize("cfg", CONFIGS, ids=["2x48", "1x64"])
def test_loss_and_gradients_equal_the_built_in_engine(cfg):
    torch.manual_seed(0)
    rng = np.random.default_rng(2)
    B, T = 3, cfg.block_size
    x = rng.integers(0, cfg.vocab_size, size=(B, T), dtype=np.int32)
    y = rng.integers(0, cfg.vocab_size, size=(B, T), dtype=np.int32)
    weights = _weights(cfg)

    builtin = GPT(cfg, model_kernels())
    builtin.params.load(weights)
    builtin.zero_grad()
    loss = builtin.forward(x, y)
    builtin.backward()
    grads = builtin.grads.as_dict()

    model = TorchGPT(cfg)
    model.load(weights)
    _, torch_loss = model(torch.from_numpy(x).long(), torch.from_numpy(y).long())
    torch_loss.backward()
    torch_grads = model.named_arrays(grads=True)

    assert torch_loss.item() == pytest.approx(loss, rel=1e-5)
    worst = max((_relative(torch_grads[n], grads[n]), n) for n, _ in param_shapes(cfg))
    assert worst[0] < 1e-5, worst


def test_weights_go_in_and_come_out_under_the_same_names():
    cfg = CONFIGS[0]
    weights = _weights(cfg, seed=5)
    model = TorchGPT(cfg)
    model.load(weights)
    back = model.named_arrays()
    assert set(back) == set(weights)
    assert all(np.array_equal(back[k], weights[k]) for k in weights)
    wrong = {**weights, "wpe.weight": weights["wpe.weight"][:-1]}
    with pytest.raises(ValueError, match="wpe.weight has shape"):
        model.load(wrong)
