"""Schema versions, kept in SQLite's `user_version`, and the steps between them.

Each migration is frozen once released: version 1 is raw SQL as it shipped,
later ones use `playhouse.migrate`. Opening a data root runs whatever steps it
is missing, each in one transaction, after copying the database file aside.
Then every training setting declared in training_settings.py gets its column if it has
none yet, filled with the setting's default: a new setting needs no migration of its own.
"""

import shutil
from collections.abc import Callable
from pathlib import Path

from peewee import (
    SQL,
    BooleanField,
    CharField,
    DateTimeField,
    FloatField,
    IntegerField,
    SqliteDatabase,
    TextField,
)
from playhouse.migrate import SqliteMigrator, migrate

from cllm_app.training_settings import SETTINGS

V1_SQL = [
    """CREATE TABLE models (
        id INTEGER NOT NULL PRIMARY KEY,
        model_name VARCHAR(255) NOT NULL,
        name_key VARCHAR(255) NOT NULL,
        created_at DATETIME NOT NULL,
        updated_at DATETIME NOT NULL,
        vocab_size INTEGER NOT NULL,
        n_layer INTEGER NOT NULL,
        n_head INTEGER NOT NULL,
        n_embd INTEGER NOT NULL,
        block_size INTEGER NOT NULL,
        tokenizer VARCHAR(255) NOT NULL,
        batch_size INTEGER NOT NULL,
        sequence_length INTEGER NOT NULL,
        learning_rate REAL NOT NULL,
        target_epochs INTEGER NOT NULL,
        grad_accum INTEGER NOT NULL,
        eval_interval INTEGER NOT NULL,
        checkpoint_interval INTEGER NOT NULL,
        warmup_steps INTEGER NOT NULL,
        weight_decay REAL NOT NULL,
        seed INTEGER NOT NULL,
        epochs_trained INTEGER NOT NULL,
        steps_trained INTEGER NOT NULL,
        tokens_trained INTEGER NOT NULL,
        duplicated_from_id INTEGER REFERENCES models (id) ON DELETE SET NULL
    )""",
    "CREATE UNIQUE INDEX models_name_key ON models (name_key)",
    "CREATE INDEX models_duplicated_from_id ON models (duplicated_from_id)",
    """CREATE TABLE model_events (
        id INTEGER NOT NULL PRIMARY KEY,
        model_id INTEGER NOT NULL REFERENCES models (id) ON DELETE CASCADE,
        kind VARCHAR(255) NOT NULL,
        detail TEXT NOT NULL,
        created_at DATETIME NOT NULL
    )""",
    "CREATE INDEX model_events_model_id ON model_events (model_id)",
    """CREATE TABLE queue_entries (
        id INTEGER NOT NULL PRIMARY KEY,
        model_id INTEGER NOT NULL REFERENCES models (id) ON DELETE CASCADE,
        source_kind VARCHAR(255) NOT NULL,
        origin TEXT NOT NULL,
        imported_from_id INTEGER REFERENCES models (id) ON DELETE SET NULL,
        data_path VARCHAR(255),
        content_hash VARCHAR(255) NOT NULL,
        byte_count INTEGER NOT NULL,
        token_count INTEGER NOT NULL,
        status VARCHAR(255) NOT NULL,
        error TEXT,
        epochs_used TEXT NOT NULL,
        added_at DATETIME NOT NULL
    )""",
    "CREATE INDEX queue_entries_model_id ON queue_entries (model_id)",
    "CREATE INDEX queue_entries_imported_from_id ON queue_entries (imported_from_id)",
    """CREATE TABLE loss_history (
        id INTEGER NOT NULL PRIMARY KEY,
        model_id INTEGER NOT NULL REFERENCES models (id) ON DELETE CASCADE,
        step INTEGER NOT NULL,
        epoch REAL NOT NULL,
        train_loss REAL,
        val_loss REAL,
        learning_rate REAL,
        tokens_per_sec REAL,
        created_at DATETIME NOT NULL
    )""",
    "CREATE INDEX loss_history_model_id ON loss_history (model_id)",
    """CREATE TABLE jobs (
        id INTEGER NOT NULL PRIMARY KEY,
        kind VARCHAR(255) NOT NULL,
        model_id INTEGER REFERENCES models (id) ON DELETE CASCADE,
        state VARCHAR(255) NOT NULL,
        progress REAL NOT NULL,
        message TEXT,
        error TEXT,
        params TEXT NOT NULL,
        pid INTEGER,
        created_at DATETIME NOT NULL,
        started_at DATETIME,
        finished_at DATETIME
    )""",
    "CREATE INDEX jobs_model_id ON jobs (model_id)",
    """CREATE TABLE settings (
        key VARCHAR(255) NOT NULL PRIMARY KEY,
        value TEXT NOT NULL
    )""",
]


def _v1_initial(database: SqliteDatabase) -> None:
    for statement in V1_SQL:
        database.execute_sql(statement)


def _v2_trash(database: SqliteDatabase) -> None:
    """Deleted models go to a trash folder and keep their rows until emptied, so a
    name only has to be unique among the models that are not in the trash."""
    migrator = SqliteMigrator(database)
    migrate(
        migrator.add_column("models", "deleted_at", DateTimeField(null=True)),
        migrator.add_column("models", "trash_dir", CharField(null=True)),
        migrator.drop_index("models", "models_name_key"),
    )
    database.execute_sql(
        "CREATE UNIQUE INDEX models_live_name_key ON models (name_key) WHERE deleted_at IS NULL"
    )


def _v3_job_detail(database: SqliteDatabase) -> None:
    """Jobs report structured progress (step, epoch, tokens/s, ETA) for the window to draw."""
    migrate(SqliteMigrator(database).add_column("jobs", "detail", TextField(default="{}")))


def _v4_queue_title(database: SqliteDatabase) -> None:
    """Queue items show a title (a page's or a document's), not only where they came from."""
    migrate(SqliteMigrator(database).add_column("queue_entries", "title", TextField(null=True)))


def _v5_crawls(database: SqliteDatabase) -> None:
    """Crawls and the URLs each one met (its frontier and every outcome), so a crawl can pause,
    stop and resume where it was."""
    database.execute_sql(
        """CREATE TABLE crawls (
            id INTEGER NOT NULL PRIMARY KEY,
            model_id INTEGER NOT NULL REFERENCES models (id) ON DELETE CASCADE,
            state VARCHAR(255) NOT NULL,
            settings TEXT NOT NULL,
            job_id INTEGER,
            trainings_queued INTEGER NOT NULL DEFAULT 0,
            message TEXT,
            created_at DATETIME NOT NULL,
            updated_at DATETIME NOT NULL,
            finished_at DATETIME
        )"""
    )
    database.execute_sql("CREATE INDEX crawls_model_id ON crawls (model_id)")
    database.execute_sql(
        """CREATE TABLE crawl_urls (
            id INTEGER NOT NULL PRIMARY KEY,
            crawl_id INTEGER NOT NULL REFERENCES crawls (id) ON DELETE CASCADE,
            url TEXT NOT NULL,
            depth INTEGER NOT NULL,
            status VARCHAR(255) NOT NULL,
            outcome VARCHAR(255),
            reason TEXT,
            http_status INTEGER,
            final_url TEXT,
            title TEXT,
            content_hash VARCHAR(255),
            queue_entry_id INTEGER,
            token_count INTEGER NOT NULL DEFAULT 0,
            discovered_at DATETIME NOT NULL,
            fetched_at DATETIME
        )"""
    )
    database.execute_sql("CREATE UNIQUE INDEX crawl_urls_crawl_url ON crawl_urls (crawl_id, url)")
    database.execute_sql("CREATE INDEX crawl_urls_crawl_status ON crawl_urls (crawl_id, status, depth, id)")


def _v6_note_links(database: SqliteDatabase) -> None:
    """Research notes can be attached to models (by model id, so a rename keeps them)."""
    database.execute_sql(
        """CREATE TABLE note_links (
            id INTEGER NOT NULL PRIMARY KEY,
            note_name VARCHAR(255) NOT NULL,
            model_id INTEGER NOT NULL REFERENCES models (id) ON DELETE CASCADE,
            created_at DATETIME NOT NULL
        )"""
    )
    database.execute_sql("CREATE UNIQUE INDEX note_links_note_model ON note_links (note_name, model_id)")
    database.execute_sql("CREATE INDEX note_links_model_id ON note_links (model_id)")


def _v7_conversations(database: SqliteDatabase) -> None:
    """The LLM tab keeps conversations per model, each with its messages."""
    database.execute_sql(
        """CREATE TABLE conversations (
            id INTEGER NOT NULL PRIMARY KEY,
            model_id INTEGER NOT NULL REFERENCES models (id) ON DELETE CASCADE,
            title TEXT NOT NULL,
            created_at DATETIME NOT NULL,
            updated_at DATETIME NOT NULL
        )"""
    )
    database.execute_sql("CREATE INDEX conversations_model_id ON conversations (model_id)")
    database.execute_sql(
        """CREATE TABLE messages (
            id INTEGER NOT NULL PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            role VARCHAR(255) NOT NULL,
            content TEXT NOT NULL,
            sampling TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            tokens_per_sec REAL,
            finish_reason VARCHAR(255),
            created_at DATETIME NOT NULL
        )"""
    )
    database.execute_sql("CREATE INDEX messages_conversation_id ON messages (conversation_id)")


def _v8_queue_tokens(database: SqliteDatabase) -> None:
    """Queue items say which tokenizer their token_count is for (a BPE model re-tokenizes), and
    the queue is searched by content hash at every add, so that gets an index."""
    migrate(SqliteMigrator(database).add_column("queue_entries", "token_fingerprint", CharField(null=True)))
    database.execute_sql("UPDATE queue_entries SET token_fingerprint = 'byte' WHERE token_fingerprint IS NULL")
    database.execute_sql(
        "CREATE INDEX IF NOT EXISTS queue_entries_model_hash ON queue_entries (model_id, content_hash)"
    )


def _v9_job_process_start(database: SqliteDatabase) -> None:
    """A job keeps when its process started beside its pid: a dead job's pid, reused by another
    process, no longer makes the job look alive. Rows from before have none and are judged by
    their pid alone."""
    migrate(SqliteMigrator(database).add_column("jobs", "pid_started", TextField(null=True)))



def _v10_queue_holdout(database: SqliteDatabase) -> None:
    """A queue item a person marked as validation is held out whole, whatever the split. The
    column's own DEFAULT lets rows written without it (an older process, plain SQL) in."""
    migrate(SqliteMigrator(database).add_column(
        "queue_entries", "holdout", BooleanField(default=False, constraints=[SQL("DEFAULT 0")])))


def _v11_best_weights(database: SqliteDatabase) -> None:
    """A model keeps the weights of its lowest validation loss: which step, and that loss."""
    m = SqliteMigrator(database)
    migrate(m.add_column("models", "best_step", IntegerField(null=True)),
            m.add_column("models", "best_val_loss", FloatField(null=True)))


MIGRATIONS: list[Callable[[SqliteDatabase], None]] = [
    _v1_initial,
    _v2_trash,
    _v3_job_detail,
    _v4_queue_title,
    _v5_crawls,
    _v6_note_links,
    _v7_conversations,
    _v8_queue_tokens,
    _v9_job_process_start,
    _v10_queue_holdout,
    _v11_best_weights,
]
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(database: SqliteDatabase) -> int:
    return database.execute_sql("PRAGMA user_version").fetchone()[0]


def upgrade(database: SqliteDatabase, db_path: Path | None = None, target: int = SCHEMA_VERSION) -> int:
    """Bring the database to `target`; returns the version it started at."""
    start = schema_version(database)
    if start > SCHEMA_VERSION:
        raise RuntimeError(
            f"this data root was written by a newer CLLM Studio (schema {start}, "
            f"this one knows up to {SCHEMA_VERSION}); upgrade the app"
        )
    if start < target and start > 0 and db_path is not None and db_path.exists():
        # Keep the pre-upgrade database so a failed or regretted upgrade can be undone by hand.
        shutil.copy2(db_path, db_path.with_name(f"{db_path.name}.v{start}.bak"))
    for version in range(start + 1, target + 1):
        with database.atomic():
            MIGRATIONS[version - 1](database)
            database.execute_sql(f"PRAGMA user_version = {version}")
    if target == SCHEMA_VERSION:
        add_setting_columns(database)
    return start


def add_setting_columns(database: SqliteDatabase) -> list[str]:
    """Give each declared training setting a column in `models`; returns the names added."""
    have = {c.name for c in database.get_columns("models")}
    missing = [s for s in SETTINGS if s.name not in have]
    if missing:
        with database.atomic():
            migrate(*(
                SqliteMigrator(database).add_column(
                    "models", s.name, {int: IntegerField, float: FloatField, str: CharField}[s.type](default=s.default)
                )
                for s in missing
            ))
            for s in missing:
                if s.legacy is not None:  # models that trained before the setting came keep what they had
                    database.execute_sql(f"UPDATE models SET {s.name} = ? WHERE steps_trained > 0", (s.legacy,))
    return [s.name for s in missing]
