"""What the libraries we read files with say on their own (pypdf's "EOF marker not found",
trafilatura's and charset-normalizer's logging, Python warnings), caught while one file is
read, so that it reaches that file's line of the report and the job's log instead of the
terminal or the window.

Logging handlers and warnings filters are the process's, so a catch covers whatever the
process does meanwhile: an ingest reads its files one at a time, in one thread.
"""

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePath

# The loggers of the libraries behind the readers (trafilatura's helpers too).
LIBRARIES = ("pypdf", "trafilatura", "htmldate", "courlan", "justext", "charset_normalizer")
MAX_KEPT = 10  # distinct notices a file keeps: a broken PDF can repeat one a thousand times


class Notices:
    """The distinct notices heard while one file was read, in order, with how often each came."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self.dropped = 0

    def add(self, text: str) -> None:
        text = " ".join(text.split())  # one line each, whatever the library wrote
        if text in self._counts:
            self._counts[text] += 1
        elif len(self._counts) < MAX_KEPT:
            self._counts[text] = 1
        else:
            self.dropped += 1

    def lines(self) -> list[str]:
        out = [text if n == 1 else f"{text} ({n} times)" for text, n in self._counts.items()]
        if self.dropped:
            out.append(f"and {self.dropped:,} more")
        return out

    def __bool__(self) -> bool:
        return bool(self._counts)


class _Catch(logging.Handler):
    def __init__(self, notices: Notices):
        super().__init__(logging.WARNING)
        self.notices = notices

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a library's bad format string must not fail the file
            message = str(record.msg)
        self.notices.add(f"{record.name.split('.')[0]}: {message}")


def _source(w: warnings.WarningMessage) -> str:
    """The package that warned (from its file's path), else the warning's class."""
    parts = PurePath(w.filename).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts and parts.index(marker) + 1 < len(parts):
            return PurePath(parts[parts.index(marker) + 1]).stem
    return w.category.__name__


@contextmanager
def caught(notices: Notices) -> Iterator[Notices]:
    """Within the block, the libraries' log records (warning and above) and every Python
    warning go to `notices` and nowhere else; all of them are there once the block ends,
    whether it ended in an error or not."""
    handler = _Catch(notices)
    loggers = [logging.getLogger(name) for name in LIBRARIES]
    kept = [lg.propagate for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.propagate = False  # else the root's last-resort handler prints it on stderr
    with warnings.catch_warnings(record=True) as raised:
        warnings.simplefilter("always")  # "once per place" would hide it from the next file's line
        try:
            yield notices
        finally:
            for lg, propagate in zip(loggers, kept, strict=True):
                lg.removeHandler(handler)
                lg.propagate = propagate
            for w in raised:
                notices.add(f"{_source(w)}: {w.message}")
