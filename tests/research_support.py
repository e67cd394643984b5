"""Helpers the Research tests share: small real models with real queues, and an independent
numpy scoring of a text to check the app's numbers against."""

import io
import math

import numpy as np
from gpt_reference import logits as reference_logits

from cllm_app.engine.weights import load_weights
from cllm_app.services.models import WEIGHTS_FILE

SHAPE = {"n_layer": 2, "n_head": 2, "n_embd": 16, "block_size": 16}
EOT = 256


def make_model(studio, name: str, docs: int = 4, seed: int = 0, shape: dict | None = None) -> None:
    """A model with `docs` distinct documents in its queue."""
    studio.models.create(name, **(shape or SHAPE))
    rng = np.random.default_rng(seed)
    words = ["river", "light", "garden", "window", "letter", "voice", "winter", "road", "é", "ü"]
    for i in range(docs):
        text = " ".join(rng.choice(words, size=30 + 7 * i)) + f" (part {i})"
        studio.queue.add_stream(name, io.BytesIO(text.encode()), f"part{i}.txt")


def weights_of(studio, name: str) -> dict:
    return load_weights(studio.models.folder(studio.models.get(name)) / WEIGHTS_FILE)


def numpy_nats(weights: dict, n_layer: int, n_head: int, block_size: int, docs: list[np.ndarray]) -> tuple[float, int]:
    """Total cross-entropy (nats) and predicted tokens, in float64, windows as documented:
    <|endoftext|> + document, cut into non-overlapping windows of block_size."""
    total, count = 0.0, 0
    for d in docs:
        seq = np.concatenate(([EOT], np.asarray(d, dtype=np.int64)))
        for start in range(0, seq.size - 1, block_size):
            w = seq[start : start + block_size + 1]
            z = reference_logits(weights, n_layer, n_head, w[:-1])
            z = z - z.max(-1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
            total -= float(logp[np.arange(w.size - 1), w[1:]].sum())
            count += w.size - 1
    return total, count


def ln2() -> float:
    return math.log(2)
