"""The model lifecycle: create, list, show, configure, rename, duplicate, delete, restore.

Every change that touches both rows and files runs inside a database
transaction and a `FileSteps` undo log, with failpoints between the steps, so
it either happens completely or not at all.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import threading
import uuid
from pathlib import Path

from peewee import IntegrityError, fn

from cllm_app import training_settings
from cllm_app.engine.config import GPTConfig
from cllm_app.engine.tokenizer import TOKENIZER_FILE, TOKENIZER_KINDS
from cllm_app.engine.weights import grow_layers, init_weights, load_weights, weights_bytes
from cllm_app.errors import (
    ConfirmationRequired,
    Conflict,
    DamagedFile,
    InvalidInput,
    NotFound,
    disk_full,
    free_bytes,
)
from cllm_app.fsutil import FileSteps, FolderSizes, atomic_write_bytes, dir_size, space_needed
from cllm_app.paths import DataRoot
from cllm_app.services.failpoints import failpoint
from cllm_app.services.names import check_name, copy_name, lowest_free_default, name_key
from cllm_app.services.orphans import is_orphan, recover_if_orphan
from cllm_app.services.validate import as_float, as_int, only_fields
from cllm_app.store import Job, LanguageModel, LossPoint, ModelEvent, QueueEntry, db
from cllm_app.store.db import StoreVersion
from cllm_app.store.schema import ACTIVE_JOB_STATES, iso, utcnow

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
BEST_FILE = "best.safetensors"  # the weights of the lowest validation loss so far


def served_weights(folder: Path, row) -> Path:
    """The weights chat, export and evaluate use: the best-validation ones where the model
    asks for them and has them, the latest otherwise."""
    if row.use_weights == "best" and row.best_step is not None and (folder / BEST_FILE).exists():
        return folder / BEST_FILE
    return folder / WEIGHTS_FILE
MODEL_SUBDIRS = ("checkpoints", "queue", "exports")
MAX_PARAMS = 500_000_000  # fp32 weights plus AdamW moments of a larger model outgrow a laptop's memory

ARCH_FIELDS = ("n_layer", "n_head", "n_embd", "block_size")
SORT_KEYS = ("name", "created", "updated", "size")
TOKENIZER_FIELDS = ("tokenizer", "tokenizer_data", "tokenizer_from")  # vocab_size goes with them

# The ranges each number of a shape may take: the checks below and the API's description
# (api/openapi.py) read them. The training settings' ranges are in training_settings.py.
ARCH_LIMITS = {"n_layer": (1, 64), "n_head": (1, 64), "n_embd": (8, 4096), "block_size": (8, 8192),
               "vocab_size": (257, 262_144)}


def _check_arch(cfg: dict) -> GPTConfig:
    n_layer, n_head, n_embd, block_size, vocab_size = (
        as_int(f, cfg[f], *ARCH_LIMITS[f]) for f in (*ARCH_FIELDS, "vocab_size")
    )
    if n_embd % n_head:
        raise InvalidInput(
            f"n_embd ({n_embd}) must be a multiple of n_head ({n_head}) so each head gets an equal share",
            code="invalid_n_embd",
        )
    config = GPTConfig(vocab_size=vocab_size, n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size)
    if config.n_params > MAX_PARAMS:
        raise InvalidInput(
            f"that shape has {config.n_params:,} parameters; the most this app trains on a CPU is "
            f"{MAX_PARAMS:,}",
            code="too_large",
        )
    return config


def _check_training(values: dict, block_size: int, epochs_trained: int) -> dict:
    checked = {}
    for field, value in values.items():
        s = training_settings.BY_NAME.get(field)
        if s is not None and s.type is str:
            if value not in s.choices:
                raise InvalidInput(f"{field} must be one of {', '.join(s.choices)}, not {value!r}", code=f"invalid_{field}")
            checked[field] = value
        elif s is not None and s.type is float:
            checked[field] = as_float(field, value, s.minimum, s.maximum, lo_open=s.exclusive_minimum)
        elif s is not None:
            checked[field] = as_int(field, value, s.minimum, s.maximum)
    if checked.get("sequence_length", 0) > block_size:
        raise InvalidInput(
            f"sequence_length ({checked['sequence_length']}) cannot exceed the model's "
            f"block_size ({block_size})",
            code="invalid_sequence_length",
        )
    if checked.get("target_epochs", epochs_trained) < epochs_trained:
        raise InvalidInput(
            f"target_epochs cannot be set below epochs_trained ({epochs_trained})",
            code="invalid_target_epochs",
        )
    return checked


def _named(detail: dict) -> dict:
    """Events keep model ids (a rename leaves no stale name); the names are added when shown."""
    for key in ("source_id", "target_id"):
        if isinstance(detail.get(key), int):
            other = LanguageModel.get_or_none(LanguageModel.id == detail[key])
            name = other.model_name if other is not None and other.deleted_at is None else None
            detail[key.replace("_id", "_name")] = name
    return detail


changing = threading.RLock()


def _one_change_at_a_time(method):
    """Changes are serialised within the process (the window's server is threaded); across
    processes (the CLI beside the window) the store's unique index is the last word, and a
    name taken in between is reported as taken, not as a crash."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with changing:
            try:
                return method(*args, **kwargs)
            except IntegrityError:
                raise Conflict("that name was just taken by another change; choose another", code="name_taken") from None

    return wrapper


class ModelLifecycle:
    """All the rules about models. Names in, JSON-ready dicts out."""

    def __init__(self, root: DataRoot):
        self.root = root
        self.sizes = FolderSizes()
        # The listing's store-derived part, kept until any connection commits (the window
        # polls the list while a model trains; most polls find the store as it was).
        self.version = StoreVersion(root.db_path)
        self._listed: tuple | None = None  # (version, rows, summaries, held jobs)
        self._encoded: tuple | None = None  # (what list_json's body was made of, the body)
        self._reading, self._encoding = threading.Lock(), threading.Lock()

    def close(self) -> None:
        self.version.close()

    # ---- reading -------------------------------------------------------------------------

    def _live(self):
        return LanguageModel.select().where(LanguageModel.deleted_at.is_null())

    def _taken_keys(self) -> set[str]:
        return {m.name_key for m in self._live()}

    def get(self, model_name: str) -> LanguageModel:
        if not isinstance(model_name, str):
            raise NotFound("no model by that name", code="model_not_found")
        row = self._live().where(LanguageModel.name_key == name_key(model_name)).first()
        if row is None:
            raise NotFound(f"there is no model named '{model_name}'", code="model_not_found")
        return row

    def folder(self, row: LanguageModel) -> Path:
        return self.root.model_dir(row.model_name)

    def config_of(self, row: LanguageModel) -> GPTConfig:
        return GPTConfig(**{f: getattr(row, f) for f in ("vocab_size", *ARCH_FIELDS)})

    def active_job(self, row: LanguageModel) -> Job | None:
        job = Job.select().where((Job.model == row) & (Job.state.in_(ACTIVE_JOB_STATES))).first()
        if recover_if_orphan(job):  # its process is gone (kill -9, a power cut): it holds nothing
            return self.active_job(row)
        return job

    def default_name(self) -> str:
        return lowest_free_default(self._taken_keys())

    def check_new_name(self, model_name, current: str | None = None) -> str:
        """Validate a name for a new or renamed model; `current` is the model being renamed."""
        model_name = check_name(model_name)
        key = name_key(model_name)
        if key in self._taken_keys() and (current is None or name_key(current) != key):
            raise Conflict(
                f"a model named '{model_name}' already exists (names ignore case)", code="name_taken"
            )
        return model_name

    def describe(self, row: LanguageModel, detail: bool = True) -> dict:
        out = self._sized(self._summaries([row.__data__], [row.id])[0])
        if detail:
            out["lineage"] = {
                "duplicated_from": out["duplicated_from"],
                "duplicates": [d.model_name for d in self._live().where(LanguageModel.duplicated_from == row)],
                "events": [
                    {"kind": e.kind, "at": iso(e.created_at), "detail": _named(json.loads(e.detail))}
                    for e in row.events.order_by(ModelEvent.id)
                ],
            }
        return out

    def _summaries(self, rows: list[dict], ids, live: dict[int, str] | None = None, held: list | None = None) -> list[dict]:
        """The listing's fields of each model (rows: the store's values by field name), from
        the same few queries however many models there are, and with a folder's size walked
        only when its files have changed: the window polls this while a model trains.
        `ids`: the rows' ids, or a query of them; `live`: every live model's name by id, when
        the caller has them all (a copy's source is named only while it is live); `held`: a list
        that gets the active jobs, whose processes a cached listing must look at again."""
        queues = {
            model_id: {"items": items, "tokens": int(tokens)}
            for model_id, items, tokens in QueueEntry.select(
                QueueEntry.model, fn.COUNT(QueueEntry.id), fn.COALESCE(fn.SUM(QueueEntry.token_count), 0)
            )
            .where(QueueEntry.model.in_(ids))
            .group_by(QueueEntry.model)
            .tuples()
        }
        busy = {}
        jobs = Job.select(Job.id, Job.model, Job.kind, Job.state, Job.pid, Job.pid_started, Job.params).where(
            Job.model.in_(ids) & Job.state.in_(ACTIVE_JOB_STATES)
        )
        for job in jobs.order_by(Job.id):
            if recover_if_orphan(job):  # its process is gone: it holds nothing (as in active_job)
                continue
            busy.setdefault(job.model_id, {"job_id": job.id, "kind": job.kind, "state": job.state})
            if held is not None:
                held.append(job)
        if live is None:
            live = {}
            if sources := {r["duplicated_from"] for r in rows if r.get("duplicated_from")}:
                names = self._live().select(LanguageModel.id, LanguageModel.model_name)
                live = dict(names.where(LanguageModel.id.in_(sources)).tuples())
        models_dir = str(self.root.models_dir)  # names hold no separators, so a join is the folder()
        out = []
        for r in rows:
            folder = os.path.join(models_dir, r["model_name"])
            out.append({
                "id": r["id"],
                "model_name": r["model_name"],
                "created_at": iso(r["created_at"]),
                "updated_at": iso(r["updated_at"]),
                "tokenizer": r["tokenizer"],
                "vocab_size": r["vocab_size"],
                **{f: r[f] for f in ARCH_FIELDS},
                "n_params": GPTConfig(**{f: r[f] for f in ("vocab_size", *ARCH_FIELDS)}).n_params,
                **{f: r[f] for f in training_settings.NAMES},
                "epochs_trained": r["epochs_trained"],
                "steps_trained": r["steps_trained"],
                "tokens_trained": r["tokens_trained"],
                "best": {"step": r["best_step"], "val_loss": r["best_val_loss"]} if r.get("best_step") is not None else None,
                "queue": queues.get(r["id"]) or {"items": 0, "tokens": 0},
                "queue_directory": os.path.join(folder, "queue"),
                "disk_bytes": None,  # the file system's, not the store's: see _sized
                "busy": busy.get(r["id"]),
                "duplicated_from": live.get(r["duplicated_from"]) if r.get("duplicated_from") else None,
            })
        return out

    def list(self, sort: str = "name", order: str = "asc") -> list[dict]:
        return self._ordered(sort, order)[1]

    def list_json(self, sort: str = "name", order: str = "asc") -> bytes:
        """The listing as the JSON `{"models": [...]}`, encoded again only when it changed: the
        window asks for it many times a second while a model trains, and encoding a hundred
        models costs more than finding out that nothing changed."""
        key, models = self._ordered(sort, order)
        with self._encoding:  # the window's pollers ask together: one encodes, the others reuse it
            encoded = self._encoded
            if encoded is not None and encoded[0][0] is key[0] and encoded[0][1:] == key[1:]:
                return encoded[1]
            body = json.dumps({"models": models}, separators=(",", ":")).encode()
            self._encoded = (key, body)
        return body

    def _ordered(self, sort: str, order: str) -> tuple[tuple, list[dict]]:
        """(what the listing was made of, the sized summaries in order). The first is the store's
        snapshot (compared by identity), the order and every folder's size now."""
        if sort not in SORT_KEYS:
            raise InvalidInput(f"sort must be one of: {', '.join(SORT_KEYS)}", code="invalid_sort")
        if order not in ("asc", "desc"):
            raise InvalidInput("order must be asc or desc", code="invalid_order")
        listed = self._listing()
        _version, rows, summaries, _held = listed
        models_dir = str(self.root.models_dir)
        folders = [os.path.join(models_dir, m["model_name"]) for m in summaries]
        sizes = [self.sizes.size(f) for f in folders]
        self.sizes.keep_only(folders)
        summaries = [{**m, "disk_bytes": size} for m, size in zip(summaries, sizes, strict=True)]
        pairs = list(zip(rows, summaries, strict=True))
        key = {
            "name": lambda p: p[1]["model_name"].casefold(),
            "created": lambda p: (p[0]["created_at"], p[0]["id"]),
            "updated": lambda p: (p[0]["updated_at"], p[0]["id"]),
            "size": lambda p: (p[1]["disk_bytes"], p[1]["model_name"].casefold()),
        }[sort]
        ordered = [m for _, m in sorted(pairs, key=key, reverse=order == "desc")]
        return (listed, sort, order, tuple(sizes)), ordered

    def _sized(self, summary: dict) -> dict:
        """A summary with its folder's size, looked at now (cheaply): a cached summary holds
        only what the store says."""
        return {**summary, "disk_bytes": self.sizes.size(os.path.join(self.root.models_dir, summary["model_name"]))}

    def _listing(self) -> tuple:
        """(store version, every live model's row, their summaries, the active jobs shown), read
        again only when the store has changed since the last listing, or a job it shows as
        running has lost its process (which no commit tells). A new snapshot is a new tuple."""
        # One reads at a time: requests that arrive together after a commit wait for one reading
        # instead of each making their own (and each costing the others the GIL).
        with self._reading:
            version = self.version()  # before the reads: a commit during them makes the next call read again
            listed = self._listed
            if (version is not None and listed is not None and listed[0] == version
                    and not any(is_orphan(job) for job in listed[3])):
                return listed
            rows = list(self._live().dicts())
            live = {r["id"]: r["model_name"] for r in rows}
            held: list[Job] = []
            summaries = self._summaries(rows, self._live().select(LanguageModel.id), live, held)
            listed = self._listed = (version, rows, summaries, held)
            return listed

    def show(self, model_name: str) -> dict:
        return self.describe(self.get(model_name))

    # ---- creating ------------------------------------------------------------------------

    def _write_model_files(self, folder: Path, config: GPTConfig, weights: dict, bpe=None) -> None:
        folder.mkdir(parents=True)
        for sub in MODEL_SUBDIRS:
            (folder / sub).mkdir()
        config.save(folder / CONFIG_FILE)
        (folder / WEIGHTS_FILE).write_bytes(weights_bytes(weights))
        if bpe is not None:
            atomic_write_bytes(folder / TOKENIZER_FILE, bpe.json_text.encode("utf-8"))

    def _staging(self) -> Path:
        # A dot-name can never be a model name, so a crash mid-create leaves only an ignorable folder.
        return self.root.models_dir / f".staging-{uuid.uuid4().hex}"

    def create(self, model_name: str | None = None, **fields) -> dict:
        """A new model. tokenizer="bpe" trains its tokenizer first (vocab_size tokens, on the
        files in tokenizer_data or the queue of the model tokenizer_from); that can take a
        while, so it runs before the change lock is taken and the name is checked again after."""
        fields = only_fields(fields, {*ARCH_FIELDS, "vocab_size", *training_settings.NAMES, *TOKENIZER_FIELDS}, "a new model")
        kind = fields.pop("tokenizer", None) or "byte"
        data, source = fields.pop("tokenizer_data", None), fields.pop("tokenizer_from", None)
        bpe, detail = None, None
        if kind == "bpe":
            from cllm_app.services.tokenizers import release_uploads, train_tokenizer

            if model_name is not None:
                self.check_new_name(model_name)  # refuse a bad name before a long training
            bpe, detail = train_tokenizer(self, fields.pop("vocab_size", None), data, source)
            fields["vocab_size"] = bpe.vocab_size
        elif kind != "byte":
            raise InvalidInput(f"tokenizer must be one of: {', '.join(TOKENIZER_KINDS)}", code="invalid_tokenizer")
        elif data is not None or source is not None:
            raise InvalidInput(
                "tokenizer_data and tokenizer_from train a BPE tokenizer; the byte tokenizer needs no training "
                '(set tokenizer to "bpe")',
                code="invalid_tokenizer",
            )
        model = self._create_new(model_name, fields, bpe, detail)
        if bpe is not None and data is not None:
            release_uploads(self.root, data)
        return model

    @_one_change_at_a_time
    def _create_new(self, model_name, fields: dict, bpe, tokenizer_detail: dict | None) -> dict:
        config = _check_arch({**GPTConfig().to_dict(), **{k: v for k, v in fields.items() if k in (*ARCH_FIELDS, "vocab_size")}})
        training = {k: v for k, v in fields.items() if k in training_settings.NAMES}
        seed = training.get("seed", training_settings.DEFAULTS["seed"])
        detail = config.to_dict() if tokenizer_detail is None else {**config.to_dict(), "tokenizer": tokenizer_detail}
        return self._create(model_name, config, training, lambda: init_weights(config, seed), "created", detail, bpe)

    @_one_change_at_a_time
    def import_hf(self, src: Path, model_name: str | None = None) -> dict:
        """A new model from a Hugging Face GPT-2 folder (see engine/hf.py)."""
        from cllm_app.engine.hf import ImportRefused, import_hf

        try:
            config, weights, bpe = import_hf(Path(src))
        except ImportRefused as e:
            raise InvalidInput(str(e), code="import_refused") from None
        _check_arch(config.to_dict())
        return self._create(model_name, config, {}, lambda: weights, "imported", {"from": str(Path(src).resolve())}, bpe)

    @_one_change_at_a_time
    def import_gguf(self, src: Path, model_name: str | None = None) -> dict:
        """A new model from a llama.cpp `gpt2` GGUF file, f32 or f16 (see engine/gguf_import.py)."""
        from cllm_app.engine.gguf_import import ImportRefused, read_gguf

        if model_name is not None:
            self.check_new_name(model_name)  # before reading what may be a large file
        try:
            config, weights, bpe = read_gguf(Path(src))
        except ImportRefused as e:
            raise InvalidInput(str(e), code="import_refused") from None
        _check_arch(config.to_dict())
        return self._create(model_name, config, {}, lambda: weights, "imported", {"from": str(Path(src).resolve())}, bpe)

    def _create(self, model_name, config: GPTConfig, training: dict, make_weights, event: str, detail: dict, bpe=None) -> dict:
        model_name = self.check_new_name(model_name) if model_name is not None else self.default_name()
        settings = training_settings.defaults_for(config.block_size)
        settings.update(_check_training(training, config.block_size, 0))
        target = self.root.model_dir(model_name)
        if target.exists():
            raise Conflict(
                f"a folder named '{model_name}' is already in {self.root.models_dir} but belongs to no "
                "model; move it away or choose another name",
                code="folder_exists",
            )
        staging = self._staging()
        need = 4 * config.n_params  # float32 weights; config and tokenizer are small beside them
        # The weights are made and written before the transaction: it holds the store's write
        # lock from its first line (BEGIN IMMEDIATE), and a large model takes longer to write
        # than the job runner waits for that lock.
        with space_needed(f"creating '{model_name}'", self.root.models_dir, need), FileSteps() as files:
            files.on_rollback(lambda: shutil.rmtree(staging, ignore_errors=True))
            self._write_model_files(staging, config, make_weights(), bpe)
            failpoint("create.files")
            with db.atomic():
                row = LanguageModel.create(
                    model_name=model_name,
                    name_key=name_key(model_name),
                    tokenizer="byte" if bpe is None else "bpe",
                    **config.to_dict(),
                    **settings,
                )
                ModelEvent.create(model=row, kind=event, detail=json.dumps(detail))
                files.move(staging, target)
                failpoint("create.commit")
        return self.describe(row)

    # ---- changing ------------------------------------------------------------------------

    def refuse_if_busy(self, row: LanguageModel, action: str) -> None:
        job = self.active_job(row)
        if job is not None:
            raise Conflict(
                f"cannot {action} '{row.model_name}' while its {job.kind} job #{job.id} is {job.state}; "
                "stop the job first",
                code="model_busy",
            )

    def configure(self, model_name: str, **fields) -> dict:
        """Change training settings and/or the shape. Layers can only be added; once a model
        has trained, its other shape fields are fixed because its weights have that shape."""
        return self._configure(model_name, fields, fresh=False)

    def reshape_untrained(self, model_name: str, **arch) -> dict:
        """Give a model that has never trained another shape, fewer layers too: its weights are
        a random start, so a new one loses nothing learned (the recipe chooser's shape)."""
        return self._configure(model_name, only_fields(arch, set(ARCH_FIELDS), "a shape"), fresh=True)

    @_one_change_at_a_time
    def _configure(self, model_name: str, fields: dict, fresh: bool) -> dict:
        fields = only_fields(fields, {*ARCH_FIELDS, *training_settings.NAMES}, "model settings")
        row = self.get(model_name)
        if fresh and row.has_trained:
            raise InvalidInput(f"'{row.model_name}' has trained: its shape is fixed, and layers can only be added",
                               code="shape_locked")
        arch = {k: v for k, v in fields.items() if k in ARCH_FIELDS and v != getattr(row, k)}
        old = self.config_of(row)
        new = _check_arch({**old.to_dict(), **arch}) if arch else old
        block_size = new.block_size
        training = _check_training(
            {k: v for k, v in fields.items() if k in training_settings.NAMES}, block_size, row.epochs_trained
        )
        if arch:
            self.refuse_if_busy(row, "change the shape of")
            if new.n_layer < old.n_layer and not fresh:
                raise InvalidInput(
                    f"layers can be added, never removed: '{row.model_name}' has {old.n_layer} and "
                    f"{new.n_layer} was asked for",
                    code="layer_reduction",
                )
            fixed = [k for k in arch if k != "n_layer"]
            if fixed and row.has_trained:
                raise InvalidInput(
                    f"{', '.join(fixed)} cannot change once a model has trained: its weights have that "
                    "shape. Duplicate the model or create a new one to try another shape; layers can "
                    "still be added.",
                    code="shape_locked",
                )
            if row.sequence_length > block_size and "sequence_length" not in training:
                training["sequence_length"] = block_size
        folder = self.folder(row)
        weights = None
        if arch:  # made before the transaction, which holds the store's write lock (see _create)
            if arch.keys() == {"n_layer"} and not fresh:
                # Grow in place: new blocks are identities, so the model computes what it did.
                weights = grow_layers(load_weights(folder / WEIGHTS_FILE), old, new.n_layer, row.seed)
            else:
                weights = init_weights(new, row.seed)  # a new shape (allowed only before training)
            weights = weights_bytes(weights)
        with FileSteps() as files, db.atomic():
            for k, v in {**arch, **training}.items():
                setattr(row, k, v)
            row.updated_at = utcnow()
            if arch:  # the best weights so far have the old shape: the next evaluations find new ones
                row.best_step = row.best_val_loss = None
            row.save()
            if arch:
                failpoint("configure.weights")
                files.replace_file(folder / WEIGHTS_FILE, weights)
                files.replace_file(folder / CONFIG_FILE, (json.dumps(new.to_dict(), indent=2, sort_keys=True) + "\n").encode())
                if new.n_layer > old.n_layer:
                    ModelEvent.create(
                        model=row,
                        kind="layers_grown",
                        detail=json.dumps({"from": old.n_layer, "to": new.n_layer, "trained": row.has_trained}),
                    )
                if fixed := [k for k in arch if k != "n_layer"]:
                    ModelEvent.create(model=row, kind="reshaped", detail=json.dumps({k: arch[k] for k in fixed}))
            failpoint("configure.commit")
        if arch:
            (folder / BEST_FILE).unlink(missing_ok=True)
        return self.describe(row)

    def set_tokenizer(self, model_name: str, tokenizer="byte", vocab_size=None, tokenizer_data=None,
                      tokenizer_from=None) -> dict:
        """Give a model that has not trained another tokenizer (and fresh weights for its
        vocabulary). Once a model has trained its tokenizer is fixed: its weights mean those tokens."""
        row = self.get(model_name)
        self._refuse_tokenizer_change(row)
        bpe = None
        if tokenizer == "bpe":
            from cllm_app.services.tokenizers import train_tokenizer

            bpe, _ = train_tokenizer(self, vocab_size, tokenizer_data, tokenizer_from)
        elif tokenizer != "byte" or vocab_size not in (None, 257) or tokenizer_data is not None or tokenizer_from is not None:
            raise InvalidInput(
                f"tokenizer must be one of: {', '.join(TOKENIZER_KINDS)}; only bpe takes vocab_size and data",
                code="invalid_tokenizer",
            )
        return self._replace_tokenizer(row.model_name, bpe)

    def _refuse_tokenizer_change(self, row: LanguageModel) -> None:
        if row.has_trained:
            raise InvalidInput(
                f"the tokenizer of '{row.model_name}' is fixed: it has trained, and its weights mean those "
                "tokens. Create a new model to use another tokenizer.",
                code="tokenizer_locked",
            )
        self.refuse_if_busy(row, "change the tokenizer of")

    @_one_change_at_a_time
    def _replace_tokenizer(self, model_name: str, bpe) -> dict:
        row = self.get(model_name)
        self._refuse_tokenizer_change(row)  # again: it may have trained while the tokenizer did
        new = GPTConfig(**{**self.config_of(row).to_dict(), "vocab_size": bpe.vocab_size if bpe else 257})
        new = _check_arch(new.to_dict())
        folder = self.folder(row)
        weights = weights_bytes(init_weights(new, row.seed))  # before the transaction (see _create)
        with FileSteps() as files, db.atomic():
            row.tokenizer, row.vocab_size, row.updated_at = ("bpe" if bpe else "byte"), new.vocab_size, utcnow()
            row.save()
            detail = {"tokenizer": row.tokenizer, "vocab_size": new.vocab_size}
            if bpe is not None:
                detail["fingerprint"] = bpe.fingerprint
                files.replace_file(folder / TOKENIZER_FILE, bpe.json_text.encode("utf-8"))
            elif (folder / TOKENIZER_FILE).exists():
                old = (folder / TOKENIZER_FILE).read_bytes()
                (folder / TOKENIZER_FILE).unlink()
                files.on_rollback(lambda: atomic_write_bytes(folder / TOKENIZER_FILE, old))
            failpoint("tokenizer.file")
            files.replace_file(folder / WEIGHTS_FILE, weights)
            files.replace_file(folder / CONFIG_FILE, (json.dumps(new.to_dict(), indent=2, sort_keys=True) + "\n").encode())
            ModelEvent.create(model=row, kind="tokenizer_changed", detail=json.dumps(detail))
            failpoint("tokenizer.commit")
        return self.describe(row)

    @_one_change_at_a_time
    def rename(self, model_name: str, new_name) -> dict:
        row = self.get(model_name)
        new_name = self.check_new_name(new_name, current=row.model_name)
        if new_name == row.model_name:
            return self.describe(row)
        old_dir, new_dir = self.folder(row), self.root.model_dir(new_name)
        case_only = name_key(new_name) == row.name_key
        if new_dir.exists() and not case_only:
            raise Conflict(
                f"a folder named '{new_name}' is already in {self.root.models_dir} but belongs to no "
                "model; move it away or choose another name",
                code="folder_exists",
            )
        what = f"renaming '{row.model_name}'"
        with space_needed(what, self.root.path), FileSteps() as files, db.atomic():
            # Inside the write transaction: a job another process (the window, the CLI) queues
            # for this model lands either before (refused here) or after the move, never between.
            self.refuse_if_busy(row, "rename")
            row.model_name, row.name_key, row.updated_at = new_name, name_key(new_name), utcnow()
            row.save()
            failpoint("rename.row")
            if case_only:
                # On a case-insensitive disk 'A' and 'a' are one folder: hop through a temporary name.
                hop = self._staging()
                files.move(old_dir, hop)
                failpoint("rename.hop")
                files.move(hop, new_dir)
            else:
                files.move(old_dir, new_dir)
            failpoint("rename.folder")
            failpoint("rename.commit")
        return self.describe(row)

    @_one_change_at_a_time
    def duplicate(self, model_name: str, new_name=None) -> dict:
        source = self.get(model_name)
        taken = self._taken_keys()
        new_name = self.check_new_name(new_name) if new_name is not None else copy_name(source.model_name, taken)
        target = self.root.model_dir(new_name)
        if target.exists():
            raise Conflict(f"a folder named '{new_name}' is already in {self.root.models_dir}", code="folder_exists")
        staging = self._staging()
        need = dir_size(self.folder(source))
        what = f"copying '{source.model_name}' as '{new_name}'"
        if need > free_bytes(self.root.models_dir):
            raise disk_full(what, self.root.models_dir, need)  # refused before a byte is copied
        with space_needed(what, self.root.models_dir, need), FileSteps() as files:
            # The files are copied before the transaction, which holds the store's write lock (see _create).
            files.copytree(self.folder(source), staging)
            with db.atomic():
                copy = self._duplicate_rows(source, new_name)
                failpoint("duplicate.files")
                files.move(staging, target)
                failpoint("duplicate.commit")
        return self.describe(copy)

    @_one_change_at_a_time
    def repair_weights(self, model_name: str) -> dict:
        """Put back a damaged model.safetensors: the weights of the newest good checkpoint (of the
        model's shape), or fresh ones for a model that never trained. The damaged file is kept
        beside it as model.safetensors.damaged-<time>; a sound file is left alone."""
        from cllm_app.engine.checkpoint import load_latest

        row = self.get(model_name)
        self.refuse_if_busy(row, "repair")
        folder = self.folder(row)
        path = folder / WEIGHTS_FILE
        try:
            load_weights(path)
            return {"model_name": row.model_name, "repaired": False, "message": f"{path} is sound; nothing to do"}
        except DamagedFile:
            pass
        except FileNotFoundError:
            pass  # a missing file is repaired the same way
        config = self.config_of(row)
        ck = load_latest(folder / "checkpoints")
        params = {k[len("param."):]: v for k, v in ck.tensors.items() if k.startswith("param.")} if ck else None
        if params is not None and ck.meta.get("config") == config.to_dict():
            weights, source = params, f"its checkpoint of step {ck.step}"
        elif not row.has_trained and params is None:
            weights, source = init_weights(config, row.seed), "fresh weights (it had not trained)"
        else:
            raise DamagedFile(
                f"the weights file {path} of '{row.model_name}' is damaged and no good checkpoint of its "
                "shape is left to restore it from; put back model.safetensors from a backup",
                code="weights_damaged",
            )
        kept = None
        if path.exists():
            # A second name for the damaged bytes first (no space needed), then the sound file over it.
            kept = path.with_name(f"{WEIGHTS_FILE}.damaged-{utcnow():%Y%m%dT%H%M%S}")
            os.link(path, kept)
        try:
            atomic_write_bytes(path, weights_bytes(weights))
        except BaseException:
            if kept is not None:
                kept.unlink(missing_ok=True)
            raise
        ModelEvent.create(model=row, kind="weights_repaired",
                          detail=json.dumps({"from": source, "damaged_file": kept.name if kept else None}))
        where = f"; the damaged file is kept as {kept}" if kept else ""
        return {"model_name": row.model_name, "repaired": True,
                "message": f"put back the weights of '{row.model_name}' from {source}{where}"}

    def _duplicate_rows(self, source: LanguageModel, new_name: str) -> LanguageModel:
        """The copy's row, event, queue and loss history (inside the caller's transaction)."""
        data = {f.name: getattr(source, f.name) for f in LanguageModel._meta.sorted_fields if f.name != "id"}
        data.update(
            model_name=new_name,
            name_key=name_key(new_name),
            created_at=utcnow(),
            updated_at=utcnow(),
            duplicated_from=source.id,
        )
        copy = LanguageModel.create(**data)
        ModelEvent.create(model=copy, kind="duplicated", detail=json.dumps({"source_id": source.id}))
        for entry in source.queue.order_by(QueueEntry.id):
            values = {f.name: getattr(entry, f.name) for f in QueueEntry._meta.sorted_fields if f.name != "id"}
            QueueEntry.create(**{**values, "model": copy})
        failpoint("duplicate.rows")
        history = [
            {**{f.name: getattr(p, f.name) for f in LossPoint._meta.sorted_fields if f.name != "id"}, "model": copy}
            for p in source.loss_history.order_by(LossPoint.id)
        ]
        for start in range(0, len(history), 500):
            LossPoint.insert_many(history[start : start + 500]).execute()
        return copy

    # ---- trash -----------------------------------------------------------------------------

    @_one_change_at_a_time
    def delete(self, model_name: str, confirm: bool = False) -> dict:
        row = self.get(model_name)
        if confirm is not True:
            raise ConfirmationRequired(
                f"deleting '{row.model_name}' needs confirmation; it goes to the trash and can be restored "
                "until the trash is emptied"
            )
        stamp = utcnow()
        trash = self.root.trash_dir / f"{row.id}-{stamp:%Y%m%dT%H%M%S%f}"
        with FileSteps() as files, db.atomic():
            self.refuse_if_busy(row, "delete")  # in the transaction, as in rename
            row.deleted_at, row.trash_dir = stamp, trash.name
            row.save()
            failpoint("delete.row")
            files.move(self.folder(row), trash)
            failpoint("delete.commit")
        return self.trash_entry(row)

    def trash_entry(self, row: LanguageModel) -> dict:
        return {
            "id": row.id,
            "model_name": row.model_name,
            "deleted_at": iso(row.deleted_at),
            "disk_bytes": dir_size(self.root.trash_dir / row.trash_dir) if row.trash_dir else 0,
            "n_params": self.config_of(row).n_params,
        }

    def trash(self) -> list[dict]:
        rows = LanguageModel.select().where(LanguageModel.deleted_at.is_null(False))
        return [self.trash_entry(r) for r in rows.order_by(LanguageModel.deleted_at.desc())]

    def _trashed(self, ref) -> LanguageModel:
        """A trashed model by id, or by name (the most recently deleted one of that name)."""
        query = LanguageModel.select().where(LanguageModel.deleted_at.is_null(False))
        if isinstance(ref, int) and not isinstance(ref, bool):
            row = query.where(LanguageModel.id == ref).first()
        elif isinstance(ref, str):
            row = query.where(LanguageModel.name_key == name_key(ref)).order_by(LanguageModel.deleted_at.desc()).first()
        else:
            row = None
        if row is None:
            raise NotFound(f"nothing named '{ref}' is in the trash", code="not_in_trash")
        return row

    @_one_change_at_a_time
    def restore(self, ref, new_name=None) -> dict:
        row = self._trashed(ref)
        name = row.model_name if new_name is None else new_name
        try:
            name = self.check_new_name(name)
        except Conflict:
            raise Conflict(
                f"a model named '{name}' exists now; restore this one under another name",
                code="name_taken",
            ) from None
        target = self.root.model_dir(name)
        if target.exists():
            raise Conflict(f"a folder named '{name}' is already in {self.root.models_dir}", code="folder_exists")
        with FileSteps() as files, db.atomic():
            source = self.root.trash_dir / row.trash_dir
            row.model_name, row.name_key = name, name_key(name)
            row.deleted_at, row.trash_dir, row.updated_at = None, None, utcnow()
            row.save()
            failpoint("restore.row")
            files.move(source, target)
            failpoint("restore.commit")
        return self.describe(row)

    @_one_change_at_a_time
    def empty_trash(self, confirm: bool = False) -> int:
        if confirm is not True:
            raise ConfirmationRequired("emptying the trash deletes its models for good and needs confirmation")
        rows = list(LanguageModel.select().where(LanguageModel.deleted_at.is_null(False)))
        folders = [self.root.trash_dir / r.trash_dir for r in rows if r.trash_dir]
        with db.atomic():
            for r in rows:
                r.delete_instance()
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        return len(rows)
