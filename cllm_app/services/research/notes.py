"""Notes: markdown and plain-text files in the data root's research/ folder, searchable,
rendered safely, and attachable to models.

A note is its file: the name is the file name (.md or .txt), the content is the file, and a
write is atomic. Names are checked before any path is built, so no name reaches outside the
folder. Attachments live in the store (note_links, by model id), so renaming a model keeps its
notes and renaming a note carries its links along. Markdown is rendered with raw HTML off:
tags written in a note show as text, never run.
"""

import re
import unicodedata
from pathlib import Path

from markdown_it import MarkdownIt

from cllm_app.errors import ConfirmationRequired, Conflict, InvalidInput, NotFound
from cllm_app.fsutil import atomic_write_bytes, fsync_dir
from cllm_app.store import LanguageModel, NoteLink, db
from cllm_app.store.schema import iso

EXTENSIONS = (".md", ".txt")
MAX_NAME_LENGTH = 100
MAX_NOTE_BYTES = 5 * 1024 * 1024
SNIPPET_CHARS = 60
MAX_SNIPPETS = 3
NAME_RULE = (
    "A note name is 1 to 100 characters: letters, digits, spaces and - _ . , ( ) ', ending in "
    ".md or .txt (.md is added when there is no ending), not starting with a dot or a space"
)
_WINDOWS_DEVICES = {"con", "prn", "aux", "nul"} | {f"{p}{i}" for p in ("com", "lpt") for i in range(1, 10)}
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def _allowed(ch: str) -> bool:
    return ch in " -_.,()'" or unicodedata.category(ch)[0] in "LN"


def check_note_name(name) -> str:
    """The note's file name, NFC-normalised and with an ending, or InvalidInput."""
    if not isinstance(name, str):
        raise InvalidInput(f"note_name must be text. {NAME_RULE}", code="invalid_note_name")
    name = unicodedata.normalize("NFC", name.strip())
    if not name.lower().endswith(EXTENSIONS):
        name += ".md"
    stem = name.rsplit(".", 1)[0]
    bad = sorted({ch for ch in name if not _allowed(ch)})
    if (
        not stem.strip()
        or len(name) > MAX_NAME_LENGTH
        or bad
        or name.startswith((".", " "))
        or ".." in name
        or stem.endswith((" ", "."))
        or stem.split(".")[0].strip().lower() in _WINDOWS_DEVICES
    ):
        why = f" ({' '.join(repr(c) for c in bad[:5])} not allowed)" if bad else ""
        raise InvalidInput(f"'{name}' cannot be a note name{why}. {NAME_RULE}", code="invalid_note_name")
    return name


def render(name: str, content: str) -> str:
    """Safe HTML for a note: markdown with raw HTML shown as text; a .txt note as preformatted text."""
    if name.lower().endswith(".txt"):
        from html import escape

        return f"<pre>{escape(content)}</pre>"
    return _markdown.render(content)


def _title(name: str, content: str) -> str:
    for line in content.splitlines():
        m = re.match(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m and m.group(1):
            return m.group(1)
        if line.strip():
            break
    return name.rsplit(".", 1)[0]


def _snippets(content: str, needle: str) -> list[str]:
    out = []
    low = content.casefold()
    start = 0
    # casefold can change lengths (ß -> ss); positions are then approximate, which a snippet tolerates
    while len(out) < MAX_SNIPPETS:
        i = low.find(needle, start)
        if i < 0:
            break
        a, b = max(0, i - SNIPPET_CHARS), min(len(content), i + len(needle) + SNIPPET_CHARS)
        text = " ".join(content[a:b].split())
        out.append(("…" if a > 0 else "") + text + ("…" if b < len(content) else ""))
        start = i + max(1, len(needle))
    return out


class Notes:
    """The research/ folder's notes. Names in, JSON-ready dicts out."""

    def __init__(self, folder: Path, models):
        self.folder = Path(folder)
        self.models = models

    def _path(self, name) -> Path:
        name = check_note_name(name)
        path = self.folder / name
        if path.parent != self.folder:  # the name rule already refuses separators; belt and braces
            raise InvalidInput(f"'{name}' is not a file in the notes folder", code="invalid_note_name")
        return path

    def _existing(self, name) -> Path:
        path = self._path(name)
        if not path.is_file():
            raise NotFound(f"there is no note named '{path.name}'", code="note_not_found")
        return path

    def _taken(self, name: str, current: str | None = None) -> bool:
        key = name.casefold()
        return any(p.name.casefold() == key and p.name != current for p in self._files())

    def _files(self) -> list[Path]:
        self.folder.mkdir(parents=True, exist_ok=True)
        return sorted(
            (p for p in self.folder.iterdir()
             if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in EXTENSIONS),
            key=lambda p: p.name.casefold(),
        )

    def _read(self, path: Path) -> str:
        return path.read_bytes().decode("utf-8", errors="replace")

    def _links(self, name: str) -> list[str]:
        q = (LanguageModel.select(LanguageModel.model_name).join(NoteLink)
             .where((NoteLink.note_name == name) & LanguageModel.deleted_at.is_null())
             .order_by(LanguageModel.model_name))
        return [m.model_name for m in q]

    def _summary(self, path: Path, content: str | None = None) -> dict:
        content = self._read(path) if content is None else content
        stat = path.stat()
        return {
            "note_name": path.name,
            "title": _title(path.name, content),
            "bytes": stat.st_size,
            "modified_at": iso(_utc(stat.st_mtime)),
            "models": self._links(path.name),
        }

    def _check_content(self, content) -> bytes:
        if not isinstance(content, str):
            raise InvalidInput("content must be text", code="invalid_content")
        if "\x00" in content:
            raise InvalidInput("the note holds NUL characters: notes are text", code="binary_content")
        data = content.encode("utf-8")
        if len(data) > MAX_NOTE_BYTES:
            raise InvalidInput(f"a note holds at most {MAX_NOTE_BYTES // 1024**2} MB", code="note_too_large")
        return data

    # ---- reading ----------------------------------------------------------------------------

    def list(self, q: str | None = None, model_name: str | None = None) -> dict:
        """All notes (or those of one model), and with `q` only those whose name or text holds
        it (case-insensitive), each with snippets around the matches."""
        files = self._files()
        if model_name:
            row = self.models.get(model_name)
            names = {n.note_name for n in NoteLink.select().where(NoteLink.model == row)}
            files = [p for p in files if p.name in names]
        needle = (q or "").strip().casefold()
        out = []
        for path in files:
            content = self._read(path)
            item = self._summary(path, content)
            if needle:
                snippets = _snippets(content, needle)
                if not snippets and needle not in path.name.casefold():
                    continue
                item["snippets"] = snippets
            out.append(item)
        return {"notes": out, "q": q or "", "folder": str(self.folder)}

    def get(self, name) -> dict:
        path = self._existing(name)
        content = self._read(path)
        return {**self._summary(path, content), "content": content, "html": render(path.name, content)}

    # ---- changing ---------------------------------------------------------------------------

    def create(self, name, content: str = "") -> dict:
        path = self._path(name)
        data = self._check_content(content)
        if self._taken(path.name):
            raise Conflict(f"a note named '{path.name}' already exists (names ignore case)", code="note_exists")
        atomic_write_bytes(path, data)
        return self.get(path.name)

    def save(self, name, content) -> dict:
        path = self._existing(name)
        atomic_write_bytes(path, self._check_content(content))
        return self.get(path.name)

    def rename(self, name, new_name) -> dict:
        path = self._existing(name)
        target = self._path(new_name)
        if target.name == path.name:
            return self.get(path.name)
        if self._taken(target.name, current=path.name):
            raise Conflict(f"a note named '{target.name}' already exists (names ignore case)", code="note_exists")
        with db.atomic():
            NoteLink.update(note_name=target.name).where(NoteLink.note_name == path.name).execute()
            # The rows roll back if the move fails; a move that succeeded is not undone by anything later.
            path.rename(target)
            fsync_dir(self.folder)
        return self.get(target.name)

    def delete(self, name, confirm=False) -> dict:
        path = self._existing(name)
        if confirm is not True:
            raise ConfirmationRequired(f"deleting the note '{path.name}' cannot be undone; send confirm: true")
        with db.atomic():
            NoteLink.delete().where(NoteLink.note_name == path.name).execute()
            path.unlink()
            fsync_dir(self.folder)
        return {"note_name": path.name}

    def import_file(self, filename: str, stream) -> dict:
        """A document uploaded as a new note: UTF-8 text, named after the file (made unique)."""
        data = stream.read(MAX_NOTE_BYTES + 1)
        shown = filename or "the file"
        if len(data) > MAX_NOTE_BYTES:
            raise InvalidInput(f"'{shown}' is larger than {MAX_NOTE_BYTES // 1024**2} MB", code="note_too_large")
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        if b"\x00" in data:
            raise InvalidInput(f"'{shown}' looks binary (it contains NUL bytes), not text", code="binary_file")
        try:
            content = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidInput(f"'{shown}' is not UTF-8 text (byte {e.start:,} cannot be read)", code="not_utf8") from None
        if not content.strip():
            raise InvalidInput(f"'{shown}' is empty", code="empty_file")
        base = Path(filename or "imported").name
        stem, ext = (base.rsplit(".", 1) + [""])[:2] if "." in base else (base, "")
        ext = ".md" if ext.lower() in ("md", "markdown") else ".txt"
        stem = "".join(c if _allowed(c) else "_" for c in stem).strip(" ._")[: MAX_NAME_LENGTH - 10] or "imported"
        candidate, n = stem + ext, 2
        while self._taken(candidate):
            candidate, n = f"{stem} ({n}){ext}", n + 1
        return self.create(candidate, content)

    # ---- models -----------------------------------------------------------------------------

    def attach(self, name, model_name) -> dict:
        path = self._existing(name)
        row = self.models.get(model_name)
        if not NoteLink.select().where((NoteLink.note_name == path.name) & (NoteLink.model == row)).exists():
            NoteLink.create(note_name=path.name, model=row)
        return self.get(path.name)

    def detach(self, name, model_name) -> dict:
        path = self._existing(name)
        row = self.models.get(model_name)
        NoteLink.delete().where((NoteLink.note_name == path.name) & (NoteLink.model == row)).execute()
        return self.get(path.name)


def _utc(timestamp: float):
    from datetime import datetime, timezone

    return datetime.fromtimestamp(timestamp, timezone.utc).replace(tzinfo=None)
