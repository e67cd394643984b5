"""Evaluate: loss, perplexity and bits per byte of a model on any text.

Texts: the model's own validation split, another model's queue (all of it, or its validation
split), a pasted text, or an uploaded file.

The model's own validation split is measured exactly as the trainer measures it at each
evaluation (engine/heldout.py: the same pieces, windows of the model's sequence_length, the
same fixed sample of a large split, with its standard error), so the two never disagree for
the same weights. Everything below describes the other texts.

How it is measured: each document is read as <|endoftext|> followed by its tokens, so every
token of the text is predicted (the first from <|endoftext|> alone). The sequence is cut into
non-overlapping windows of the model's block_size; inside a window a token sees the window's
earlier tokens only. Non-overlapping windows cost one forward per token, at the price of a
little less context at each window's start than a sliding window would give.

    loss          = total nats / predicted tokens      (mean cross-entropy, natural log)
    perplexity    = exp(loss)
    bits_per_byte = total nats / ln 2 / UTF-8 bytes of the predicted text

Small inputs are answered at once; large ones run as an "evaluate" job with progress, its
result in the job's detail. `max_tokens` caps the predicted tokens (documents are taken in
queue order until the cap, the last one cut).
"""

import codecs
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cllm_app.engine import heldout
from cllm_app.engine.config import GPTConfig
from cllm_app.engine.kernel_choice import model_kernels
from cllm_app.engine.model import GPT, FlatTensors
from cllm_app.engine.tokenizer import Tokenizer
from cllm_app.engine.trainer import split_documents
from cllm_app.errors import InvalidInput
from cllm_app.services.research.sources import model_parts, retokenize, text_bytes
from cllm_app.services.validate import as_int
from cllm_app.store import LanguageModel

SOURCES = ("validation", "queue", "text")
SPLITS = ("all", "validation")
RUN_MODES = ("auto", "job")
DEFAULT_MAX_TOKENS = 1_000_000
MAX_TOKENS_LIMIT = 100_000_000
MAX_TEXT_BYTES = 64 * 1024 * 1024  # an uploaded file; pasted text is bounded by the request size
# Answered at once below this many (predicted tokens x parameters): a second or two here.
INLINE_BUDGET = 2_000_000_000
BATCH = 8
PENDING_DIR = "evaluations"  # texts waiting for their evaluate job, under the data root


@dataclass
class Prepared:
    """A resolved request: the model, what is evaluated, and its token documents."""

    row: LanguageModel
    cfg: GPTConfig
    weights: dict
    tok: Tokenizer
    docs: list[np.ndarray]
    source: dict
    text: str | None = None  # pasted or uploaded text, kept for a job


def _check_max_tokens(value) -> int:
    if value is None:
        return DEFAULT_MAX_TOKENS
    return as_int("max_tokens", value, 1, MAX_TOKENS_LIMIT)


def _queue_docs(models, training, target: Prepared, source_row: LanguageModel, split: str) -> list[np.ndarray]:
    docs = training.documents(source_row)
    if not docs:
        raise InvalidInput(
            f"the training-data queue of '{source_row.model_name}' is empty: nothing to evaluate",
            code="empty_queue",
        )
    if split == "validation":
        n = len(docs)
        _, docs = split_documents(docs, source_row.validation_split, source_row.validation_share)
        if not docs:
            raise InvalidInput(
                f"'{source_row.model_name}' has no validation split: it holds out "
                f"{heldout.describe(source_row.validation_split, source_row.validation_share, n)}, and none is",
                code="no_validation_split",
            )
    source_tok = target.tok if source_row.id == target.row.id else model_parts(models, source_row)[2]
    return [retokenize(d.tokens, source_tok, target.tok) for d in docs]


def prepare(models, training, model_name: str, source: str = "validation", from_model=None, split=None,
            text=None, origin: str | None = None) -> Prepared:
    """Resolve what to evaluate into token documents of the evaluated model's tokenizer."""
    row = models.get(model_name)
    if source not in SOURCES:
        raise InvalidInput(f"source must be one of: {', '.join(SOURCES)}", code="invalid_source")
    cfg, weights, tok = model_parts(models, row)
    p = Prepared(row=row, cfg=cfg, weights=weights, tok=tok, docs=[], source={"source": source})
    if source == "text":
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput("the text to evaluate is empty", code="empty_text")
        if "\x00" in text:
            raise InvalidInput("the text holds NUL characters: it looks binary, not text", code="binary_text")
        p.text = text
        p.docs = [tok.encode(text)]
        p.source.update(origin=origin or "pasted text", characters=len(text))
        return p
    if source == "validation":
        if from_model not in (None, "", row.model_name) or split not in (None, "validation"):
            raise InvalidInput("source 'validation' is the model's own validation split; use source "
                               "'queue' with from_model and split for another model's text",
                               code="invalid_source")
        p.docs = _queue_docs(models, training, p, row, "validation")
        p.source.update(from_model=row.model_name, split="validation")
        return p
    split = split or "all"
    if split not in SPLITS:
        raise InvalidInput(f"split must be one of: {', '.join(SPLITS)}", code="invalid_split")
    other = models.get(from_model) if from_model else row
    p.docs = _queue_docs(models, training, p, other, split)
    p.source.update(from_model=other.model_name, from_model_id=other.id, split=split)
    return p


def read_upload(stream, filename: str) -> str:
    """An uploaded file's text: UTF-8 (a BOM is dropped), not binary, not empty, not huge."""
    data = stream.read(MAX_TEXT_BYTES + 1)
    if len(data) > MAX_TEXT_BYTES:
        raise InvalidInput(f"'{filename}' is larger than {MAX_TEXT_BYTES // 1024**2} MB; evaluate a part of it",
                           code="file_too_large")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    if b"\x00" in data:
        raise InvalidInput(f"'{filename}' looks binary (it contains NUL bytes), not text", code="binary_file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidInput(f"'{filename}' is not UTF-8 text (byte {e.start:,} cannot be read); "
                           "save it as UTF-8 and try again", code="not_utf8") from None
    if not text.strip():
        raise InvalidInput(f"'{filename}' is empty", code="empty_file")
    return text


def score(cfg: GPTConfig, weights: dict, tok: Tokenizer, docs: list[np.ndarray], max_tokens: int,
          K=None, progress: Callable[[int, int], None] | None = None,
          should_stop: Callable[[], bool] | None = None) -> dict:
    """Sum the cross-entropy of every token of `docs` (up to `max_tokens`) with the model's
    compiled forward. Returns the measures; `stopped` is true when `should_stop` ended it early."""
    K = K or model_kernels()
    params = FlatTensors(cfg)
    params.load(weights)
    model = GPT(cfg, K, params)
    T, eot = cfg.block_size, tok.eot
    available = sum(int(d.size) for d in docs)
    budget = min(max_tokens, available)
    windows: list[np.ndarray] = []  # L+1 tokens each: inputs w[:-1], targets w[1:]
    left = budget
    n_docs = 0
    for d in docs:
        if left <= 0:
            break
        part = np.asarray(d[:left], dtype=np.int64)
        if part.size == 0:
            continue
        left -= part.size
        n_docs += 1
        seq = np.concatenate(([eot], part))
        for start in range(0, part.size, T):
            windows.append(seq[start : start + T + 1])
    total_nats = 0.0
    done = n_bytes = n_windows = 0
    stopped = False
    started = time.perf_counter()
    for i in range(0, len(windows), BATCH):
        if should_stop is not None and should_stop():
            stopped = True
            break
        group = windows[i : i + BATCH]
        L = max(w.size - 1 for w in group)
        x = np.zeros((len(group), L), np.int32)
        y = np.zeros((len(group), L), np.int32)
        mask = np.zeros((len(group), L), bool)
        for j, w in enumerate(group):
            n = w.size - 1
            x[j, :n], y[j, :n], mask[j, :n] = w[:-1], w[1:], True
        # Padding sits after each window's real tokens, so causal attention keeps it from them.
        model.forward(x, y)
        losses = model.acts.losses.reshape(len(group), L).astype(np.float64)
        total_nats += float(losses[mask].sum())
        done += int(mask.sum())
        n_bytes += sum(text_bytes(tok, w[1:]) for w in group)
        n_windows += len(group)
        if progress is not None:
            progress(done, budget)
    seconds = time.perf_counter() - started
    loss = total_nats / done if done else float("nan")
    return {
        "tokens": done,
        "bytes": n_bytes,
        "documents": n_docs,
        "windows": n_windows,
        "window": T,
        "total_nats": total_nats,
        "loss": loss,
        "perplexity": math.exp(min(loss, 700.0)) if done else float("nan"),
        "bits_per_byte": total_nats / math.log(2) / n_bytes if n_bytes else None,
        "tokens_available": available,
        "max_tokens": max_tokens,
        "truncated": available > budget,
        "stopped": stopped,
        "seconds": round(seconds, 3),
        "tokens_per_sec": round(done / seconds, 1) if seconds > 0 else None,
    }


def score_validation(p: Prepared, K=None) -> dict:
    """The model's own validation split, measured as the trainer measures it."""
    K = K or model_kernels()
    params = FlatTensors(p.cfg)
    params.load(p.weights)
    model = GPT(p.cfg, K, params)
    row = p.row
    started = time.perf_counter()
    held = heldout.measure(model.forward, p.docs, p.tok.eot, row.batch_size,
                           min(row.sequence_length, p.cfg.block_size), count_bytes=lambda y: text_bytes(p.tok, y))
    seconds = time.perf_counter() - started
    if held is None:
        raise InvalidInput(f"'{row.model_name}' has no validation text to evaluate", code="no_validation_split")
    return {
        "tokens": held.tokens,
        "bytes": held.bytes,
        "documents": len(p.docs),
        "windows": held.windows,
        "window": min(row.sequence_length, p.cfg.block_size),
        "total_nats": held.loss * held.tokens,
        "loss": held.loss,
        "stderr": held.stderr,
        "perplexity": math.exp(min(held.loss, 700.0)),
        "bits_per_byte": held.loss * held.tokens / math.log(2) / held.bytes if held.bytes else None,
        "tokens_available": held.tokens_available,
        "whole_split": held.whole,
        "max_tokens": heldout.SAMPLE_TOKENS,
        "truncated": not held.whole,
        "stopped": False,
        "seconds": round(seconds, 3),
        "tokens_per_sec": round(held.tokens / seconds, 1) if seconds > 0 else None,
    }


def evaluate(models, training, jobs, model_name: str, body: dict) -> tuple[dict, bool]:
    """Evaluate now, or submit an evaluate job for a large input. Returns (answer, is_job)."""
    run = body.get("run") or "auto"
    if run not in RUN_MODES:
        raise InvalidInput(f"run must be one of: {', '.join(RUN_MODES)}", code="invalid_run")
    max_tokens = _check_max_tokens(body.get("max_tokens"))
    p = prepare(models, training, model_name, body.get("source") or "validation", body.get("from_model"),
                body.get("split"), body.get("text"), body.get("origin"))
    if p.source["source"] == "validation" and run == "auto":  # a fixed sample at most: answered at once
        result = score_validation(p)
        return {"model_name": p.row.model_name, "source": p.source, **clean(result)}, False
    predicted = min(max_tokens, sum(int(d.size) for d in p.docs))
    if run == "auto" and predicted * p.cfg.n_params <= INLINE_BUDGET:
        result = score(p.cfg, p.weights, p.tok, p.docs, max_tokens)
        return {"model_name": p.row.model_name, "source": p.source, **clean(result)}, False
    params = {**p.source, "max_tokens": max_tokens}
    params.pop("characters", None)
    if p.text is not None:
        folder = models.root.path / PENDING_DIR
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{uuid.uuid4().hex}.txt"
        (folder / name).write_text(p.text, encoding="utf-8")
        params["text_file"] = name
    return jobs.submit("evaluate", p.row.model_name, params), True


def clean(result: dict) -> dict:
    """JSON has no NaN: an empty measure is null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in result.items()}
