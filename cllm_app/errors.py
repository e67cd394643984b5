"""The refusals every layer shares.

Services raise these; the API turns them into `{"error": {"code", "message"}}`
with `status`, and the CLI prints `message` and exits with status 2.
"""

import errno
import shutil
from pathlib import Path


class CllmError(Exception):
    """A refusal with a stable machine code and a message for a person."""

    status = 400
    code = "invalid_request"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class InvalidInput(CllmError):
    status = 400
    code = "invalid_input"


class NotFound(CllmError):
    status = 404
    code = "not_found"


class Conflict(CllmError):
    status = 409
    code = "conflict"


class ConfirmationRequired(CllmError):
    status = 400
    code = "confirmation_required"


class DiskFull(CllmError):
    """A write ran out of space. Whatever it was writing is gone again; what was there before stays."""

    status = 507
    code = "disk_full"


class DataRootUnusable(CllmError):
    """The data root cannot be written (a read-only disk, a folder without permission)."""

    status = 503
    code = "data_root_unwritable"


class DamagedFile(CllmError):
    """A file of the data root is damaged; the message names it and says what to do."""

    status = 409
    code = "file_damaged"


_DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def is_disk_full(exc: BaseException | None) -> bool:
    """True for "no space left" from the OS or SQLite, also when wrapped (peewee, zstd, a cause)."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, DiskFull):
            return True
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS:
            return True
        text = str(exc).lower()
        if "database or disk is full" in text or "no space left on device" in text:
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _mb(n: float) -> str:
    return f"{n / 1024**2:.1f} MB" if n >= 1024**2 else f"{max(0, n) / 1024:.0f} KB"


def disk_full(what: str, where: Path, need: int | None = None) -> DiskFull:
    """The one message for a full disk: what could not be written, where, and how much more it needs."""
    free = free_bytes(where)
    if need is not None and need > free:
        return DiskFull(f"the disk is full: {what} needs {_mb(max(need - free, 1024))} more than the {_mb(free)} free "
                        f"in {where}; free some space and try again")
    return DiskFull(f"the disk is full: {what} found no room in {where} ({_mb(free)} free); "
                    "free some space and try again")


def free_bytes(path: Path) -> int:
    """Free space on the disk holding `path` (or its nearest existing parent)."""
    path = Path(path)
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return 0


def as_refusal(exc: BaseException, what: str = "the change", where: Path | None = None) -> CllmError | None:
    """A refusal for a person from any exception that has one (a refusal itself, a full disk), else None."""
    if isinstance(exc, CllmError):
        return exc
    if where is None:
        from cllm_app.paths import default_root

        where = default_root()  # SQLite names no file: the store is in the data root
    if is_disk_full(exc):
        path = getattr(exc, "filename", None)
        return disk_full(what, Path(path).parent if path else where)
    text = str(exc)
    if "database disk image is malformed" in text or "file is not a database" in text:
        # Damage the quick check at start did not see (or that came since): a restart moves it aside.
        return DamagedFile(
            f"the store {Path(where) / 'cllm.db'} is damaged ({text}); close CLLM Studio and start it again: it "
            "moves the damaged store aside (keeping it) and starts a new one with the models it finds"
        )
    return None
