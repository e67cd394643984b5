"""A model's training-data queue: files, folders, archives, pages and other models' queues in;
entries with their origin, text and tokens out.

Adding streams: each document is decoded, normalized, hashed, compressed and tokenized for
the model's tokenizer in one pass, in chunks (see cllm_app/data/), so memory stays bounded on
inputs of any size. One bad file never stops the others: each file ends in the report as
added, duplicate, refused or empty, with the reason. The same report is what an ingest job
shows as its progress.
"""

from __future__ import annotations

import json
import shutil
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from peewee import fn

from cllm_app.data import Empty, Refused, readers
from cllm_app.data import limits as data_limits
from cllm_app.data.notices import Notices, caught
from cllm_app.data.textstore import (
    TEMP_PREFIX,
    EntryWriter,
    build_cache,
    cache_dtype,
    cache_path,
    iter_text,
    load_tokens,
)
from cllm_app.engine import heldout
from cllm_app.engine.tokenizer import load_tokenizer
from cllm_app.errors import ConfirmationRequired, Conflict, InvalidInput, NotFound
from cllm_app.fsutil import space_needed
from cllm_app.services.models import ModelLifecycle
from cllm_app.store import LanguageModel, ModelEvent, QueueEntry, db
from cllm_app.store.schema import iso, utcnow

MAX_FILE_BYTES = data_limits.MAX_FILE_BYTES  # kept for callers of the first version
REPORT_ROWS = 5000  # per-file rows a report keeps; the counts stay exact beyond
PAGE_LIMIT = 500
STALE_SECONDS = 24 * 3600  # temporary files and upload folders older than this are leftovers
Progress = Callable[[dict], None]


class FileRefused(InvalidInput):
    code = "file_refused"


def _entry_json(e: QueueEntry) -> dict:
    source = LanguageModel.get_or_none(LanguageModel.id == e.imported_from_id) if e.imported_from_id else None
    return {
        "id": e.id,
        "source_kind": e.source_kind,
        "origin": e.origin,
        "title": e.title,
        "content_hash": e.content_hash,
        "byte_count": e.byte_count,
        "token_count": e.token_count,
        "token_fingerprint": e.token_fingerprint,
        "status": e.status,
        "error": e.error,
        "epochs_used": e.epochs_used,
        "holdout": bool(e.holdout),
        "added_at": iso(e.added_at),
        "imported_from": source.model_name if source is not None and source.deleted_at is None else None,
    }


def new_report(files_total: int = 0, bytes_total: int = 0) -> dict:
    """The progress and outcome of one ingest; the same fields in the job, the API and the CLI."""
    return {
        "files_total": files_total,
        "files_done": 0,
        "bytes_total": bytes_total,
        "bytes_done": 0,
        "tokens": 0,
        "added": 0,
        "duplicates": 0,
        "refused": 0,
        "empty": 0,
        "stopped": False,
        "report": [],
        "report_truncated": 0,
    }


_COUNTER = {"added": "added", "duplicate": "duplicates", "refused": "refused", "empty": "empty"}


def _record(report: dict, origin: str, outcome: str, reason: str | None = None, entry: dict | None = None,
            notes: list[str] | None = None) -> None:
    report[_COUNTER[outcome]] += 1
    if outcome == "added":
        report["tokens"] += entry["token_count"]
    row = {
        "origin": origin,
        "outcome": outcome,
        "reason": reason,
        "entry_id": entry["id"] if entry else None,
        "title": entry["title"] if entry else None,
        "byte_count": entry["byte_count"] if entry else None,
        "token_count": entry["token_count"] if entry else None,
    }
    if notes:
        row["notes"] = "; ".join(notes)
    if len(report["report"]) < REPORT_ROWS:
        report["report"].append(row)
    else:
        report["report_truncated"] += 1


def _throttled(progress: Progress | None, every: float = 0.25) -> Progress:
    last = [0.0]

    def report(state: dict, force: bool = False) -> None:
        now = time.monotonic()
        if progress is not None and (force or now - last[0] >= every):
            last[0] = now
            progress(state)

    return report


class Queue:
    def __init__(self, models: ModelLifecycle):
        self.models = models

    def folder(self, row: LanguageModel) -> Path:
        return self.models.folder(row) / "queue"

    def tokenizer(self, row: LanguageModel):
        return load_tokenizer(self.models.folder(row), row.tokenizer)

    @property
    def staging_dir(self) -> Path:
        """Uploads wait here for their ingest job (inside the data root, so a rename is cheap)."""
        return self.models.root.path / "staging"

    def _entry(self, row: LanguageModel, entry_id) -> QueueEntry:
        entry = QueueEntry.get_or_none((QueueEntry.id == entry_id) & (QueueEntry.model == row))
        if entry is None:
            raise NotFound(f"item {entry_id} is not in the queue of '{row.model_name}'", code="queue_item_not_found")
        return entry

    # ---- adding ------------------------------------------------------------------------------

    def _store(self, row: LanguageModel, tok, chunks: Iterable[str], origin: str, source_kind: str,
               title: str | None, imported_from: int | None = None) -> tuple[str, dict]:
        """One document into the queue. Returns ("added" | "duplicate", entry). Raises Refused/Empty."""
        folder = self.folder(row)
        with space_needed(f"adding {origin} to the queue of '{row.model_name}'", folder):
            writer = EntryWriter(folder, tok)
            committed: list[Path] = []
            try:
                for text in chunks:
                    writer.write(text)
                written = writer.finish()
                with db.atomic():
                    same = QueueEntry.get_or_none(
                        (QueueEntry.model == row) & (QueueEntry.content_hash == written.content_hash)
                    )
                    if same is not None:
                        return "duplicate", _entry_json(same)
                    data_path, cache = writer.commit(written)
                    committed = [folder / data_path, cache]
                    entry = QueueEntry.create(
                        model=row,
                        source_kind=source_kind,
                        origin=origin,
                        title=title,
                        imported_from=imported_from,
                        data_path=data_path,
                        content_hash=written.content_hash,
                        byte_count=written.byte_count,
                        token_count=written.token_count,
                        token_fingerprint=tok.fingerprint,
                        status="ready",
                    )
                return "added", _entry_json(entry)
            except BaseException:
                # The row never came to be (no duplicate has this hash, we looked), so its files go.
                for path in committed:
                    path.unlink(missing_ok=True)
                raise
            finally:
                writer.discard()

    def _touch(self, row: LanguageModel) -> None:
        LanguageModel.update(updated_at=utcnow()).where(LanguageModel.id == row.id).execute()

    def add_text(self, model_name: str, text: str, *, origin: str, source_kind: str, title: str | None = None) -> dict:
        """Add one text already in memory (a crawled page). Returns {"added": entry} or {"duplicate": entry}."""
        if not isinstance(text, str):
            raise InvalidInput("text must be a string", code="invalid_text")
        row = self.models.get(model_name)
        try:
            outcome, entry = self._store(row, self.tokenizer(row), [text], origin, source_kind, title)
        except Refused as e:
            raise FileRefused(e.reason) from None
        self._touch(row)
        return {outcome: entry}

    def add_stream(self, model_name: str, source, origin: str, source_kind: str = "file", title: str | None = None) -> dict:
        """Add one text from a binary stream of any encoding. Returns {"added": entry} or {"duplicate": entry}."""
        row = self.models.get(model_name)
        item = readers.Item(origin, origin, 0, None)
        try:
            doc = readers.read(item, source, readers.Options())
            outcome, entry = self._store(row, self.tokenizer(row), doc.chunks, origin, source_kind, title or doc.title)
        except Refused as e:
            raise FileRefused(e.reason) from None
        self._touch(row)
        return {outcome: entry}

    @staticmethod
    def options(text_field=None, csv_column=None) -> readers.Options:
        """Checked choices for structured files (JSON field, CSV column)."""
        for name, value in (("text_field", text_field), ("csv_column", csv_column)):
            if value is not None and (not isinstance(value, (str, int)) or isinstance(value, bool) or str(value) == ""):
                raise InvalidInput(f"{name} must be a field name (or a column number for csv_column)", code=f"invalid_{name}")
        return readers.Options(
            text_field=None if text_field is None else str(text_field),
            csv_column=None if csv_column is None else str(csv_column),
        )

    @staticmethod
    def check_paths(paths) -> list[str]:
        # A NUL cannot be in a path: the OS call would fail with a ValueError, not a refusal.
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p and "\0" not in p for p in paths):
            raise InvalidInput("paths must be a non-empty list of file or folder paths", code="invalid_paths")
        return paths

    def ingest(
        self,
        model_name: str,
        paths: list[str],
        origins: list[str] | None = None,
        options: readers.Options | None = None,
        source_kind: str = "file",
        progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> dict:
        """Add files, folders and archives; returns the report (see new_report). What the
        reading libraries say about a file goes to its report line's notes and to `log`."""
        paths = self.check_paths(paths)
        if origins is None:
            origins = [str(Path(p).expanduser().resolve()) if Path(p).expanduser().exists() else p for p in paths]
        row = self.models.get(model_name)
        tok = self.tokenizer(row)
        options = options or readers.Options()
        self.sweep(row)
        if len(origins) != len(paths):
            raise InvalidInput("give one origin per path", code="invalid_origins")
        items = readers.expand(zip(paths, origins, strict=True))
        report = new_report(len(items), sum(i.size for i in items))
        tell = _throttled(progress)
        tell(report, True)
        for item in items:
            if should_stop is not None and should_stop():
                report["stopped"] = True
                break
            before = report["bytes_done"]

            def counted(n: int) -> None:
                report["bytes_done"] += n
                tell(report)

            heard = Notices()
            try:
                with caught(heard):
                    if item.refused:
                        raise Refused(item.refused)
                    if before + item.size > data_limits.MAX_INGEST_BYTES:
                        raise Refused(
                            f"this ingest reached its limit of {data_limits.MAX_INGEST_BYTES / 1024**3:g} GB; "
                            "add the rest in another one"
                        )
                    with item.open() as raw:
                        doc = readers.read(item, raw, options, counted)
                        outcome, entry = self._store(row, tok, doc.chunks, item.origin, source_kind, doc.title)
                reason = None if outcome == "added" else f"the same text is already in the queue (item {entry['id']})"
                _record(report, item.origin, outcome, reason, entry, doc.notes + heard.lines())
            except Refused as e:
                _record(report, item.origin, e.outcome, e.reason, notes=heard.lines())
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error, RuntimeError) as e:
                reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
                _record(report, item.origin, "refused", f"it cannot be read: {reason}", notes=heard.lines())
            if log is not None:
                for line in heard.lines():
                    log(f"{item.origin}: {line}")
            report["files_done"] += 1
            report["bytes_done"] = before + item.size
            tell(report)
        if report["added"]:
            self._touch(row)
        tell(report, True)
        return report

    def add_files(self, model_name: str, paths, **options) -> dict:
        """Add files by path, here and now (the CLI and the tests; the window uses an ingest job)."""
        return self.ingest(model_name, self.check_paths(paths), options=self.options(**options))

    # ---- importing another model's queue -----------------------------------------------------

    def import_plan(self, model_name: str, source_name: str, entry_ids=None) -> tuple[LanguageModel, LanguageModel, list[int]]:
        """Check an import before it starts: the two models, and the source entries to copy."""
        row = self.models.get(model_name)
        if not isinstance(source_name, str) or not source_name:
            raise InvalidInput("name the model to import from", code="invalid_source")
        source = self.models.get(source_name)
        if source.id == row.id:
            raise InvalidInput(
                f"'{row.model_name}' cannot import its own queue; choose another model", code="self_import"
            )
        ready = QueueEntry.select(QueueEntry.id).where((QueueEntry.model == source) & (QueueEntry.status == "ready"))
        if entry_ids is None:
            ids = [e.id for e in ready.order_by(QueueEntry.id)]
        else:
            if not isinstance(entry_ids, list) or not entry_ids or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in entry_ids
            ):
                raise InvalidInput("entry_ids must be a non-empty list of item ids", code="invalid_entry_ids")
            known = {e.id for e in ready.where(QueueEntry.id.in_(entry_ids))}
            missing = [i for i in entry_ids if i not in known]
            if missing:
                raise NotFound(
                    f"the queue of '{source.model_name}' has no item {', '.join(map(str, missing))}",
                    code="queue_item_not_found",
                )
            ids = list(dict.fromkeys(entry_ids))
        if not ids:
            raise InvalidInput(f"the queue of '{source.model_name}' is empty: nothing to import", code="empty_queue")
        return row, source, ids

    def import_entries(
        self,
        model_name: str,
        source_name: str,
        entry_ids=None,
        progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> dict:
        """Copy entries of another model's queue into this one (never moving them), re-tokenized
        for this model's tokenizer where it differs; lineage goes on both models."""
        row, source, ids = self.import_plan(model_name, source_name, entry_ids)
        tok = self.tokenizer(row)
        entries = list(QueueEntry.select().where(QueueEntry.id.in_(ids)).order_by(QueueEntry.id))
        report = new_report(len(entries), sum(e.byte_count for e in entries))
        tell = _throttled(progress)
        tell(report, True)
        src_folder = self.folder(source)
        for e in entries:
            if should_stop is not None and should_stop():
                report["stopped"] = True
                break
            origin = e.origin
            try:
                same = QueueEntry.get_or_none((QueueEntry.model == row) & (QueueEntry.content_hash == e.content_hash))
                if same is not None:
                    outcome, entry = "duplicate", _entry_json(same)
                else:
                    text_path = src_folder / (e.data_path or "")
                    if not e.data_path or not text_path.is_file():
                        raise Refused(f"its text is missing from the folder of '{source.model_name}'")
                    outcome, entry = self._store(
                        row, tok, iter_text(text_path), e.origin, e.source_kind, e.title, imported_from=source.id
                    )
                reason = None if outcome == "added" else f"the same text is already in the queue (item {entry['id']})"
                _record(report, origin, outcome, reason, entry)
            except Refused as err:
                _record(report, origin, err.outcome, err.reason)
            except OSError as err:
                _record(report, origin, "refused", f"it cannot be read: {err.strerror or err}")
            report["files_done"] += 1
            report["bytes_done"] += e.byte_count
            tell(report)
        if report["added"]:
            with db.atomic():
                detail = {"source_id": source.id, "added": report["added"], "duplicates": report["duplicates"],
                          "tokens": report["tokens"]}
                if entry_ids is not None:
                    detail["entry_ids"] = ids
                ModelEvent.create(model=row, kind="data_imported", detail=json.dumps(detail))
                ModelEvent.create(model=source, kind="data_copied_to",
                                  detail=json.dumps({"target_id": row.id, "added": report["added"]}))
            self._touch(row)
        tell(report, True)
        return report

    # ---- reading -----------------------------------------------------------------------------

    def list(self, model_name: str, search: str | None = None, offset=0, limit=100, source_kind: str | None = None) -> dict:
        """One page of the queue, oldest first; `search` looks in origins and titles."""
        row = self.models.get(model_name)
        try:
            offset, limit = int(offset), int(limit)
        except (TypeError, ValueError):
            raise InvalidInput("offset and limit must be whole numbers", code="invalid_page") from None
        if offset < 0 or not 1 <= limit <= PAGE_LIMIT:
            raise InvalidInput(f"offset must be 0 or more and limit between 1 and {PAGE_LIMIT}", code="invalid_page")
        query = QueueEntry.select().where(QueueEntry.model == row)
        if search:
            # contains() escapes % and _ itself, so a search for "50%" means those characters.
            query = query.where(QueueEntry.origin.contains(str(search)) | QueueEntry.title.contains(str(search)))
        if source_kind:
            query = query.where(QueueEntry.source_kind == source_kind)
        total = query.count()
        split = self.split(row)
        page = []
        for e in query.order_by(QueueEntry.id).offset(offset).limit(limit):
            item = _entry_json(e)
            train = split["heads"].get(e.id)
            # Pending or failed items are in no split yet: they hold no tokens to train on.
            item["train_tokens"] = train
            item["validation_tokens"] = None if train is None else max(0, e.token_count - train)
            page.append(item)
        items, tokens = (
            QueueEntry.select(fn.COUNT(QueueEntry.id), fn.COALESCE(fn.SUM(QueueEntry.token_count), 0))
            .where(QueueEntry.model == row).tuples().first()
        )
        return {
            "model_name": row.model_name,
            "items": page,
            "total": total,
            "offset": offset,
            "limit": limit,
            "queue": {"items": items, "tokens": int(tokens)},
            "tokens": int(tokens),
            "split": {k: v for k, v in split.items() if k != "heads"},
        }

    def split(self, row: LanguageModel) -> dict:
        """The validation split of the ready items as the trainer will make it: the setting, what
        it resolves to now, in words, the tokens each side, and each item's training head
        ("heads": {entry id: tokens that train}; the rest of its tokens validate)."""
        entries = list(QueueEntry.select(QueueEntry.id, QueueEntry.content_hash, QueueEntry.token_count,
                                         QueueEntry.holdout)
                       .where((QueueEntry.model == row) & (QueueEntry.status == "ready")))
        items = [heldout.Item(e.id, e.content_hash, e.token_count, e.holdout) for e in entries]
        heads = heldout.plan(items, row.validation_split, row.validation_share)
        train = sum(heads.values())
        total = sum(i.tokens for i in items)
        return {
            "setting": row.validation_split,
            "mode": heldout.resolve(row.validation_split, len(items)),
            "share": row.validation_share,
            "description": heldout.describe(row.validation_split, row.validation_share, len(items)),
            "train_tokens": train,
            "validation_tokens": total - train,
            "heads": heads,
        }

    def mark(self, model_name: str, entry_id: int, holdout) -> dict:
        """Mark an item as validation (held out whole, never trained on) or take the mark off."""
        if not isinstance(holdout, bool):
            raise InvalidInput("holdout must be true or false", code="invalid_holdout")
        row = self.models.get(model_name)
        with db.atomic():
            entry = self._entry(row, entry_id)
            QueueEntry.update(holdout=holdout).where(QueueEntry.id == entry.id).execute()
            return _entry_json(QueueEntry.get_by_id(entry.id))

    def preview(self, model_name: str, entry_id: int, max_chars: int = 2000) -> dict:
        """One item with the start of its text."""
        row = self.models.get(model_name)
        entry = self._entry(row, entry_id)
        max_chars = max(1, min(int(max_chars), 1_000_000))
        parts, size = [], 0
        path = self.folder(row) / (entry.data_path or "")
        if entry.data_path and path.is_file():
            for text in iter_text(path, chunk=max(4096, max_chars * 4)):
                parts.append(text)
                size += len(text)
                if size > max_chars:
                    break
        text = "".join(parts)
        return {**_entry_json(entry), "text": text[:max_chars], "truncated": len(text) > max_chars}

    def stats(self, model_name: str) -> dict:
        """Items, tokens and bytes in all, per source kind, and per model imported from."""
        row = self.models.get(model_name)
        agg = (fn.COUNT(QueueEntry.id), fn.COALESCE(fn.SUM(QueueEntry.token_count), 0),
               fn.COALESCE(fn.SUM(QueueEntry.byte_count), 0))
        items, tokens, size = QueueEntry.select(*agg).where(QueueEntry.model == row).tuples().first()
        by_source = [
            {"source_kind": kind, "items": n, "tokens": int(t), "byte_count": int(b)}
            for kind, n, t, b in QueueEntry.select(QueueEntry.source_kind, *agg)
            .where(QueueEntry.model == row).group_by(QueueEntry.source_kind).order_by(QueueEntry.source_kind).tuples()
        ]
        imported = []
        for source_id, n, t, _b in (
            QueueEntry.select(QueueEntry.imported_from, *agg)
            .where((QueueEntry.model == row) & QueueEntry.imported_from.is_null(False))
            .group_by(QueueEntry.imported_from).tuples()
        ):
            source = LanguageModel.get_or_none(LanguageModel.id == source_id)
            imported.append({"model_name": source.model_name if source and source.deleted_at is None else None,
                             "items": n, "tokens": int(t)})
        return {"model_name": row.model_name, "items": items, "tokens": int(tokens), "byte_count": int(size),
                "tokenizer": row.tokenizer, "by_source": by_source, "imported_from": imported}

    # ---- removing ----------------------------------------------------------------------------

    def _drop_files(self, row: LanguageModel, entries: list[QueueEntry]) -> None:
        folder = self.folder(row)
        for e in entries:
            if not e.data_path:
                continue
            (folder / e.data_path).unlink(missing_ok=True)
            tokens = folder / "tokens"
            if tokens.is_dir():
                for cache in tokens.glob(f"*/{e.content_hash[:24]}.u*"):
                    cache.unlink(missing_ok=True)

    def remove(self, model_name: str, entry_id: int) -> dict:
        """Remove one item; its text and token caches go with it."""
        return self.remove_many(model_name, [entry_id])[0]

    def remove_many(self, model_name: str, entry_ids) -> list[dict]:
        """Remove several items, all or none (an unknown id refuses the whole request)."""
        row = self.models.get(model_name)
        if not isinstance(entry_ids, list) or not entry_ids or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in entry_ids
        ):
            raise InvalidInput("entry_ids must be a non-empty list of item ids", code="invalid_entry_ids")
        with db.atomic():
            entries = [self._entry(row, i) for i in dict.fromkeys(entry_ids)]
            gone = [_entry_json(e) for e in entries]
            QueueEntry.delete().where(QueueEntry.id.in_([e.id for e in entries])).execute()
        self._drop_files(row, entries)
        return gone

    def clear(self, model_name: str, confirm: bool = False) -> dict:
        """Empty the queue (confirmation needed; refused while a job uses the model)."""
        row = self.models.get(model_name)
        if confirm is not True:
            raise ConfirmationRequired(
                f"clearing the queue of '{row.model_name}' removes all its training data and needs confirmation"
            )
        job = self.models.active_job(row)
        if job is not None:
            raise Conflict(
                f"cannot clear the queue of '{row.model_name}' while its {job.kind} job #{job.id} is {job.state}; "
                "stop the job first",
                code="model_busy",
            )
        with db.atomic():
            entries = list(row.queue)
            QueueEntry.delete().where(QueueEntry.model == row).execute()
        self._drop_files(row, entries)
        shutil.rmtree(self.folder(row) / "tokens", ignore_errors=True)
        self._touch(row)
        return {"model_name": row.model_name, "removed": len(entries)}

    def sweep(self, row: LanguageModel) -> None:
        """Remove what a crashed ingest left: old temporary files and old upload folders."""
        cutoff = time.time() - STALE_SECONDS
        folder = self.folder(row)
        for pattern in (f"{TEMP_PREFIX}*", f"tokens/*/{TEMP_PREFIX}*", f"tokens/{TEMP_PREFIX}*"):
            for tmp in folder.glob(pattern):
                try:
                    if tmp.stat().st_mtime < cutoff:
                        tmp.unlink()
                except OSError:
                    pass
        if self.staging_dir.is_dir():
            for stage in self.staging_dir.iterdir():
                try:
                    if stage.stat().st_mtime < cutoff:
                        shutil.rmtree(stage, ignore_errors=True)
                except OSError:
                    pass

    # ---- training's view ---------------------------------------------------------------------

    def documents(self, row: LanguageModel) -> list[tuple[int, str, np.ndarray]]:
        """(entry id, content hash, tokens) of every ready item, for the model's tokenizer; a
        missing token cache is built from the stored text first."""
        tok = self.tokenizer(row)
        folder = self.folder(row)
        dtype = cache_dtype(tok)
        out = []
        for e in row.queue.where(QueueEntry.status == "ready").order_by(QueueEntry.id):
            text = folder / (e.data_path or "")
            if not e.data_path or not text.is_file():
                continue
            if tok.kind == "byte" and text.suffix == ".txt":
                tokens = load_tokens(text, np.uint8)  # an older entry: its raw UTF-8 is its byte tokens
            else:
                cache = cache_path(folder, tok, e.content_hash)
                if not cache.exists():
                    build_cache(text, tok, cache)
                tokens = load_tokens(cache, dtype)
            if e.token_fingerprint != tok.fingerprint or e.token_count != tokens.size:
                QueueEntry.update(token_count=tokens.size, token_fingerprint=tok.fingerprint).where(
                    QueueEntry.id == e.id
                ).execute()
            if tokens.size:
                out.append((e.id, e.content_hash, tokens))
        return out


__all__ = ["Queue", "FileRefused", "Empty", "Refused", "new_report"]
