"""The validation split, and the held-out loss measured on it.

The split decides which tokens of the queue are never trained on:
    tail       the last `share` of each document's tokens (at least one token of every document
               of two or more), so one document still has a validation part
    documents  whole documents, chosen by a hash of their content key, so the split never
               changes as items are added; fewer than two documents fall back to their tails
    marked     only the queue items a person marked as validation
    auto       tail below AUTO_DOCUMENTS documents, documents from there on; the trainer pins
               the choice when a model first trains, so added items never move text it trained
               on into validation
Items marked as validation are held out whole in every mode.

The held-out loss is one definition for the trainer's evaluations and Research's "its own
validation split", so both give the same number for the same weights: the validation pieces,
each after <|endoftext|>, read as one stream cut into windows of `T` tokens, every token
predicted once, the mean cross-entropy over the predicted tokens. A split larger than
SAMPLE_TOKENS is measured on a fixed, evenly spread sample of its windows, and the standard
error from the spread of the batches' losses says how far that sample's mean may be from the
whole split's.
"""

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

AUTO_DOCUMENTS = 20
SAMPLE_TOKENS = 16_384


@dataclass(frozen=True)
class Item:
    """What the split needs of a queue item: its id, content key, token count, and mark."""

    doc_id: int
    key: str
    tokens: int
    holdout: bool = False


def resolve(mode: str, n_documents: int) -> str:
    """The concrete split `mode` stands for with this many documents."""
    if mode != "auto":
        return mode
    return "documents" if n_documents >= AUTO_DOCUMENTS else "tail"


def _bucket(key: str) -> float:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def plan(items: list[Item], mode: str, share: float) -> dict[int, int]:
    """How many tokens at the start of each document train: {doc_id: n}; the rest validate."""
    mode = resolve(mode, len(items))
    head = {i.doc_id: 0 if i.holdout else i.tokens for i in items}
    rest = [i for i in items if not i.holdout]
    if mode == "marked" or share <= 0 or not rest:
        return head
    if mode == "documents" and len(rest) >= 2:
        val = [i for i in rest if _bucket(i.key) < share] or [min(rest, key=lambda i: _bucket(i.key))]
        if len(val) == len(rest):
            val = val[:1]
        for i in val:
            head[i.doc_id] = 0
        return head
    for i in rest:
        if i.tokens >= 2:
            held = min(max(1, round(i.tokens * share)), i.tokens - 1)
            head[i.doc_id] = i.tokens - held
    return head


def describe(mode: str, share: float, n_documents: int) -> str:
    """The split in words, for the queue and the chart."""
    concrete = resolve(mode, n_documents)
    pct = f"{share:.0%}"
    if concrete == "marked":
        return "the items marked as validation"
    if share <= 0:
        return "no validation split (validation_share is 0)"
    if concrete == "documents" and n_documents >= 2:
        return f"whole documents, about {pct} of them (by a hash of their text), and any marked as validation"
    return f"the last {pct} of each document's tokens, and any item marked as validation"


@dataclass
class HeldOut:
    """A held-out measure: mean loss (nats per token), its standard error (0 when the whole
    split was measured), and the tokens measured out of the split's."""

    loss: float
    stderr: float
    tokens: int
    tokens_available: int
    bytes: int = 0  # UTF-8 bytes of the measured tokens, when `measure` was told how to count them
    windows: int = 0

    @property
    def whole(self) -> bool:
        return self.tokens == self.tokens_available

    def as_json(self) -> dict:
        return {"loss": self.loss, "stderr": self.stderr, "tokens": self.tokens,
                "tokens_available": self.tokens_available, "whole": self.whole}


def stream(pieces: list[np.ndarray], eot: int) -> np.ndarray:
    """The validation pieces as one token stream, each after <|endoftext|>."""
    if not pieces:
        return np.zeros(0, np.int32)
    parts = []
    for p in pieces:
        parts.append(np.array([eot], np.int32))
        parts.append(np.asarray(p, np.int32))
    return np.concatenate(parts)


def windows(tokens: np.ndarray, T: int, sample_tokens: int = SAMPLE_TOKENS) -> tuple[list[int], int]:
    """The starts of the windows measured (T predicted tokens each, the last one shorter) and
    the tokens the whole stream predicts. Past `sample_tokens`, an evenly spread fixed sample."""
    predicted = max(0, tokens.size - 1)
    starts = list(range(0, predicted, T))
    keep = max(1, sample_tokens // T)
    if len(starts) > keep:
        full = starts[:-1] if predicted % T else starts  # the sample takes whole windows only
        picks = np.linspace(0, len(full) - 1, keep).round().astype(int)
        starts = [full[i] for i in sorted(set(picks.tolist()))]
    return starts, predicted


def measure(loss: Callable[[np.ndarray, np.ndarray], float], pieces: list[np.ndarray], eot: int,
            B: int, T: int, sample_tokens: int = SAMPLE_TOKENS,
            count_bytes: Callable[[np.ndarray], int] | None = None) -> HeldOut | None:
    """The held-out loss of `pieces` with `loss(x, y)` (the mean cross-entropy of a batch);
    None when there is nothing to predict. `count_bytes(targets)` counts the text's bytes."""
    tokens = stream(pieces, eot)
    starts, available = windows(tokens, T, sample_tokens)
    if available == 0:
        return None
    full = [s for s in starts if s + T + 1 <= tokens.size]
    short = [s for s in starts if s + T + 1 > tokens.size]
    sums, counts = [], []
    n_bytes = 0
    for i in range(0, len(full), B):
        group = full[i : i + B]
        x = np.stack([tokens[s : s + T] for s in group])
        y = np.stack([tokens[s + 1 : s + T + 1] for s in group])
        sums.append(float(loss(x, y)) * x.size)
        counts.append(x.size)
        n_bytes += count_bytes(y.reshape(-1)) if count_bytes else 0
    for s in short:  # the stream's last, shorter window
        n = tokens.size - 1 - s
        sums.append(float(loss(tokens[None, s : s + n], tokens[None, s + 1 : s + n + 1])) * n)
        counts.append(n)
        n_bytes += count_bytes(tokens[s + 1 : s + n + 1]) if count_bytes else 0
    measured = sum(counts)
    mean = sum(sums) / measured
    stderr = 0.0
    if measured < available and len(sums) > 1:
        per = np.array(sums) / np.array(counts)
        w = np.array(counts, float) / measured
        var = float(np.sum(w * (per - mean) ** 2)) * len(per) / (len(per) - 1)
        stderr = math.sqrt(var / len(per))
    return HeldOut(mean, stderr, measured, available, n_bytes, len(starts))
