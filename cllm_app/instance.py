"""One app per data root.

The process that serves the window also runs the data root's background jobs, and two job
runners on one data root would both start the same queued job (and break "one job per model
and lane"). So the first app holds an OS lock on `cllm.lock` in the data root and writes its
pid and address there; a second one reads them and refuses, naming the first. The OS drops the
lock however the process ends (even kill -9 or a power cut), so a crash never leaves a stale
lock behind. The CLI's own commands (train, data add, crawl…) run their job in their own
process, never through a runner, so they work beside the open window and take no lock.
"""

import errno
import json
import logging
import os
import time
from pathlib import Path

from cllm_app.errors import CllmError

log = logging.getLogger(__name__)

LOCK_NAME = "cllm.lock"
_WINDOWS_LOCK_OFFSET = 1 << 20  # Windows locks a byte range: one past what the file ever holds


class AlreadyOpen(CllmError):
    status = 409
    code = "already_open"


def _try_lock(f) -> bool:
    """False when another process holds the lock. A file system that cannot lock at all (some
    network shares) lets the app open unguarded rather than never."""
    try:
        if os.name == "nt":
            import msvcrt

            f.seek(_WINDOWS_LOCK_OFFSET)
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK, errno.EDEADLK):
            return False
        log.warning("cannot lock %s (%s): a second app on this data root would not be refused", f.name, e)
    return True


def _holder(path: Path, patience: float = 2.0) -> dict:
    """What the app holding the lock wrote (it writes just after locking: allow it a moment)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            info = json.loads(path.read_text(encoding="utf-8") or "{}")
            if info.get("pid"):
                return info
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            return {}
        time.sleep(0.05)


class InstanceLock:
    def __init__(self, root: Path):
        self.path = Path(root) / LOCK_NAME
        self._file = None

    def acquire(self, url: str) -> None:
        """Hold the data root for this process (serving at `url`, no secret in it), or raise
        AlreadyOpen naming the app that holds it."""
        if self._file is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+", encoding="utf-8")  # "a+": never empty the holder's note before holding the lock
        if not _try_lock(f):
            f.close()
            info = _holder(self.path)
            where = f"pid {info['pid']}, {info.get('url', 'address unknown')}" if info else "another process"
            raise AlreadyOpen(f"CLLM Studio is already open on this data root ({where}); "
                              "use that window, or close it first")
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "url": url}))
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is None:
            return
        try:
            self._file.seek(0)
            self._file.truncate()
        except OSError:
            pass
        self._file.close()  # closing drops the lock
        self._file = None
