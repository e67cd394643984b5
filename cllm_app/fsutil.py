"""File steps that matter: atomic writes, moves that can be undone, and folder sizes.

A write goes to a temporary file in the same folder, is fsynced, then renamed
over the target, so a crash leaves either the old file or the new one.
"""

import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


# A folder changed this close to its measurement may change again within the same tick of the
# file system's clock and keep its mtime (ext4 ticks with the kernel's coarse clock, HFS+ by the
# second, FAT by two), so such a tree is not trusted until it has been quiet this long.
SETTLE_NS = 3_000_000_000


@dataclass(frozen=True)
class _Tree:
    folders: tuple[tuple[str, int, int], ...]  # (path, inode, mtime_ns) of every folder in it
    settled: bool  # every folder was quiet for SETTLE_NS when measured, and none vanished meanwhile
    final_bytes: int  # files under their final names
    in_progress: tuple[str, ...]  # files under a dot-name or in a dot-folder: writes not finished


def _measure(root: str) -> tuple[_Tree, int]:
    """dir_size's walk (the same files, the same sizes), noting each folder's mtime on the way.
    Returns the tree and its size now."""
    started = time.time_ns()
    folders, in_progress, final, unfinished, settled = [], [], 0, 0, True
    stack = [(root, False)]
    while stack:
        path, hidden = stack.pop()
        try:
            st = os.stat(path)
            folders.append((path, st.st_ino, st.st_mtime_ns))
            settled = settled and st.st_mtime_ns < started - SETTLE_NS
            with os.scandir(path) as entries:
                for e in entries:
                    dotted = hidden or e.name.startswith(".")
                    try:
                        if e.is_dir():
                            if not e.is_symlink():  # os.walk neither follows nor counts a link to a folder
                                stack.append((e.path, dotted))
                            continue
                        size = e.stat(follow_symlinks=False).st_size
                    except OSError:
                        settled = False  # gone while we looked
                        continue
                    if dotted:
                        in_progress.append(e.path)
                        unfinished += size
                    else:
                        final += size
        except OSError:
            settled = False
    return _Tree(tuple(folders), settled, final, tuple(in_progress)), final + unfinished


def _unchanged(tree: _Tree) -> bool:
    for path, ino, mtime in tree.folders:
        try:
            st = os.stat(path)
        except OSError:
            return False
        if st.st_mtime_ns != mtime or st.st_ino != ino:
            return False
    return True


class FolderSizes:
    """dir_size of folders asked for again and again (every model, at every listing), remembered
    while nothing in them changes, so that checking a folder costs a stat per subfolder instead
    of a listing of every folder and a stat of every file.

    Why that is enough: a folder's mtime changes whenever a name is added to it, removed from it
    or renamed in it; and the app writes every file in a model's folder under a temporary
    dot-name and renames it into place when complete (checkpoints are whole dot-folders renamed
    into place), so a file under its final name never changes size. Files under dot-names are
    writes in progress: they are stat'ed again at every check. A tree that was changing while it
    was measured is measured again next time. (A file rewritten in place under its final name,
    which nothing in the app does, would show once its folder next changes.)"""

    def __init__(self):
        self._trees: dict[str, _Tree] = {}
        self._lock = threading.Lock()  # the server lists from several threads at once
        self.measured = 0  # how many times a tree was walked (tests watch this)

    def size(self, folder: Path | str) -> int:
        path = os.fspath(folder)
        with self._lock:
            tree = self._trees.get(path)
        if tree is not None and tree.settled and _unchanged(tree):
            try:
                return tree.final_bytes + sum(os.lstat(p).st_size for p in tree.in_progress)
            except OSError:
                pass  # a write finished (or gave up) since: its folder has changed, so measure again
        tree, size = _measure(path)
        with self._lock:
            self.measured += 1
            self._trees[path] = tree
        return size

    def keep_only(self, folders) -> None:
        """Forget every folder but these (renamed and deleted models leave entries behind)."""
        keep = {os.fspath(f) for f in folders}
        with self._lock:
            for path in self._trees.keys() - keep:
                del self._trees[path]


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
