"""Where a queue entry's text and tokens live on disk.

Each entry's text is kept once, normalized (no BOM, line ends as \\n) and compressed with
zstd, as `<hash24>.txt.zst`. Its tokens are cached per tokenizer, under the tokenizer's
fingerprint, as a flat array the trainer maps into memory: `tokens/<fingerprint>/<hash24>.u8`
for the byte tokenizer (a byte is a token) and `.u16` for the others. Everything is written
streaming to a temporary file, fsynced and renamed, so a crash leaves no half file behind.
Entries of older versions kept raw UTF-8 as `<hash24>.txt`; they are read as they are.
"""

import codecs
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zstandard

from cllm_app.data import Empty
from cllm_app.data import limits as _limits
from cllm_app.fsutil import fsync_dir

TEXT_SUFFIX = ".txt.zst"
ZSTD_LEVEL = 1  # level 1 keeps ingest above 100 MB/s; level 3 saves only ~1% more
ZSTD_THREADS = min(2, os.cpu_count() or 1)  # the app is meant to use both cores of a small machine
PIECE_CHARS = 1 << 16  # text per piece handed to encode_batch: room for a tokenizer's threads
TEMP_PREFIX = ".ingest-"
_SAFE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_NEXT_CUT = re.compile(r"(?<=\S)\n(?=\S)")


def text_name(content_hash: str) -> str:
    return content_hash[:24] + TEXT_SUFFIX


def cache_dtype(tokenizer) -> type:
    return np.uint8 if tokenizer.kind == "byte" else np.uint16


def cache_path(queue_dir: Path, tokenizer, content_hash: str) -> Path:
    """Where the tokens of one text are cached for one tokenizer."""
    fp = tokenizer.fingerprint
    folder = fp if _SAFE.match(fp) and not fp.startswith(".") else hashlib.sha256(fp.encode()).hexdigest()[:24]
    suffix = ".u8" if cache_dtype(tokenizer) is np.uint8 else ".u16"
    return queue_dir / "tokens" / folder / (content_hash[:24] + suffix)


def _temp(folder: Path) -> tuple[object, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=folder)
    return os.fdopen(fd, "wb"), Path(name)


def _finish(f, tmp: Path, dest: Path) -> None:
    f.flush()
    os.fsync(f.fileno())
    f.close()
    os.replace(tmp, dest)
    fsync_dir(dest.parent)


def _cut(text: str, sep: str = "\n") -> int:
    """Where text can be cut so that its tokens are the same cut or not: just after a lone
    newline between two non-spaces (GPT-2's pre-tokenizer splits "x\n\ny" into "\n", "\n" but
    a text ending in "\n\n" into one "\n\n", so a newline in a run is no place to cut).
    0 when there is no such place."""
    end = len(text)
    while True:
        i = text.rfind(sep, 0, end)
        if i < 0:
            return 0
        lone = sep != "\n" or (i > 0 and not text[i - 1].isspace())
        if lone and i + 1 < len(text) and not text[i + 1].isspace():
            return i + 1 if sep == "\n" else i  # a space starts the next word's token
        end = i


def _pieces(text: str) -> list[str]:
    """Text split at safe places into pieces of about PIECE_CHARS."""
    pieces, start = [], 0
    while start < len(text):
        end = start + PIECE_CHARS
        if end >= len(text):
            end = len(text)
        else:
            cut = _cut(text[start:end])
            if cut:
                end = start + cut
            else:  # no newline in this window: the next safe place after it
                nxt = _NEXT_CUT.search(text, end)
                end = nxt.end() if nxt else len(text)
        pieces.append(text[start:end])
        start = end
    return pieces


class TokenWriter:
    """Tokenizes text chunks in order and writes the tokens to a temporary cache file."""

    def __init__(self, tokenizer, folder: Path):
        self.tok = tokenizer
        self.dtype = cache_dtype(tokenizer)
        self.count = 0
        self._pending = ""
        self._file, self.tmp = _temp(folder)

    def add_bytes(self, data: bytes) -> None:
        """The byte tokenizer's fast path: its tokens are the UTF-8 bytes."""
        self._file.write(data)
        self.count += len(data)

    def add(self, text: str, final: bool = False) -> None:
        text = self._pending + text
        cut = len(text) if final else _cut(text)
        if not cut and len(text) > 4 * _limits.CHUNK:
            cut = _cut(text, " ")  # one enormous line: before a word is the next best place
        self._pending = text[cut:]
        text = text[:cut]
        if not text:
            return
        for ids in self.tok.encode_batch(_pieces(text)):
            arr = np.asarray(ids)
            if arr.size and int(arr.max()) > np.iinfo(self.dtype).max:
                raise ValueError(f"token id {int(arr.max())} does not fit the cache's {np.dtype(self.dtype).name}")
            self._file.write(arr.astype(self.dtype, copy=False).tobytes())
            self.count += arr.size

    def commit(self, dest: Path) -> None:
        if self._pending:
            self.add("", final=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        _finish(self._file, self.tmp, dest)

    def discard(self) -> None:
        self._file.close()
        self.tmp.unlink(missing_ok=True)


@dataclass
class Written:
    content_hash: str
    byte_count: int
    token_count: int


class EntryWriter:
    """One document on its way into a queue folder: normalized, hashed, compressed and
    tokenized chunk by chunk into temporary files; then committed under its hash, or discarded."""

    def __init__(self, queue_dir: Path, tokenizer):
        self.queue_dir = queue_dir
        self.tok = tokenizer
        self.byte_fast = tokenizer.kind == "byte"
        self._hash = hashlib.sha256()
        self.byte_count = 0
        self._has_text = False
        self._first = True
        self._cr = False  # the last chunk ended in \r: a \n starting the next one belongs to it
        self._text_file, self.text_tmp = _temp(queue_dir)
        # Worker threads compress while this one hashes and writes the token cache.
        self._zstd = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=ZSTD_THREADS).stream_writer(
            self._text_file, closefd=False
        )
        self.tokens = TokenWriter(tokenizer, queue_dir / "tokens")

    def write(self, text: str) -> None:
        raw = getattr(text, "raw", None)  # the UTF-8 bytes of `text`, when the reader kept them
        if self._first:
            if text.startswith("\ufeff"):
                text, raw = text.lstrip("\ufeff"), None
            self._first = not text
        if self._cr and text.startswith("\n"):
            text, raw = text[1:], None
        self._cr = text.endswith("\r")
        if "\r" in text:
            text, raw = text.replace("\r\n", "\n").replace("\r", "\n"), None
        if not text:
            return
        if not self._has_text and not text.isspace():
            self._has_text = True
        data = raw if raw is not None else text.encode("utf-8")
        self.byte_count += len(data)
        self._hash.update(data)
        self._zstd.write(data)
        if self.byte_fast:
            self.tokens.add_bytes(data)
        else:
            self.tokens.add(text)

    def finish(self) -> Written:
        """Close the temporary files. Raises Empty for a text of nothing or only white space."""
        if self.byte_count == 0:
            raise Empty("it holds no text")
        if not self._has_text:
            raise Empty("it holds only white space")
        self._zstd.flush(zstandard.FLUSH_FRAME)
        if not self.byte_fast:
            self.tokens.add("", final=True)
        return Written(self._hash.hexdigest(), self.byte_count, self.tokens.count)

    def commit(self, written: Written) -> tuple[str, Path]:
        """Move the text and its tokens into place; returns (data_path, cache path)."""
        name = text_name(written.content_hash)
        _finish(self._text_file, self.text_tmp, self.queue_dir / name)
        cache = cache_path(self.queue_dir, self.tok, written.content_hash)
        self.tokens.commit(cache)
        return name, cache

    def discard(self) -> None:
        try:
            self._zstd.close()
        except Exception:  # noqa: BLE001 - a broken compressor must not stop the clean-up
            pass
        self._text_file.close()
        self.text_tmp.unlink(missing_ok=True)
        self.tokens.discard()


def iter_text(path: Path, chunk: int | None = None) -> Iterator[str]:
    """The stored text of an entry, in chunks (zstd-compressed, or raw UTF-8 from older versions)."""
    chunk = chunk or _limits.CHUNK
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    with open(path, "rb") as f:
        reader = zstandard.ZstdDecompressor().stream_reader(f) if path.name.endswith(".zst") else f
        with reader:
            while data := reader.read(chunk):
                text = decoder.decode(data)
                if text:
                    yield text
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail


def build_cache(text_path: Path, tokenizer, dest: Path) -> int:
    """Tokenize a stored text for `tokenizer` into `dest`, atomically. Returns the token count."""
    writer = TokenWriter(tokenizer, dest.parent)
    try:
        if tokenizer.kind == "byte":
            for text in iter_text(text_path):
                writer.add_bytes(text.encode("utf-8"))
        else:
            for text in iter_text(text_path):
                writer.add(text)
        writer.commit(dest)
    except BaseException:
        writer.discard()
        raise
    return writer.count


def load_tokens(path: Path, dtype) -> np.ndarray:
    """A cache file mapped into memory (an empty array for an empty file: mmap refuses those)."""
    if path.stat().st_size == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")
