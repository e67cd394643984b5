"""File steps that matter: atomic writes, and moves that can be undone.

A write goes to a temporary file in the same folder, is fsynced, then renamed
over the target, so a crash leaves either the old file or the new one.
"""

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cllm_app.errors import disk_full, is_disk_full


def fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return  # Windows cannot open a directory for fsync; rename is durable enough there.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def space_needed(what: str, where: Path, need: int | None = None) -> Iterator[None]:
    """Turn "no space left" inside the block into the one disk-full refusal, naming `what`.

    The block cleans up its own partial files first (they are what a person would free)."""
    try:
        yield
    except Exception as e:
        # Also a refusal from a write inside: the person did `what`, not that one write.
        if is_disk_full(e):
            raise disk_full(what, Path(where), need) from e
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    with space_needed(f"writing {path.name}", path.parent, len(data)):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        fsync_dir(path.parent)


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass  # a file removed while we walk is simply not counted
    return total


class FileSteps:
    """Records each file step with its undo, and undoes them in reverse if the block fails.

    Used together with a database transaction: the transaction rolls back the
    rows, this rolls back the files, so a multi-step change is all or nothing.
    """

    def __init__(self):
        self._undo: list[Callable[[], None]] = []

    def __enter__(self) -> "FileSteps":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            self.rollback()
        return False

    def rollback(self) -> None:
        while self._undo:
            undo = self._undo.pop()
            try:
                undo()
            except OSError:
                pass  # keep undoing the rest; a leftover temp folder is harmless

    def move(self, src: Path, dst: Path) -> None:
        if dst.exists():
            raise FileExistsError(f"{dst} already exists")
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
        self._undo.append(lambda: os.replace(dst, src))

    def copytree(self, src: Path, dst: Path) -> None:
        if dst.exists():
            raise FileExistsError(f"{dst} already exists")
        self._undo.append(lambda: shutil.rmtree(dst, ignore_errors=True))
        shutil.copytree(src, dst)

    def replace_file(self, path: Path, data: bytes) -> None:
        """Atomically replace `path`, keeping the old bytes to put back on rollback."""
        old = path.read_bytes() if path.exists() else None
        atomic_write_bytes(path, data)
        if old is None:
            self._undo.append(lambda: path.unlink(missing_ok=True))
        else:
            self._undo.append(lambda: atomic_write_bytes(path, old))

    def on_rollback(self, undo: Callable[[], None]) -> None:
        self._undo.append(undo)
