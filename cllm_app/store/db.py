"""The one place that opens the database.

A damaged database (not a database any more, or failing SQLite's quick check) is never
deleted: it is moved aside, with its WAL, as `cllm.db.damaged-<time>`, and a new store is
started in its place, so the app still starts. The caller learns of it through
`database.damaged` and puts back what the model folders can tell (services/recovery.py).
"""

import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from peewee import DatabaseError, SqliteDatabase

from cllm_app.errors import DamagedFile
from cllm_app.store.migrations import upgrade
from cllm_app.store.schema import db, utcnow

# SQLite's words for a file that is not (or no longer) a sound database; "locked", "read-only"
# or "unable to open" are other troubles, and never a reason to move the file aside.
_DAMAGE = ("file is not a database", "malformed", "file is encrypted", "corrupt")


class StoreDatabase(SqliteDatabase):
    """Transactions take the write lock when they begin (BEGIN IMMEDIATE). A deferred
    transaction that reads and then writes fails at once with "database is locked" when
    another process (a training worker) wrote in between; an immediate one waits its turn
    (busy_timeout) instead."""

    damaged: "Damage | None" = None

    def begin(self, lock_type: str | None = None):
        # Called for every outermost transaction, also when it is opened through the proxy.
        return super().begin(lock_type or "IMMEDIATE")


@dataclass
class Damage:
    """What was wrong with the store and where the damaged file went."""

    reason: str
    moved_to: Path


class _Damaged(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _connect(db_path: Path) -> StoreDatabase:
    database = StoreDatabase(
        str(db_path),
        pragmas={
            "journal_mode": "wal",
            "foreign_keys": 1,
            "synchronous": "normal",  # with WAL this is still crash-safe for committed transactions
            "busy_timeout": 15000,  # a training process and the window write to the same file
        },
    )
    try:
        database.connect(reuse_if_open=True)
        if db_path.exists() and db_path.stat().st_size:
            # Reads every page once (tens of milliseconds for a store of tens of MB), so damage
            # shows now, at start, and not in the middle of a rename.
            found = [r[0] for r in database.execute_sql("PRAGMA quick_check(5)").fetchall()]
            if found != ["ok"]:
                raise _Damaged("; ".join(found))
        upgrade(database, db_path)
    except (DatabaseError, sqlite3.DatabaseError) as e:  # a cursor's rows come unwrapped by peewee
        database.close()
        if any(word in str(e).lower() for word in _DAMAGE):
            raise _Damaged(str(e)) from None
        raise
    except _Damaged:
        database.close()
        raise
    return database


def _move_aside(db_path: Path, inode: int | None) -> Path:
    stamp = utcnow().strftime("%Y%m%dT%H%M%S")
    aside = db_path.with_name(f"{db_path.name}.damaged-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = db_path.with_name(f"{db_path.name}.damaged-{stamp}-{n}")
    # Another process may have moved it aside (and started a new store) since we looked:
    # then the file here is that new store, and must stay.
    if inode is not None and db_path.exists() and db_path.stat().st_ino == inode:
        os.replace(db_path, aside)
        for side in ("-wal", "-shm"):
            extra = db_path.with_name(db_path.name + side)
            if extra.exists():
                os.replace(extra, aside.with_name(aside.name + side))
    return aside


def open_store(db_path: Path, move_damaged: bool = True) -> SqliteDatabase:
    """Open (creating or upgrading) the SQLite store at `db_path` and bind the models to it.
    A damaged store is moved aside and a new one opened; `database.damaged` then says so.
    With `move_damaged` False (a job's worker, which must not pull the store from under the
    app that started it) a damaged store is refused instead."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    inode = db_path.stat().st_ino if db_path.exists() else None
    try:
        database = _connect(db_path)
    except _Damaged as e:
        if not move_damaged:
            raise DamagedFile(
                f"the store {db_path} is damaged ({e.reason}); close CLLM Studio and start it again: it moves "
                "the damaged store aside (keeping it) and starts a new one with the models it finds"
            ) from None
        aside = _move_aside(db_path, inode)
        try:
            database = _connect(db_path)
        except _Damaged as again:
            raise DamagedFile(
                f"the store {db_path} is damaged ({again.reason}) and could not be moved aside; move it "
                "away by hand (keep it: it holds your models' history) and start again"
            ) from None
        database.damaged = Damage(reason=e.reason, moved_to=aside)
    db.initialize(database)
    return database


def open_reader(db_path: Path) -> sqlite3.Connection:
    """A plain read-only connection of its own (store/watch.py's): autocommit, so it never holds
    a read transaction open between queries, and usable from the one thread that owns it."""
    conn = sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 2000")
    return conn


class StoreVersion:
    """A value that changes whenever any connection (another thread's, a worker's, the CLI's)
    has committed to the store: SQLite's `PRAGMA data_version`, read on a connection of its own
    that never writes, with the file's inode (a store moved aside and begun anew is another
    store). Reading it costs a few microseconds, so a reader can keep what it derived from the
    store until this changes, and never show a value older than the last commit."""

    def __init__(self, db_path: Path):
        self.db_path = db_path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._inode: int | None = None

    def __call__(self) -> tuple[int, int] | None:
        """(inode, data_version), or None when the store cannot be read this way."""
        with self._lock:
            try:
                inode = os.stat(self.db_path).st_ino
                if self._conn is None or inode != self._inode:
                    self._close()
                    self._conn, self._inode = open_reader(self.db_path), inode
                return inode, self._conn.execute("PRAGMA data_version").fetchone()[0]
            except (OSError, sqlite3.Error):
                self._close()
                return None

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._close()
