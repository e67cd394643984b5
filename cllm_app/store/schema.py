"""The tables, as plain peewee models.

Field names are the seed's and GPT-2's (`model_name`, `epochs_trained`,
`target_epochs`, `batch_size`, `sequence_length`, `learning_rate`, `n_layer`,
`n_head`, `n_embd`, `block_size`, `vocab_size`) so one word means one thing in
the store, the API, the CLI and the UI. The tables themselves are created by
migrations (store/migrations.py), never by `create_tables`, so an old data root
and a new one end up with the same schema.
"""

from datetime import datetime, timezone

from peewee import (
    BigIntegerField,
    BooleanField,
    CharField,
    DatabaseProxy,
    DateTimeField,
    FloatField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

from cllm_app.training_settings import SETTINGS

db = DatabaseProxy()


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def iso(value: datetime | None, timespec: str = "seconds") -> str | None:
    """A stored (naive UTC) time as ISO 8601 with a Z, the form the API and CLI print."""
    return value.isoformat(timespec=timespec) + "Z" if value else None


class BaseModel(Model):
    class Meta:
        database = db


class LanguageModel(BaseModel):
    """One named model. A deleted model keeps its row (with `deleted_at`) until the trash is emptied."""

    model_name = CharField()
    name_key = CharField()  # model_name.casefold(): names are unique without regard to case
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    # architecture
    vocab_size = IntegerField()
    n_layer = IntegerField()
    n_head = IntegerField()
    n_embd = IntegerField()
    block_size = IntegerField()
    tokenizer = CharField(default="byte")
    # the training settings, remembered per model: one column each of training_settings.SETTINGS (added below)
    # progress
    epochs_trained = IntegerField(default=0)
    steps_trained = IntegerField(default=0)
    tokens_trained = BigIntegerField(default=0)
    # the lowest validation loss so far, whose weights are best.safetensors beside the latest
    best_step = IntegerField(null=True)
    best_val_loss = FloatField(null=True)
    # lineage
    duplicated_from = ForeignKeyField("self", null=True, on_delete="SET NULL", backref="duplicates")
    # trash
    deleted_at = DateTimeField(null=True)
    trash_dir = CharField(null=True)

    class Meta:
        table_name = "models"

    @property
    def has_trained(self) -> bool:
        return self.steps_trained > 0 or self.epochs_trained > 0


for _setting in SETTINGS:
    LanguageModel._meta.add_field(
        _setting.name, {int: IntegerField, float: FloatField, str: CharField}[_setting.type](default=_setting.default)
    )


class ModelEvent(BaseModel):
    """The lineage log: created, duplicated, layers grown, data imported, renamed, restored."""

    model = ForeignKeyField(LanguageModel, backref="events", on_delete="CASCADE")
    kind = CharField()
    detail = TextField(default="{}")  # JSON
    created_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "model_events"


class QueueEntry(BaseModel):
    """One item of a model's training-data queue, with where it came from."""

    model = ForeignKeyField(LanguageModel, backref="queue", on_delete="CASCADE")
    source_kind = CharField()  # file | crawl | import
    origin = TextField()  # the path or URL it came from
    title = TextField(null=True)  # a page's or document's title, where it has one
    imported_from = ForeignKeyField(LanguageModel, null=True, on_delete="SET NULL")
    data_path = CharField(null=True)  # relative to the model's queue folder
    content_hash = CharField()
    byte_count = BigIntegerField(default=0)
    token_count = BigIntegerField(default=0)
    token_fingerprint = CharField(null=True)  # the tokenizer token_count (and the token cache) is for
    status = CharField(default="pending")  # pending | ready | error
    error = TextField(null=True)
    epochs_used = TextField(default="[]")  # JSON list of epoch numbers
    holdout = BooleanField(default=False)  # a person marked it as validation: never trained on
    added_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "queue_entries"


class LossPoint(BaseModel):
    """One row of a model's `loss_history`."""

    model = ForeignKeyField(LanguageModel, backref="loss_history", on_delete="CASCADE")
    step = IntegerField()
    epoch = FloatField()
    train_loss = FloatField(null=True)
    val_loss = FloatField(null=True)
    learning_rate = FloatField(null=True)
    tokens_per_sec = FloatField(null=True)
    created_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "loss_history"


# A job in one of these states holds its model: no rename, delete or reshape meanwhile.
ACTIVE_JOB_STATES = ("queued", "running", "stopping", "paused")
FINAL_JOB_STATES = ("done", "failed", "stopped", "interrupted", "cancelled")


class Job(BaseModel):
    """A background job (training, crawling, ingesting); its state lives here so a window re-attaches."""

    kind = CharField()
    model = ForeignKeyField(LanguageModel, backref="jobs", on_delete="CASCADE", null=True)
    state = CharField(default="queued")  # see ACTIVE_JOB_STATES and FINAL_JOB_STATES
    progress = FloatField(default=0.0)
    message = TextField(null=True)
    error = TextField(null=True)
    params = TextField(default="{}")
    detail = TextField(default="{}")  # JSON progress: step, epoch, tokens_per_sec, eta_seconds…
    pid = IntegerField(null=True)
    # When that process started, as its system tells it (procs.py process_start): with the
    # pid it names one process, so a pid the system has since given to another is not the job's.
    pid_started = TextField(null=True)
    created_at = DateTimeField(default=utcnow)
    started_at = DateTimeField(null=True)
    finished_at = DateTimeField(null=True)

    class Meta:
        table_name = "jobs"


class Setting(BaseModel):
    """App-wide settings (theme, selected model), JSON values by key."""

    key = CharField(primary_key=True)
    value = TextField()

    class Meta:
        table_name = "settings"


class Crawl(BaseModel):
    """One crawl of a model: its settings, its state and the job that runs (or last ran) it."""

    model = ForeignKeyField(LanguageModel, backref="crawls", on_delete="CASCADE")
    state = CharField(default="queued")  # queued | running | pausing | paused | stopping | stopped | done | failed
    settings = TextField(default="{}")  # JSON: start_urls, allowed_domains, max_depth, max_pages, …
    job_id = IntegerField(null=True)
    trainings_queued = IntegerField(default=0)
    message = TextField(null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    finished_at = DateTimeField(null=True)

    class Meta:
        table_name = "crawls"


class CrawlUrl(BaseModel):
    """One URL a crawl met: waiting in its frontier (`status` queued) or with its outcome."""

    crawl = ForeignKeyField(Crawl, backref="urls", on_delete="CASCADE")
    url = TextField()
    depth = IntegerField()
    status = CharField(default="queued")  # queued | fetched | skipped | failed
    outcome = CharField(null=True)  # fetched | duplicate | disallowed | off_site | too_big | wrong_type | …
    reason = TextField(null=True)
    http_status = IntegerField(null=True)
    final_url = TextField(null=True)
    title = TextField(null=True)
    content_hash = CharField(null=True)
    queue_entry_id = IntegerField(null=True)  # the queue item it became (no foreign key: the queue owns its table)
    token_count = BigIntegerField(default=0)
    discovered_at = DateTimeField(default=utcnow)
    fetched_at = DateTimeField(null=True)

    class Meta:
        table_name = "crawl_urls"


class NoteLink(BaseModel):
    """A research note (a file in the data root's research/ folder) attached to a model; keyed by
    the model's id, so renaming the model keeps it, and by the note's file name."""

    note_name = CharField()
    model = ForeignKeyField(LanguageModel, backref="note_links", on_delete="CASCADE")
    created_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "note_links"


class Conversation(BaseModel):
    """A chat with one model in the LLM tab. It hangs off the model's id, so a rename keeps it
    and emptying the trash removes it with the model."""

    model = ForeignKeyField(LanguageModel, backref="conversations", on_delete="CASCADE")
    title = TextField()
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "conversations"


class Message(BaseModel):
    """One turn of a conversation; an assistant turn keeps how it was made (sampling, counts, speed)."""

    conversation = ForeignKeyField(Conversation, backref="messages", on_delete="CASCADE")
    role = CharField()  # user | assistant
    content = TextField()
    sampling = TextField(null=True)  # JSON of the sampling settings used (assistant turns)
    prompt_tokens = IntegerField(null=True)
    completion_tokens = IntegerField(null=True)
    tokens_per_sec = FloatField(null=True)
    finish_reason = CharField(null=True)  # stop | length | cancelled
    created_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "messages"
