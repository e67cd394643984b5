"""A small disk of our own for tests: a tmpfs mounted for one test (the tests run as root, here
and in CI), that fills up with a filler file, goes read-only, and is always unmounted after."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

# What a write in progress leaves behind if nobody cleans up after it.
TEMP_PATTERNS = ("*.tmp", ".tmp-*", ".ingest-*", ".staging-*", ".write-test-*")


class SmallDisk:
    def __init__(self, mount_point: Path):
        self.path = mount_point
        self.filler = mount_point / "filler.bin"

    @property
    def free(self) -> int:
        return shutil.disk_usage(self.path).free

    def fill(self, leave: int = 0) -> None:
        """Take all the free space but `leave` bytes (0: every last block)."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            size = os.lseek(fd, 0, os.SEEK_END) + max(0, self.free - leave)
            os.posix_fallocate(fd, 0, size)
            if leave == 0:
                os.lseek(fd, 0, os.SEEK_END)
                with contextlib.suppress(OSError):  # the last partial block, until nothing is left
                    while os.write(fd, b"\0" * 4096):
                        pass
        finally:
            os.close(fd)
        assert self.free <= leave + 4096, (self.free, leave)

    def make_room(self) -> None:
        self.filler.unlink(missing_ok=True)

    def read_only(self, on: bool = True) -> None:
        subprocess.run(["mount", "-o", f"remount,{'ro' if on else 'rw'}", str(self.path)], check=True)


@contextlib.contextmanager
def small_disk(where: Path, size: str = "32m") -> Iterator[SmallDisk]:
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield SmallDisk(where)
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=True)  # a file still open: detach it


def leftovers(root: Path) -> list[str]:
    """Temporary files and folders under `root`, and anything waiting in staging/."""
    found = []
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            if any(fnmatch.fnmatch(name, p) for p in TEMP_PATTERNS):
                found.append(os.path.relpath(os.path.join(dirpath, name), root))
    staging = root / "staging"
    if staging.is_dir():
        found += [f"staging/{p.name}" for p in staging.iterdir()]
    return sorted(found)
