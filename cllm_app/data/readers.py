"""One reader per format, each turning a file into one document: a title and text chunks.

Formats: plain text (.txt, .md and anything else that decodes as text), HTML (the page's main
text through trafilatura), JSON and JSON Lines (a text field, chosen or detected), CSV (a
column, chosen or detected), PDF (pypdf), and folders and .zip archives of these. Readers
stream where the format allows, so memory stays bounded whatever the file's size; the
formats whose parsers need the whole file (HTML, JSON, PDF) are limited in size.
"""

import csv
import io
import json
import os
import re
import stat
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from cllm_app.data import Empty, Refused
from cllm_app.data import limits as _limits
from cllm_app.data.decode import decoded_chunks, detect

HTML_EXT = {".html", ".htm", ".xhtml"}
JSON_EXT = {".json"}
JSONL_EXT = {".jsonl", ".ndjson"}
CSV_EXT = {".csv", ".tsv"}
PDF_EXT = {".pdf"}
ZIP_EXT = {".zip"}
# Field and column names that usually hold the text of a record, in order of preference.
TEXT_NAMES = ("text", "content", "body", "article", "document", "story", "markdown", "completion", "message")
DETECT_RECORDS = 200


@dataclass
class Item:
    """One file to ingest: where it came from (shown), its name (for its format), how to open it."""

    origin: str
    name: str
    size: int
    open: Callable[[], BinaryIO] | None
    refused: str | None = None  # known to be unreadable before opening it


@dataclass
class Options:
    """A person's choices for structured files; None means detect."""

    text_field: str | None = None  # JSON / JSONL
    csv_column: str | None = None  # a header name or a 0-based index


@dataclass
class Doc:
    """A document being read: its title, its text chunks, and notes for the report."""

    title: str | None
    chunks: Iterator[str]
    notes: list[str] = field(default_factory=list)


# ---- finding the files -----------------------------------------------------------------------


def _size(n: int) -> str:
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:,} bytes"


def _shown(name: str) -> str:
    """An archive path fit for a report and a terminal: control characters escaped."""
    return "".join(f"\\x{ord(c):02x}" if ord(c) < 32 or ord(c) == 127 else c for c in name)


def _unsafe(info: zipfile.ZipInfo) -> str | None:
    """Why a member's path or kind is unsafe, or None. Nothing is unpacked to disk here, but an
    archive whose paths would escape the folder it is unpacked in was made to attack one, and a
    person must hear of what was left out."""
    name = info.filename
    path = name.replace("\\", "/")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "its name in the archive holds control characters; refused as unsafe"
    if path.startswith("/") or re.match(r"[A-Za-z]:", path):
        return "its path in the archive is absolute, so unpacking it would write outside its folder; refused as unsafe"
    if ".." in path.split("/"):
        return ("its path in the archive climbs out of it ('..'), so unpacking it would write outside its folder; "
                "refused as unsafe")
    if info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16):
        return "it is a symbolic link in the archive, not a file"
    return None


def _hidden(name: str) -> bool:
    """Hidden files and macOS resource forks are not documents."""
    return any(part.startswith(".") and part != "." or part == "__MACOSX" for part in name.split("/"))


def _refusal(info: zipfile.ZipInfo, archive_size: int) -> str | None:
    """Why a member cannot be read, or None. The expansion caps are checked on the sizes the
    archive declares: zipfile never inflates a member past its declared size, so a bomb is
    refused before a byte of it is inflated."""
    if info.flag_bits & 0x1:
        return "it is encrypted in the archive"
    if Path(info.filename).suffix.lower() in ZIP_EXT:
        return "it is an archive inside an archive; unpack the outer one and add the inner one"
    if info.file_size > _limits.MAX_FILE_BYTES:
        return f"it is larger than {_limits.MAX_FILE_BYTES / 1024**3:g} GB; split it into smaller files"
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        # zipfile inflates bzip2 and LZMA a whole compressed block at a time, with no bound on
        # the output: a small lying member could fill the memory in one read.
        method = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "LZMA"}.get(info.compress_type, "an unusual method")
        return (f"it is compressed with {method} in the archive; only stored and Deflate members are read "
                "(save the archive with ordinary zip compression)")
    packed = max(1, min(info.compress_size, archive_size))  # a header may claim more than the archive holds
    ratio = info.file_size / packed
    if info.file_size > _limits.ARCHIVE_RATIO_FROM and ratio > _limits.MAX_ARCHIVE_RATIO:
        return (f"it would expand {ratio:,.0f}-fold, from {_size(packed)} to {_size(info.file_size)}, past the limit of "
                f"{_limits.MAX_ARCHIVE_RATIO:g}-fold for a file in an archive: that is a zip bomb, not text")
    return None


def _zip_items(origin: str, opener: Callable[[], BinaryIO], archive_size: int) -> list[Item]:
    try:
        with opener() as f, zipfile.ZipFile(f) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        return [Item(origin, origin, 0, None, f"it is not a readable zip archive ({e})")]
    files = [i for i in infos if not i.is_dir()]
    if len(files) > _limits.MAX_ARCHIVE_MEMBERS:
        return [Item(origin, origin, 0, None, f"it holds {len(files):,} files; the most one archive may hold is "
                     f"{_limits.MAX_ARCHIVE_MEMBERS:,}")]
    items = []
    for info in sorted(files, key=lambda i: i.filename):
        name = info.filename
        member_origin = f"{origin}!/{_shown(name)}"
        refused = _unsafe(info)  # before the hidden test: '..' is no hidden file
        if refused is None:
            if _hidden(name):
                continue
            refused = _refusal(info, archive_size)
        if refused:  # nothing of it is read, so it counts no bytes
            items.append(Item(member_origin, name, 0, None, refused))
        else:
            items.append(Item(member_origin, name, info.file_size, _member_opener(opener, info)))
    expands = sum(i.size for i in items)
    if expands > _limits.MAX_ARCHIVE_BYTES:
        return [Item(origin, origin, 0, None, f"it would expand to {_size(expands)}, past the limit of "
                     f"{_size(_limits.MAX_ARCHIVE_BYTES)} for one archive; unpack it and add the folder")]
    return items


class _Member(io.RawIOBase):
    """A zip member that closes its archive with it."""

    def __init__(self, outer: BinaryIO, archive: zipfile.ZipFile, member: BinaryIO):
        self._outer, self._archive, self._member = outer, archive, member

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self._member.read(n)

    def readinto(self, b) -> int:
        data = self._member.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        for thing in (self._member, self._archive, self._outer):
            try:
                thing.close()
            except Exception:  # noqa: BLE001 - closing must not hide the real error
                pass
        super().close()


def _member_opener(opener: Callable[[], BinaryIO], info: zipfile.ZipInfo) -> Callable[[], BinaryIO]:
    def open_member() -> BinaryIO:
        outer = opener()
        try:
            archive = zipfile.ZipFile(outer)
            return _Member(outer, archive, archive.open(info))
        except BaseException:
            outer.close()
            raise

    return open_member


def _file_opener(path: Path) -> Callable[[], BinaryIO]:
    return lambda: open(path, "rb")


def _is_zip(path: Path) -> bool:
    if path.suffix.lower() in ZIP_EXT:
        return True
    return False


def expand(paths: Iterable[tuple[str, str]]) -> list[Item]:
    """The files behind (path, origin) pairs: folders walked in name order (hidden entries
    skipped), archives opened, missing paths refused."""
    items: list[Item] = []
    for path_text, origin in paths:
        path = Path(path_text).expanduser()
        if not path.exists():
            items.append(Item(origin, path.name, 0, None, "it does not exist (moved or deleted?)"))
        elif path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if name.startswith("."):
                        continue
                    file = Path(root) / name
                    shown = origin.rstrip("/\\") + "/" + file.relative_to(path).as_posix()
                    items.extend(_one_file(file, shown))
        else:
            items.extend(_one_file(path, origin))
    return items


def _one_file(path: Path, origin: str) -> list[Item]:
    try:
        size = path.stat().st_size
    except OSError as e:
        return [Item(origin, path.name, 0, None, f"it cannot be read: {e.strerror or e}")]
    if not path.is_file():
        return [Item(origin, path.name, 0, None, "it is not a regular file")]
    if _is_zip(path):
        return _zip_items(origin, _file_opener(path), size)
    refused = None
    if size > _limits.MAX_FILE_BYTES:
        refused = f"it is larger than {_limits.MAX_FILE_BYTES / 1024**3:g} GB; split it into smaller files"
    return [Item(origin, path.name, size, None if refused else _file_opener(path), refused)]


# ---- reading one file ------------------------------------------------------------------------


def _read_whole(stream: BinaryIO, head: bytes, what: str, on_bytes) -> bytes:
    parts, size = [head], len(head)
    if on_bytes and head:
        on_bytes(len(head))
    while chunk := stream.read(_limits.CHUNK):
        size += len(chunk)
        if on_bytes:
            on_bytes(len(chunk))
        if size > _limits.MAX_WHOLE_BYTES:
            raise Refused(
                f"it is larger than {_limits.MAX_WHOLE_BYTES // 1024**2} MB, the most a {what} file may be "
                "(its parser needs it whole)"
            )
        parts.append(chunk)
    return b"".join(parts)


def _decode_whole(data: bytes) -> str:
    codec = detect(data[: 1 << 20], at_eof=len(data) <= 1 << 20)
    try:
        return data.decode(codec)
    except UnicodeDecodeError as e:
        raise Refused(f"it is not consistently {codec}: byte {e.start:,} cannot be read in that encoding") from None


def read(item: Item, stream: BinaryIO, options: Options, on_bytes=None) -> Doc:
    """The document in an opened file. Raises Refused (or Empty) with the reason."""
    head = stream.read(8)
    if not head:
        raise Empty("it is empty")
    ext = Path(item.name).suffix.lower()
    if head.startswith(b"%PDF") or ext in PDF_EXT:
        return _pdf(_read_whole(stream, head, "PDF", on_bytes))
    if ext in HTML_EXT:
        return _html(_decode_whole(_read_whole(stream, head, "HTML", on_bytes)))
    if ext in JSON_EXT:
        return _json(_decode_whole(_read_whole(stream, head, "JSON", on_bytes)), options)
    if ext in JSONL_EXT:
        return _jsonl(decoded_chunks(stream, head, on_bytes), options)
    if ext in CSV_EXT:
        return _csv(decoded_chunks(stream, head, on_bytes), options, delimiter="\t" if ext == ".tsv" else None)
    return Doc(None, decoded_chunks(stream, head, on_bytes))


def _html(html: str) -> Doc:
    import trafilatura

    text = trafilatura.extract(html, include_comments=False, include_tables=True, favor_recall=True)
    if not text or not text.strip():
        # Short pages fall below trafilatura's idea of an article: take the body's text instead.
        from lxml import html as lxml_html

        try:
            root = lxml_html.fromstring(html)
            for bad in root.xpath("//script|//style|//noscript"):
                bad.drop_tree()
            text = "\n".join(line.strip() for line in root.text_content().splitlines() if line.strip())
        except Exception:  # noqa: BLE001 - lxml refuses some fragments; that is an empty page to us
            text = ""
    if not text.strip():
        raise Empty("no readable text was found in the page")
    title = None
    match = re.search(r"<title[^>]*>(.*?)</title>", html, re.I | re.S)
    if match:
        import html as html_module

        title = html_module.unescape(" ".join(match.group(1).split())) or None
    return Doc(title, iter([text]))


def _pick_field(records: list, chosen: str | None) -> str | None:
    """The field of `records` (dicts) that holds the text: the chosen one, a usual name, else the
    string field with the most text."""
    dicts = [r for r in records if isinstance(r, dict)]
    if chosen is not None:
        if not any(chosen in r for r in dicts):
            seen = sorted({k for r in dicts for k in r})[:20]
            raise Refused(f"no record has the field '{chosen}'; its fields are: {', '.join(seen) or 'none'}")
        return chosen
    if not dicts:
        return None
    for name in TEXT_NAMES:
        if sum(isinstance(r.get(name), str) for r in dicts) * 2 > len(dicts):
            return name
    totals: dict[str, int] = {}
    for r in dicts:
        for k, v in r.items():
            if isinstance(v, str):
                totals[k] = totals.get(k, 0) + len(v)
    if not totals:
        raise Refused("its records hold no text fields")
    return max(totals, key=totals.get)


def _texts(records: Iterable, name: str | None) -> Iterator[str]:
    for r in records:
        value = r if name is None or not isinstance(r, dict) else r.get(name)
        if isinstance(value, str) and value.strip():
            yield value


def _joined(texts: Iterable[str]) -> Iterator[str]:
    """Records become one document, a blank line between them."""
    first = True
    for t in texts:
        yield t if first else "\n\n" + t
        first = False


def _json(text: str, options: Options) -> Doc:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise Refused(f"it is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    if isinstance(data, dict):
        key = options.text_field
        if key is not None and isinstance(data.get(key), str) or key is None and any(
            isinstance(data.get(n), str) for n in TEXT_NAMES
        ):
            records = [data]
        else:
            lists = [v for v in data.values() if isinstance(v, list)]
            records = max(lists, key=len) if lists else [data]
    elif isinstance(data, list):
        records = data
    elif isinstance(data, str):
        records = [data]
    else:
        raise Refused("it holds no text (a JSON number or constant)")
    name = _pick_field(records[:DETECT_RECORDS], options.text_field)
    texts = list(_texts(records, name))
    if not texts:
        raise Empty(f"its records hold no text{f' in the field {name!r}' if name else ''}")
    doc = Doc(None, _joined(texts))
    doc.notes.append(f"{len(texts):,} records" + (f", field '{name}'" if name else ""))
    return doc


def _lines(chunks: Iterator[str]) -> Iterator[str]:
    tail = ""
    for chunk in chunks:
        lines = (tail + chunk).split("\n")
        tail = lines.pop()
        yield from lines
    if tail:
        yield tail


def _jsonl(chunks: Iterator[str], options: Options) -> Doc:
    lines = _lines(chunks)
    head: list = []
    bad = [0]
    first_line = [0]

    def parsed(source: Iterator[str]) -> Iterator:
        for line in source:
            first_line[0] += 1
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                bad[0] += 1

    records = parsed(lines)
    for r in records:
        head.append(r)
        if len(head) >= DETECT_RECORDS:
            break
    if not head:
        if bad[0]:
            raise Refused("none of its lines is a JSON record; is it JSON Lines?")
        raise Empty("it holds no records")
    name = _pick_field(head, options.text_field)
    doc = Doc(None, iter(()))
    count = [0]

    def texts() -> Iterator[str]:
        for t in _texts(_chain(head, records), name):
            count[0] += 1
            yield t
        if bad[0]:
            doc.notes.append(f"{bad[0]:,} {'line was' if bad[0] == 1 else 'lines were'} not JSON and skipped")
        doc.notes.insert(0, f"{count[0]:,} records" + (f", field '{name}'" if name else ""))

    doc.chunks = _batched(_joined(texts()))
    return doc


def _chain(first: list, rest: Iterator) -> Iterator:
    yield from first
    yield from rest


def _batched(pieces: Iterator[str]) -> Iterator[str]:
    """Many small pieces (records, rows) gathered into chunks of about CHUNK characters."""
    buf: list[str] = []
    size = 0
    for p in pieces:
        buf.append(p)
        size += len(p)
        if size >= _limits.CHUNK:
            yield "".join(buf)
            buf, size = [], 0
    if buf:
        yield "".join(buf)


def _column(header: list[str] | None, rows: list[list[str]], chosen: str | None) -> int:
    if chosen is not None:
        chosen = str(chosen)
        if header is not None:
            names = [h.strip().casefold() for h in header]
            if chosen.strip().casefold() in names:
                return names.index(chosen.strip().casefold())
        if chosen.isdigit() and rows and int(chosen) < max(len(r) for r in rows):
            return int(chosen)
        raise Refused(
            f"it has no column '{chosen}'"
            + (f"; its columns are: {', '.join(header)}" if header else "; give a 0-based column number")
        )
    if header is not None:
        names = [h.strip().casefold() for h in header]
        for name in TEXT_NAMES:
            if name in names:
                return names.index(name)
    width = max((len(r) for r in rows), default=0)
    if width == 0:
        raise Empty("it has no rows")
    totals = [sum(len(r[i]) for r in rows if i < len(r)) for i in range(width)]
    return max(range(width), key=totals.__getitem__)


def _csv(chunks: Iterator[str], options: Options, delimiter: str | None) -> Doc:
    lines = _lines(chunks)
    sample_lines: list[str] = []
    for line in lines:
        sample_lines.append(line)
        if len(sample_lines) > DETECT_RECORDS:
            break
    if not any(line.strip() for line in sample_lines):
        raise Empty("it has no rows")
    sample = "\n".join(sample_lines)
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(sample[:65536], delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    csv.field_size_limit(_limits.MAX_FILE_BYTES)
    rows = csv.reader(_chain(sample_lines, lines), delimiter=delimiter)
    try:
        first = [next(rows)]
        for r in rows:
            first.append(r)
            if len(first) > DETECT_RECORDS:
                break
    except csv.Error as e:
        raise Refused(f"it is not valid CSV ({e})") from None
    header = first[0]
    names = {h.strip().casefold() for h in header}
    has_header = bool(names & set(TEXT_NAMES)) or (
        options.csv_column is not None and not str(options.csv_column).isdigit()
    )
    if not has_header:
        try:
            has_header = csv.Sniffer().has_header(sample[:65536])
        except csv.Error:
            has_header = False
    body = first[1:] if has_header else first
    col = _column(header if has_header else None, body, options.csv_column)
    doc = Doc(None, iter(()))
    count = [0]

    def cells() -> Iterator[str]:
        try:
            for r in _chain(body, rows):
                if col < len(r) and r[col].strip():
                    count[0] += 1
                    yield r[col]
        except csv.Error as e:
            raise Refused(f"it is not valid CSV ({e})") from None
        doc.notes.insert(0, f"{count[0]:,} rows, column '{header[col] if has_header else col}'")

    doc.chunks = _batched(_joined(cells()))
    return doc


def _pdf(data: bytes) -> Doc:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise Refused("it is an encrypted PDF; save an unprotected copy and add that")
        title = None
        try:
            title = (reader.metadata or {}).get("/Title") or None
        except PyPdfError:
            pass
        pages = [page.extract_text() or "" for page in reader.pages]
    except Refused:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, IndexError, OSError) as e:
        raise Refused(f"it cannot be read as a PDF ({type(e).__name__}: {e})") from None
    texts = [p.strip() for p in pages if p.strip()]
    if not texts:
        raise Empty(f"its {len(pages)} pages hold no text (a scanned PDF needs text recognition first)")
    doc = Doc(str(title) if title else None, _joined(texts))
    doc.notes.append(f"{len(pages)} pages")
    return doc
