"""The store's changes as one numbered feed, for every open window to follow (GET /api/events).

A thread polls the store (store/watch.py) every POLL_SECONDS, and at once when this process
says it has just changed something (`poke`, after each write request), so a change by the
CLI, a job's worker or another connection reaches the window within a fraction of a second.
Each change gets the next id; the last KEEP are kept, so a window that reconnects with the
last id it saw gets what it missed, and one that missed more is told to fetch everything.
The feed says what kind of thing changed (topics), for which models where it can tell, and
the state now of those models, their jobs and crawls (services/changes.py), so a window's one
store of models is kept true by the feed alone.
"""

import logging
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path

from cllm_app.store.schema import iso, utcnow
from cllm_app.store.watch import StoreWatch

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2
KEEP = 1000


class Events:
    def __init__(self, db_path: Path, poll_seconds: float = POLL_SECONDS, keep: int = KEEP,
                 describe: Callable[[list[str], list[int]], dict] | None = None):
        """`describe(topics, model_ids)`: what an event carries besides its topics and models."""
        self.db_path = db_path
        self.describe = describe
        self.poll_seconds = poll_seconds
        self._log: deque[dict] = deque(maxlen=keep)
        self._last_id = 0
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = threading.Event()

    def start(self) -> "Events":
        """Start watching (once); returns when the watch has its first look at the store, so a
        change made after start() returns is never missed."""
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="cllm-events", daemon=True)
                self._thread.start()
        self._started.wait(10)
        return self

    def poke(self) -> None:
        """This process has just committed a change: look now rather than at the next poll."""
        self._wake.set()

    def publish(self, topics: list[str], model_ids: list[int] = (), state: dict | None = None) -> dict:
        with self._cond:
            self._last_id += 1
            event = {"id": self._last_id, "topics": list(topics), "model_ids": list(model_ids),
                     "at": iso(utcnow(), "milliseconds"), **(state or {})}
            self._log.append(event)
            self._cond.notify_all()
        return event

    @property
    def last_id(self) -> int:
        return self._last_id

    def after(self, last_id: int) -> list[dict] | None:
        """The events after `last_id`, or None when they are no longer all kept (or the id is
        not one of this feed's: a window that was talking to an earlier run of the app)."""
        with self._cond:
            if last_id > self._last_id:
                return None
            oldest = self._log[0]["id"] if self._log else self._last_id + 1
            if last_id < oldest - 1:
                return None
            return [e for e in self._log if e["id"] > last_id]

    def wait(self, last_id: int, timeout: float) -> list[dict] | None:
        """Block until there are events after `last_id` (or `timeout` seconds, or close)."""
        with self._cond:
            self._cond.wait_for(lambda: self._last_id > last_id or self._closed.is_set(), timeout)
        return self.after(last_id)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        self._closed.set()
        self._wake.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)

    def _state(self, topics: list[str], model_ids: list[int]) -> dict:
        if self.describe is None or not model_ids:
            return {}
        try:
            return self.describe(topics, model_ids)
        except Exception:  # the event still says what changed: a window asks the API itself
            log.exception("describing a change failed")
            return {"incomplete": True}

    def _loop(self) -> None:
        watch = None
        try:
            watch = StoreWatch(self.db_path)
        finally:
            self._started.set()
        while not self._closed.is_set():
            self._wake.clear()  # before the look, so a poke during it brings another at once
            try:
                change = watch.poll()
            except Exception:  # keep watching: the next poll tries again
                log.exception("watching the store failed")
                change = None
            if change is not None:
                self.publish(*change, self._state(*change))
            self._wake.wait(self.poll_seconds)
        watch.close()
