"""The one place that opens the database."""

import sqlite3
from pathlib import Path

from peewee import SqliteDatabase

from cllm_app.store.migrations import upgrade
from cllm_app.store.schema import db


class StoreDatabase(SqliteDatabase):
    """Transactions take the write lock when they begin (BEGIN IMMEDIATE). A deferred
    transaction that reads and then writes fails at once with "database is locked" when
    another process (a training worker) wrote in between; an immediate one waits its turn
    (busy_timeout) instead."""

    def begin(self, lock_type: str | None = None):
        # Called for every outermost transaction, also when it is opened through the proxy.
        return super().begin(lock_type or "IMMEDIATE")


def open_store(db_path: Path) -> SqliteDatabase:
    """Open (creating or upgrading) the SQLite store at `db_path` and bind the models to it."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    database = StoreDatabase(
        str(db_path),
        pragmas={
            "journal_mode": "wal",
            "foreign_keys": 1,
            "synchronous": "normal",  # with WAL this is still crash-safe for committed transactions
            "busy_timeout": 15000,  # a training process and the window write to the same file
        },
    )
    database.connect(reuse_if_open=True)
    upgrade(database, db_path)
    db.initialize(database)
    return database


def open_reader(db_path: Path) -> sqlite3.Connection:
    """A plain read-only connection of its own (store/watch.py's): autocommit, so it never holds
    a read transaction open between queries, and usable from the one thread that owns it."""
    conn = sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 2000")
    return conn
