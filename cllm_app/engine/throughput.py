"""How fast this machine trains a shape: tokens per second of the built-in trainer's whole
step (forward, backward, clipping and AdamW) on random tokens, timed after a warm-up step.

The recipe chooser (services/recipe.py) asks it for each shape it weighs; a step of a small
model takes milliseconds, so a handful of steps gives a figure good to a few percent.
"""

import math
import time

import numpy as np

from cllm_app.engine.config import GPTConfig
from cllm_app.engine.model import GPT, FlatTensors
from cllm_app.engine.trainer import TrainSettings, optimizer_step
from cllm_app.engine.weights import init_weights


def tokens_per_second(cfg: GPTConfig, batch_size: int, context: int, kernels, seconds: float = 0.6,
                      max_steps: int = 8) -> float:
    """The measured training speed of `cfg` at batch_size x context tokens per step."""
    rng = np.random.default_rng(0)
    model = GPT(cfg, kernels)
    model.params.load(init_weights(cfg, seed=0))
    m, v = FlatTensors(cfg), FlatTensors(cfg)
    s = TrainSettings()

    def step(i: int) -> None:
        x = rng.integers(0, cfg.vocab_size, (batch_size, context), dtype=np.int32)
        y = rng.integers(0, cfg.vocab_size, (batch_size, context), dtype=np.int32)
        model.zero_grad()
        model.forward(x, y)
        model.backward()
        optimizer_step(kernels, model, m, v, i, 1e-4, s)

    step(1)  # warm-up: buffers, caches, the first page faults
    done, started = 0, time.perf_counter()
    while done < max_steps and (done < 2 or time.perf_counter() - started < seconds):
        step(done + 2)
        done += 1
    elapsed = time.perf_counter() - started
    return batch_size * context * done / elapsed if elapsed > 0 else math.inf
