"""Noticing every commit to the store, by any connection of any process (the window's server,
a job's worker, the CLI), cheaply.

SQLite's `PRAGMA data_version` changes on a connection once another connection has committed,
and reading it costs no disk I/O. Only when it has changed does the watch run a few small
queries (fingerprints) that tell what kind of thing changed and, where the table says, for
which models; so it can be asked every 200 ms. It never writes and never holds a read
transaction open between polls, so it cannot delay a writer or a WAL checkpoint.
"""

import sqlite3
import zlib
from pathlib import Path

from cllm_app.store.db import open_reader

_ACTIVE = "('queued', 'running', 'stopping', 'paused')"
_LIVE_CRAWLS = "('queued', 'running', 'pausing', 'stopping')"

# topic -> a query whose rows are (model_id, fingerprint...). A topic changed when its rows did;
# the model ids of the rows that differ say for which models. Each query reads a small table,
# an index, or the newest rows only, so a poll stays far below a millisecond per topic on a
# data root of many models and a long loss history.
FINGERPRINTS = {
    # names, renames, deletes and restores, settings, epochs and steps (a checkpoint)
    "models": "SELECT id, model_name, updated_at, deleted_at, target_epochs, epochs_trained, steps_trained,"
    " n_layer, tokenizer, best_step FROM models",
    "queue": "SELECT model_id, count(*), max(id), total(token_count), total(status = 'ready'), total(holdout)"
    " FROM queue_entries GROUP BY model_id",
    # a job submitted, started, ended (states, not progress)
    "jobs": f"SELECT model_id, max(id), max(finished_at), group_concat(CASE WHEN state IN {_ACTIVE}"
    " THEN id || ':' || state END) FROM jobs GROUP BY model_id",
    # the live progress a running job reports
    "progress": f"SELECT model_id, id, progress, crc(detail), crc(message) FROM jobs WHERE state IN {_ACTIVE}",
    "history": "SELECT model_id, id FROM loss_history ORDER BY id DESC LIMIT 1",
    "crawls": f"SELECT model_id, id, state, updated_at, trainings_queued, crc(message) FROM crawls"
    f" WHERE state IN {_LIVE_CRAWLS} OR id IN (SELECT max(id) FROM crawls GROUP BY model_id)",
}
OTHER = "store"  # something else changed (settings, conversations, notes' links…)


def _crc(text) -> int:
    return zlib.crc32(text.encode("utf-8", "replace")) if text else 0


class StoreWatch:
    """Use from one thread: poll() → None (nothing committed since the last poll) or
    (topics, model_ids) of what changed."""

    def __init__(self, db_path: Path):
        # A plain read connection of its own (not the app's peewee one): data_version only moves
        # for commits made through *other* connections, and this one never commits.
        self._conn = open_reader(db_path)
        self._conn.create_function("crc", 1, _crc, deterministic=True)
        self._version = self._data_version()
        self._prints = self._fingerprints()

    def _data_version(self) -> int:
        return self._conn.execute("PRAGMA data_version").fetchone()[0]

    def _fingerprints(self) -> dict[str, dict]:
        prints = {}
        for topic, sql in FINGERPRINTS.items():
            try:
                prints[topic] = {row[0]: row[1:] for row in self._conn.execute(sql)}
            except sqlite3.OperationalError:  # a table an older store lacks, mid-upgrade
                prints[topic] = {}
        return prints

    def poll(self) -> tuple[list[str], list[int]] | None:
        version = self._data_version()
        if version == self._version:
            return None
        self._version = version
        prints = self._fingerprints()
        topics, model_ids = [], set()
        for topic, rows in prints.items():
            before = self._prints.get(topic, {})
            if rows != before:
                topics.append(topic)
                model_ids.update(k for k in rows.keys() | before.keys()
                                 if k is not None and rows.get(k) != before.get(k))
        self._prints = prints
        return (topics or [OTHER]), sorted(model_ids)

    def close(self) -> None:
        self._conn.close()
