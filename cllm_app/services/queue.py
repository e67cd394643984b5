"""A model's training-data queue: plain-text files in, verified and stored with their origin.

Each item's text is stored once in the model's `queue/` folder as UTF-8, named by
its content hash, so the trainer can map it straight into memory (with the byte
tokenizer a byte is a token). The data issue widens this to other formats,
encodings, the crawler and other tokenizers.
"""

import codecs
import hashlib
import os
import tempfile
from pathlib import Path

from peewee import fn

from cllm_app.errors import InvalidInput, NotFound
from cllm_app.fsutil import fsync_dir
from cllm_app.services.models import ModelLifecycle
from cllm_app.store import LanguageModel, QueueEntry, db
from cllm_app.store.schema import iso, utcnow

MAX_FILE_BYTES = 2 * 1024**3  # one file; larger text is better split, and it keeps a bad pick cheap
CHUNK = 1 << 20
_UTF8_BOM = codecs.BOM_UTF8


class FileRefused(InvalidInput):
    code = "file_refused"


def _entry_json(e: QueueEntry) -> dict:
    return {
        "id": e.id,
        "source_kind": e.source_kind,
        "origin": e.origin,
        "title": e.title,
        "content_hash": e.content_hash,
        "byte_count": e.byte_count,
        "token_count": e.token_count,
        "status": e.status,
        "error": e.error,
        "epochs_used": e.epochs_used,
        "added_at": iso(e.added_at),
    }


class Queue:
    def __init__(self, models: ModelLifecycle):
        self.models = models

    def folder(self, row: LanguageModel) -> Path:
        return self.models.folder(row) / "queue"

    def _copy_text(self, source, dest_dir: Path) -> tuple[Path, str, int]:
        """Copy `source` (a binary file object) into a temp file in dest_dir while checking that
        it is UTF-8 text and hashing it. Returns (temp path, sha256, bytes)."""
        digest = hashlib.sha256()
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        size, first, has_text = 0, True, False
        fd, tmp = tempfile.mkstemp(prefix=".ingest-", dir=dest_dir)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(CHUNK):
                    if first and chunk.startswith(_UTF8_BOM):
                        chunk = chunk[len(_UTF8_BOM) :]  # a BOM is not text the model should learn
                    first = False
                    size += len(chunk)
                    if size > MAX_FILE_BYTES:
                        raise FileRefused(f"it is larger than {MAX_FILE_BYTES // 1024**3} GB; split it into smaller files")
                    if b"\x00" in chunk:
                        raise FileRefused("it looks binary (it contains NUL bytes), not text")
                    try:
                        text = decoder.decode(chunk)
                    except UnicodeDecodeError as e:
                        raise FileRefused(
                            f"it is not UTF-8 text (byte {size - len(chunk) + e.start:,} cannot be read); "
                            "save it as UTF-8 and add it again"
                        ) from None
                    has_text = has_text or bool(text.strip())
                    digest.update(chunk)
                    out.write(chunk)
                try:
                    decoder.decode(b"", final=True)
                except UnicodeDecodeError:
                    raise FileRefused("it ends in the middle of a UTF-8 character") from None
                if size == 0:
                    raise FileRefused("it is empty")
                if not has_text:
                    raise FileRefused("it holds only white space")
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Path(tmp), digest.hexdigest(), size

    def add_text(self, model_name: str, text: str, *, origin: str, source_kind: str, title: str | None = None) -> dict:
        """Add one text already in memory (a crawled page). Returns {"added": entry} or {"duplicate": entry}."""
        import io

        return self.add_stream(model_name, io.BytesIO(text.encode("utf-8")), origin, source_kind, title=title)

    def add_stream(
        self, model_name: str, source, origin: str, source_kind: str = "file", title: str | None = None
    ) -> dict:
        """Add one text from a binary stream. Returns {"added": entry} or {"duplicate": entry}."""
        row = self.models.get(model_name)
        folder = self.folder(row)
        folder.mkdir(parents=True, exist_ok=True)
        tmp, content_hash, size = self._copy_text(source, folder)
        try:
            same = QueueEntry.get_or_none((QueueEntry.model == row) & (QueueEntry.content_hash == content_hash))
            if same is not None:
                return {"duplicate": _entry_json(same)}
            data_path = f"{content_hash[:24]}.txt"
            with db.atomic():
                entry = QueueEntry.create(
                    model=row,
                    source_kind=source_kind,
                    origin=origin,
                    title=title,
                    data_path=data_path,
                    content_hash=content_hash,
                    byte_count=size,
                    token_count=size,  # byte tokenizer: one token per byte
                    status="ready",
                )
                row.updated_at = utcnow()
                row.save()
                os.replace(tmp, folder / data_path)
                fsync_dir(folder)
            return {"added": _entry_json(entry)}
        finally:
            tmp.unlink(missing_ok=True)

    def add_many(self, model_name: str, sources) -> dict:
        """Add several texts, each added or refused on its own with the reason.
        `sources` yields (origin, open) pairs; open() gives a binary stream."""
        self.models.get(model_name)
        added, duplicates, refused = [], [], []
        for origin, open_stream in sources:
            try:
                with open_stream() as f:
                    result = self.add_stream(model_name, f, origin)
            except FileRefused as e:
                refused.append({"origin": origin, "reason": e.message})
                continue
            except OSError as e:
                refused.append({"origin": origin, "reason": f"it cannot be read: {e.strerror or e}"})
                continue
            (added if "added" in result else duplicates).append(result.get("added") or result["duplicate"])
        return {"added": added, "duplicates": duplicates, "refused": refused}

    def add_files(self, model_name: str, paths) -> dict:
        """Add files by path (the window's file dialog gives paths)."""
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            raise InvalidInput("paths must be a non-empty list of file paths", code="invalid_paths")

        def opener(path: Path):
            def open_file():
                if path.is_dir():
                    raise FileRefused("it is a folder; pick the files inside it")
                return open(path, "rb")

            return open_file

        paths = [Path(p).expanduser() for p in paths]
        return self.add_many(model_name, [(str(p.resolve()) if p.exists() else str(p), opener(p)) for p in paths])

    def list(self, model_name: str) -> dict:
        row = self.models.get(model_name)
        entries = [_entry_json(e) for e in row.queue.order_by(QueueEntry.id)]
        total = QueueEntry.select(fn.COALESCE(fn.SUM(QueueEntry.token_count), 0)).where(QueueEntry.model == row).scalar()
        return {"model_name": row.model_name, "items": entries, "tokens": int(total)}

    def remove(self, model_name: str, entry_id: int) -> dict:
        row = self.models.get(model_name)
        entry = QueueEntry.get_or_none((QueueEntry.id == entry_id) & (QueueEntry.model == row))
        if entry is None:
            raise NotFound(f"item {entry_id} is not in the queue of '{row.model_name}'", code="queue_item_not_found")
        path = self.folder(row) / entry.data_path if entry.data_path else None
        with db.atomic():
            entry.delete_instance()
            shared = QueueEntry.select().where(
                (QueueEntry.model == row) & (QueueEntry.data_path == entry.data_path)
            ).exists()
        if path is not None and not shared:
            path.unlink(missing_ok=True)
        return _entry_json(entry)

    def preview(self, model_name: str, entry_id: int, max_chars: int = 2000) -> dict:
        row = self.models.get(model_name)
        entry = QueueEntry.get_or_none((QueueEntry.id == entry_id) & (QueueEntry.model == row))
        if entry is None:
            raise NotFound(f"item {entry_id} is not in the queue of '{row.model_name}'", code="queue_item_not_found")
        with open(self.folder(row) / entry.data_path, "rb") as f:
            head = f.read(max_chars * 4)
        text = head.decode("utf-8", errors="ignore")[:max_chars]
        return {**_entry_json(entry), "text": text, "truncated": entry.byte_count > len(head) or len(text) == max_chars}
