"""Streaming generation for the LLM tab and the OpenAI-compatible API.

- `ModelCache` keeps a few loaded models, keyed by model id and the weights file's mtime and
  size: a model that is training is read from the weights its trainer writes at every
  checkpoint (atomic replace, read-only here), and the next request after a checkpoint
  loads the new weights. The weights are read, and the tokens made, in the generator process
  (services/generator_process.py), so a reply never holds up the server's other replies.
- `TextStream` turns a generator's tokens into text pieces, stops at stop strings (holding
  back text that may be the start of one, so a stop string never reaches the client), and
  reports token counts, time to first token and tokens/s when it ends.
- `Streams` limits how many streams generate at once (each one keeps a CPU core busy) and
  lets a stream be stopped by id (the Stop button) or by its client going away.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cllm_app.engine.config import GPTConfig
from cllm_app.engine.generate import Generator, Sampling, window_context
from cllm_app.engine.tokenizer import load_tokenizer
from cllm_app.errors import CllmError, InvalidInput
from cllm_app.services.generator_process import GeneratorProcess, read_generator
from cllm_app.services.models import CONFIG_FILE, served_weights
from cllm_app.services.sampling import check_sampling

MAX_STREAMS = 2  # the app targets laptops: more parallel streams only slow each other down
CACHED_MODELS = 3
MAX_STOP_STRINGS = 4
MAX_STOP_LENGTH = 200


class TooBusy(CllmError):
    status = 429
    code = "too_many_streams"


@dataclass
class Loaded:
    """A model ready to talk: its generator and the stamp of the weights it was read from."""

    model_id: int
    stamp: tuple
    generator: RemoteGenerator


class RemoteGenerator:
    """What a stream and a prompt need of a Generator (its tokenizer and context, its tokens),
    with the tokens made in the generator process."""

    def __init__(self, process: GeneratorProcess, spec: dict, tok, context: int):
        self.process, self.spec, self.tok, self.context = process, spec, tok, context

    def tokens(self, prompt_ids: list[int], s: Sampling, should_stop: Callable[[], bool] = lambda: False) -> Iterator[int]:
        return self.process.tokens(self.spec, prompt_ids, s, should_stop)


class ModelCache:
    """A few loaded models, reloaded when their weights file changes. The weights themselves are
    held by the generator process; this side keeps each model's tokenizer and the stamp."""

    def __init__(self, process: GeneratorProcess, size: int = CACHED_MODELS):
        self.process = process
        self.size = size
        self._items: OrderedDict[int, Loaded] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0  # how many times weights were read from disk (tests watch this)

    @staticmethod
    def _stamp(weights: Path, folder) -> tuple:
        w, c = os.stat(weights), os.stat(folder / CONFIG_FILE)
        return (weights.name, w.st_mtime_ns, w.st_size, w.st_ino, c.st_mtime_ns, c.st_size)

    def get(self, models, row) -> Loaded:
        folder = models.folder(row)
        weights = served_weights(folder, row)
        try:
            # The context it generates over is the model's training context, so a changed one reloads.
            stamp = (*self._stamp(weights, folder), row.sequence_length)
        except FileNotFoundError:
            raise InvalidInput(
                f"the weights of '{row.model_name}' are missing from {folder}", code="weights_missing"
            ) from None
        with self._lock:
            hit = self._items.get(row.id)
            if hit is not None and hit.stamp == stamp:
                self._items.move_to_end(row.id)
                return hit
        # Loading happens outside the lock so one large model does not hold up the others.
        spec = {"key": (row.id, *stamp), "folder": str(folder), "weights": weights.name,
                "tokenizer": row.tokenizer, "context": row.sequence_length}
        self.process.load(spec)  # the process reads the weights; a damaged file is refused here
        cfg = GPTConfig.load(folder / CONFIG_FILE)
        generator = RemoteGenerator(self.process, spec, load_tokenizer(folder, row.tokenizer),
                                    window_context(cfg, row.sequence_length))
        loaded = Loaded(row.id, stamp, generator)
        with self._lock:
            self.loads += 1
            self._items[row.id] = loaded
            self._items.move_to_end(row.id)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return loaded


def check_stop(stop) -> list[str]:
    """Stop strings: one string or a list of up to four non-empty ones."""
    if stop is None:
        return []
    items = [stop] if isinstance(stop, str) else stop
    if not isinstance(items, list) or len(items) > MAX_STOP_STRINGS or not all(
        isinstance(s, str) and 0 < len(s) <= MAX_STOP_LENGTH for s in items
    ):
        raise InvalidInput(
            f"stop must be a text or a list of up to {MAX_STOP_STRINGS} texts of 1 to "
            f"{MAX_STOP_LENGTH} characters",
            code="invalid_stop",
        )
    return list(items)


@dataclass
class StreamStats:
    prompt_tokens: int
    completion_tokens: int = 0
    seconds: float = 0.0
    time_to_first_token: float | None = None
    finish_reason: str | None = None  # stop | length | cancelled

    @property
    def tokens_per_sec(self) -> float | None:
        """Decoding speed after the first token (the first one also pays for reading the prompt)."""
        if self.completion_tokens < 2 or self.time_to_first_token is None:
            return None
        span = self.seconds - self.time_to_first_token
        return (self.completion_tokens - 1) / span if span > 0 else None

    def as_dict(self) -> dict:
        tps = self.tokens_per_sec
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "seconds": round(self.seconds, 4),
            "time_to_first_token": None if self.time_to_first_token is None else round(self.time_to_first_token, 4),
            "tokens_per_sec": None if tps is None else round(tps, 2),
            "finish_reason": self.finish_reason,
        }


def _held_back(text: str, stops: list[str]) -> int:
    """How many characters at the end of `text` could begin a stop string."""
    keep = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:n]):
                keep = max(keep, n)
                break
    return keep


class TextStream:
    """Iterate for text pieces; `stats` and `text` hold the outcome once it ends."""

    def __init__(
        self,
        generator: Generator,
        prompt_ids: list[int],
        sampling: Sampling,
        stop: list[str] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        strip_leading: bool = False,
    ):
        self.generator, self.prompt_ids, self.sampling = generator, prompt_ids, sampling
        self.stop = stop or []
        self.should_stop = should_stop
        self.strip_leading = strip_leading
        self.stats = StreamStats(prompt_tokens=len(prompt_ids))
        self.text = ""

    def __iter__(self) -> Iterator[str]:
        st = self.stats
        t0 = time.perf_counter()
        decoder = self.generator.tok.stream_decoder()
        pending = ""  # decoded but not yet given out: it may be the start of a stop string
        started = not self.strip_leading
        try:
            for token in self.generator.tokens(self.prompt_ids, self.sampling, self.should_stop):
                st.completion_tokens += 1
                if st.time_to_first_token is None:
                    st.time_to_first_token = time.perf_counter() - t0
                piece = decoder.push(token)
                if not piece:
                    continue
                if not started:
                    piece = piece.lstrip()
                    started = bool(piece)
                pending += piece
                if self.stop:
                    hit = min((i for i in (pending.find(s) for s in self.stop) if i >= 0), default=-1)
                    if hit >= 0:
                        pending = pending[:hit]
                        st.finish_reason = "stop"
                        break
                    out = pending[: len(pending) - _held_back(pending, self.stop)]
                else:
                    out = pending
                if out:
                    pending = pending[len(out):]
                    self.text += out
                    yield out
            else:
                pending += decoder.flush()
            if st.finish_reason is None:
                if self.should_stop():
                    st.finish_reason = "cancelled"
                elif st.completion_tokens >= self.sampling.max_new_tokens:
                    st.finish_reason = "length"
                else:
                    st.finish_reason = "stop"  # the model ended its text (<|endoftext|>)
            if pending:
                self.text += pending
                yield pending
        finally:
            st.seconds = time.perf_counter() - t0
            if st.finish_reason is None:
                st.finish_reason = "cancelled"  # the client went away mid-stream


@dataclass
class Handle:
    """A running stream: its id (for Stop) and its stop flag."""

    stream_id: str
    model_id: int
    stop_event: threading.Event = field(default_factory=threading.Event)

    def stopped(self) -> bool:
        return self.stop_event.is_set()


class Streams:
    """The streams generating now, at most `limit` at a time, each stoppable by id."""

    def __init__(self, models, limit: int = MAX_STREAMS):
        self.models = models
        self.process = GeneratorProcess(limit, models.root.path / "logs" / "generator.log")
        self.cache = ModelCache(self.process)
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self._running: dict[str, Handle] = {}

    def load(self, model_name: str) -> tuple:
        """(model row, loaded model) for a live model; works while it trains."""
        row = self.models.get(model_name)
        return row, self.cache.get(self.models, row)

    def write_here(self, model_name: str, prompt: str, sampling: dict,
                   should_stop: Callable[[], bool] = lambda: False) -> Iterator[str]:
        """Continue `prompt` in this process, not the generator's: `cllm generate` has no window
        to keep responsive. Reads the latest weights (read-only, even while the model trains)."""
        if not isinstance(prompt, str):
            raise InvalidInput("prompt must be text", code="invalid_prompt")
        s = check_sampling(sampling)
        row = self.models.get(model_name)
        folder = self.models.folder(row)
        generator = read_generator(folder, row.tokenizer, row.sequence_length, served_weights(folder, row).name)
        return generator.text(prompt, s, should_stop)

    def open(self, model_id: int) -> Handle:
        """Take a slot or refuse at once: a waiting request would only look frozen."""
        if not self._slots.acquire(blocking=False):
            raise TooBusy(
                f"{self.limit} replies are being generated already; wait for one to finish or stop it",
            )
        handle = Handle(uuid.uuid4().hex, model_id)
        with self._lock:
            self._running[handle.stream_id] = handle
        return handle

    def close(self, handle: Handle) -> None:
        with self._lock:
            if self._running.pop(handle.stream_id, None) is None:
                return
        self._slots.release()

    def stop(self, stream_id: str) -> bool:
        """Ask a stream to end after its current token; False when it has already ended."""
        with self._lock:
            handle = self._running.get(stream_id)
        if handle is None:
            return False
        handle.stop_event.set()
        return True

    def active(self) -> int:
        with self._lock:
            return len(self._running)

    def shutdown(self) -> None:
        """End the generator process (the app is closing)."""
        self.process.close()
