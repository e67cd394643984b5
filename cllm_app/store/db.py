"""The one place that opens the database."""

from pathlib import Path

from peewee import SqliteDatabase

from cllm_app.store.migrations import upgrade
from cllm_app.store.schema import db


def open_store(db_path: Path) -> SqliteDatabase:
    """Open (creating or upgrading) the SQLite store at `db_path` and bind the models to it."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    database = SqliteDatabase(
        str(db_path),
        pragmas={
            "journal_mode": "wal",
            "foreign_keys": 1,
            "synchronous": "normal",  # with WAL this is still crash-safe for committed transactions
            "busy_timeout": 5000,  # a training process and the window write to the same file
        },
    )
    database.connect(reuse_if_open=True)
    upgrade(database, db_path)
    db.initialize(database)
    return database
