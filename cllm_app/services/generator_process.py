"""Replies are generated in a process of their own, not in the server's.

A token loop in the server's process held the GIL between kernel calls and kept the cores busy at
the window's own priority, so every other reply of the window (the model list, a progress bar)
waited behind it: a listing's p99 rose from about 16 ms to over 60 ms on 2 cores while one chat
streamed. Now the server only sends a prompt and reads token ids back over a local connection;
it turns them into text itself (services/streams.py), so stop strings, counts and the saved
messages stay where they were.

The process (`cllm generator N`, hidden) holds the loaded models and is started at first use, then
kept; one that died is started again at the next use. It has one connection for loads (the server
loads a model before it opens a stream, so a damaged file is refused before the first byte of a
reply) and `N` for streams, one each, so a stream never waits on another's tokens.

Protocol, pickled over `multiprocessing.connection` (an AF_UNIX socket or a Windows pipe, with a
fresh key):
  loads:   ("load", spec) -> ("ok", None) | ("error", exception)
  streams: ("generate", spec, prompt_ids, sampling) -> [token ids] ... then ("end", None) or
           ("error", exception); ("stop", None) at any time ends the reply after its current token.
`spec` names the weights the server looked at: {"key", "folder", "weights", "tokenizer", "context"}.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import asdict
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path

from cllm_app.engine.config import GPTConfig
from cllm_app.engine.generate import Generator, Sampling
from cllm_app.engine.kernel_choice import decode_kernel
from cllm_app.engine.model import FlatTensors
from cllm_app.engine.tokenizer import load_tokenizer
from cllm_app.engine.weights import load_weights
from cllm_app.errors import CllmError
from cllm_app.procs import lower_priority
from cllm_app.services.models import CONFIG_FILE, WEIGHTS_FILE

# Replies come after the window's own requests and before background jobs (procs.py's
# JOB_NICENESS): a person waits for both, but a list that stalls feels broken, a reply a few
# percent slower does not.
GENERATOR_NICENESS = 5
# Tokens go to the server at most this often, in lists: a wake-up of the server at every token
# stalled the decode threads (B wrote 30-40% fewer tokens a second on 2 cores); 20 ms is less
# than a frame of the window's display.
BATCH_SECONDS = 0.02
START_SECONDS = 120  # importing numpy and the kernels on a busy laptop
FREE_CHANNEL_SECONDS = 30  # a slot's previous stream is still handing its channel back


class GeneratorStopped(CllmError):
    status = 503
    code = "generator_stopped"


def generator_command(channels: int) -> list[str]:
    # A PyInstaller binary is `cllm` itself; from source, run the package (as procs.py does).
    if getattr(sys, "frozen", False):
        return [sys.executable, "generator", str(channels)]
    return [sys.executable, "-m", "cllm_app", "generator", str(channels)]


# ---- the server's side ---------------------------------------------------------------------


class GeneratorProcess:
    """The process replies are generated in, seen from the server: `load` a model, then stream
    `tokens` from it on one of `channels` connections."""

    def __init__(self, channels: int, log_path: Path | None = None):
        self.channels = channels
        self.log_path = log_path
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._control: Connection | None = None
        self._control_lock = threading.Lock()
        # Last in, first out: replies one after another are written by the same thread of the
        # process. Taking turns, each thread kept its own OpenMP team, and the idle team's
        # threads still spinning slowed the other's decoding by a third (B: 350 against 580
        # tokens/s on 2 cores).
        self._free: queue.LifoQueue = queue.LifoQueue()
        self._epoch = 0  # which start a channel belongs to: a dead process's channels are not reused
        self.starts = 0  # how many times the process was started (tests watch this)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _start(self) -> None:
        """Start the process and connect to it (the caller holds _lock)."""
        self._stop_process()
        key = os.urandom(32)
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab") if self.log_path is not None else subprocess.DEVNULL  # noqa: SIM115
        try:
            proc = subprocess.Popen(generator_command(self.channels), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=log, close_fds=True)
        finally:
            if log is not subprocess.DEVNULL:
                log.close()
        try:
            proc.stdin.write(key.hex().encode() + b"\n")
            proc.stdin.close()
            address = _read_line(proc, START_SECONDS)
            control = Client(address, authkey=key)
            streams = [Client(address, authkey=key) for _ in range(self.channels)]
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        self._proc, self._control = proc, control
        self._epoch += 1
        self._free = queue.LifoQueue()
        for conn in streams:
            self._free.put((self._epoch, conn))
        self.starts += 1

    def _stop_process(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        while True:
            try:
                self._free.get_nowait()[1].close()
            except queue.Empty:
                break
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            if self._proc.stdout:
                self._proc.stdout.close()
            self._proc = None

    def _ensure(self) -> None:
        with self._lock:
            if not self._running():
                try:
                    self._start()
                except (OSError, EOFError, TimeoutError) as e:
                    raise GeneratorStopped(f"the process that generates replies could not start ({e}); try again") from e

    def _died(self, what: str) -> GeneratorStopped:
        with self._lock:
            self._stop_process()
        return GeneratorStopped(f"the process that generates replies stopped while {what}; try again")

    def load(self, spec: dict) -> None:
        """Have the process load a model now: its refusal (a damaged or missing file) is raised here."""
        self._ensure()
        with self._control_lock:
            control = self._control
            try:
                control.send(("load", spec))
                kind, value = control.recv()
            except (OSError, EOFError, AttributeError):
                raise self._died("loading a model") from None
        if kind == "error":
            raise value

    def tokens(self, spec: dict, prompt_ids: list[int], sampling: Sampling,
               should_stop: Callable[[], bool]) -> Iterator[int]:
        """The reply's token ids as the process makes them; it stops after the current token
        once `should_stop()` says so, or when the caller leaves the loop. A process found dead
        before the reply's first token (it died while nothing ran) is started again once."""
        for attempt in (1, 2):
            started = []
            try:
                yield from self._tokens(spec, prompt_ids, sampling, should_stop, started)
                return
            except GeneratorStopped:
                if started or attempt == 2:
                    raise

    def _tokens(self, spec, prompt_ids, sampling, should_stop, started: list) -> Iterator[int]:
        self._ensure()
        try:
            epoch, conn = self._free.get(timeout=FREE_CHANNEL_SECONDS)
        except queue.Empty:
            raise GeneratorStopped("no stream channel came free; try again") from None
        clean = False  # the channel holds nothing more of this reply
        stop_sent = False
        try:
            conn.send(("generate", spec, [int(t) for t in prompt_ids], asdict(sampling)))
            while True:
                if not stop_sent and should_stop():
                    conn.send(("stop", None))
                    stop_sent = True
                msg = conn.recv()
                if type(msg) is list:
                    for token in msg:
                        if stop_sent or should_stop():
                            break  # as the generator itself would: no token after a stop
                        started.append(True)
                        yield token
                    continue
                kind, value = msg
                clean = True
                if kind == "error":
                    raise value
                return
        except (OSError, EOFError):
            clean = False
            raise self._died("writing a reply") from None
        finally:
            if not clean:
                clean = _drain(conn, stop_sent)
            if clean and epoch == self._epoch:
                self._free.put((epoch, conn))
            else:
                conn.close()
                if epoch == self._epoch and not clean:
                    with self._lock:  # a channel left mid-reply cannot be trusted: start afresh
                        self._stop_process()

    def close(self) -> None:
        with self._lock:
            self._stop_process()


def _drain(conn: Connection, stop_sent: bool) -> bool:
    """End a reply the caller left mid-way: ask it to stop and read up to its end."""
    try:
        if not stop_sent:
            conn.send(("stop", None))
        while True:
            if not conn.poll(START_SECONDS):
                return False
            msg = conn.recv()
            if type(msg) is not list:
                return True
    except (OSError, EOFError):
        return False


def _read_line(proc: subprocess.Popen, seconds: float) -> str:
    """The first line the process prints (its address), or TimeoutError / EOFError."""
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(seconds)
    if reader.is_alive():
        raise TimeoutError(f"it said nothing within {seconds} s")
    line = out[0].decode().strip() if out else ""
    if not line:
        raise EOFError(f"it exited with status {proc.wait()}")
    return line


# ---- the process's side --------------------------------------------------------------------


def read_generator(folder: Path, tokenizer: str, context: int, weights: str = WEIGHTS_FILE) -> Generator:
    """A model's files read into a Generator (in the generator process: services/generator_process.py);
    `weights`: the file in `folder` it answers with (the latest, or the best)."""
    cfg = GPTConfig.load(folder / CONFIG_FILE)
    params = FlatTensors(cfg)
    params.load(load_weights(folder / weights))
    step, _ = decode_kernel(cfg, params)
    return Generator(cfg, params, load_tokenizer(folder, tokenizer), step, context=context)


class _Models:
    """The models loaded in this process, a few at a time, by the key the server gave them."""

    def __init__(self, size: int = 3):
        self.size = size
        self._items: OrderedDict[tuple, Generator] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, spec: dict) -> Generator:
        key = tuple(spec["key"])
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        generator = read_generator(Path(spec["folder"]), spec["tokenizer"], spec["context"],
                                   spec.get("weights", WEIGHTS_FILE))
        with self._lock:
            self._items[key] = generator
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return generator


def _reply(conn: Connection, exc: BaseException) -> None:
    if not isinstance(exc, CllmError):
        # A bug, not a refusal: the server says so with the traceback's last line.
        exc = CllmError(f"generating failed: {type(exc).__name__}: {exc}", code="generation_failed")
        traceback.print_exc(file=sys.stderr)
    conn.send(("error", exc))


def _serve_loads(conn: Connection, models: _Models) -> None:
    while True:
        _kind, spec = conn.recv()
        try:
            models.get(spec)
        except Exception as e:
            _reply(conn, e)
        else:
            conn.send(("ok", None))


def _serve_stream(conn: Connection, models: _Models) -> None:
    try:
        while True:
            msg = conn.recv()
            if msg[0] != "generate":
                continue  # a stop that came after its reply had ended
            _kind, spec, prompt_ids, sampling = msg
            try:
                generator = models.get(spec)
                batch, sent_at = [], 0.0
                for token in generator.tokens(prompt_ids, Sampling(**sampling), conn.poll):
                    batch.append(token)
                    if (now := time.monotonic()) - sent_at >= BATCH_SECONDS:  # the first one at once
                        conn.send(batch)
                        batch, sent_at = [], now
                if batch:
                    conn.send(batch)
            except Exception as e:
                _reply(conn, e)
                continue
            conn.send(("end", None))
    except (OSError, EOFError):
        os._exit(0)  # the server went away


def serve(channels: int) -> int:
    """The process's main: connect, then generate until the server goes away."""
    key = bytes.fromhex(sys.stdin.readline().strip())
    lower_priority(GENERATOR_NICENESS)
    with Listener(authkey=key) as listener:
        print(listener.address, flush=True)
        control = listener.accept()
        streams = [listener.accept() for _ in range(channels)]
    models = _Models()
    for conn in streams:
        threading.Thread(target=_serve_stream, args=(conn, models), daemon=True).start()
    try:
        _serve_loads(control, models)
    except (OSError, EOFError):
        pass  # the server went away (closed, killed): so does this process
    os._exit(0)
