"""The API key of the OpenAI-compatible /v1/ routes, kept in the data root's `openai-key` file.

It is not the launch secret: an OpenAI client is configured once and keeps its key in some
other program's settings, so the key lives across launches (in a file only its owner may
read), and a key pasted into such a config opens /v1/ and nothing else. Regenerating replaces
the file; the file is read at every check, so the old key stops working at once.
"""

import hmac
import logging
import os
import secrets
import stat
import tempfile
import threading
from pathlib import Path

from cllm_app.fsutil import atomic_write_bytes, fsync_dir

log = logging.getLogger(__name__)

PREFIX = "sk-cllm-"  # some clients insist that a key starts with "sk-"
FILE_MODE = 0o600


def _new_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def _usable(key: str) -> bool:
    return len(key) >= 16 and key.isascii() and key.isprintable() and " " not in key


class OpenAIKey:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def _write_temp(self, key: str) -> str:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            os.chmod(tmp, FILE_MODE)  # mkstemp makes it 0600 on POSIX; not every platform does
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(key + "\n")
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return tmp

    def _read(self) -> str | None:
        try:
            mode = self.path.stat().st_mode
            text = self.path.read_text(encoding="ascii", errors="replace").strip()
        except FileNotFoundError:
            return None
        if os.name == "posix" and stat.S_IMODE(mode) & 0o077:
            os.chmod(self.path, FILE_MODE)  # copied in from elsewhere with looser rights
        return text if _usable(text) else None

    def get(self) -> str:
        """The key, made on first use. Another process making it at the same moment cannot
        leave two keys: the file is linked into place only if none is there yet."""
        key = self._read()
        if key is not None:
            return key
        with self._lock:
            key = self._read()
            if key is not None:
                return key
            if self.path.exists():
                log.warning("%s does not hold a usable key; making a new one", self.path)
                return self.regenerate()
            tmp = self._write_temp(_new_key())
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                pass
            finally:
                Path(tmp).unlink(missing_ok=True)
            fsync_dir(self.path.parent)
            return self._read() or self.regenerate()

    def regenerate(self) -> str:
        """A new key in place of the old, which no longer opens anything."""
        key = _new_key()
        atomic_write_bytes(self.path, (key + "\n").encode("ascii"))  # its temporary file is mkstemp's: 0600
        return key

    def matches(self, given: str) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.get().encode())
