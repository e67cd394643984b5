"""The peewee/SQLite store: names, configs, epochs, queue entries, loss history, jobs, settings.

It knows nothing of Flask or of files other than its own database.
"""

from cllm_app.store.db import open_store
from cllm_app.store.schema import (
    Conversation,
    Crawl,
    CrawlUrl,
    Job,
    LanguageModel,
    LossPoint,
    Message,
    ModelEvent,
    NoteLink,
    QueueEntry,
    Setting,
    db,
)

__all__ = [
    "open_store",
    "db",
    "LanguageModel",
    "ModelEvent",
    "NoteLink",
    "QueueEntry",
    "LossPoint",
    "Job",
    "Setting",
    "Crawl",
    "CrawlUrl",
    "Conversation",
    "Message",
]
