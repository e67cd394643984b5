"""Training a new model's BPE tokenizer from the data the person picks.

The text comes from files (paths from the window's file dialog, or files a browser uploaded
and `stage_uploads` put in the data root) or from another model's training-data queue. A
file that cannot be used refuses the whole tokenizer with the file's name and the reason:
a tokenizer silently trained on less than was picked would be a surprise found much later.
"""

from __future__ import annotations

import codecs
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import zstandard

from cllm_app.data.textstore import iter_text
from cllm_app.engine.bpe import (
    VOCAB_MAX,
    VOCAB_MIN,
    BPETokenizer,
    TokenizerError,
    check_vocab_size,
    train_bpe,
)
from cllm_app.errors import InvalidInput
from cllm_app.store import QueueEntry

DEFAULT_VOCAB_SIZE = 4096
# More text than this adds little to a vocabulary of at most 32768 tokens and only makes the
# person wait; the first files (in the order given) are used up to it.
MAX_TRAIN_BYTES = 128 * 1024**2
MAX_UPLOAD_BYTES = 512 * 1024**2  # one upload request
CHUNK = 1 << 20
UPLOADS = ("staging", "tokenizer")  # under the data root
STALE_UPLOAD_SECONDS = 24 * 3600


def _refuse(message: str, code: str = "tokenizer_data_refused") -> InvalidInput:
    return InvalidInput(message, code=code)


def _file_chunks(path: Path) -> Iterator[str]:
    """A text file as strings of about CHUNK bytes, cut after a newline so no word is split."""
    name = str(path)
    if not path.exists():
        raise _refuse(f"{name} does not exist")
    if path.is_dir():
        raise _refuse(f"{name} is a folder; pick the files inside it")
    decoder = codecs.getincrementaldecoder("utf-8-sig")("strict")
    carry, offset, has_text = "", 0, False
    try:
        with open(path, "rb") as f:
            while block := f.read(CHUNK):
                if b"\x00" in block:
                    raise _refuse(f"{name} looks binary (it contains NUL bytes), not text")
                try:
                    text = carry + decoder.decode(block)
                except UnicodeDecodeError as e:
                    raise _refuse(
                        f"{name} is not UTF-8 text (byte {offset + e.start:,} cannot be read); save it as UTF-8"
                    ) from None
                offset += len(block)
                cut = text.rfind("\n") + 1
                carry = text[cut:] if cut else text
                if cut:
                    has_text = has_text or bool(text[:cut].strip())
                    yield text[:cut]
            try:
                carry += decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                raise _refuse(f"{name} ends in the middle of a UTF-8 character") from None
    except OSError as e:
        raise _refuse(f"{name} cannot be read: {e.strerror or e}") from None
    if carry:
        has_text = has_text or bool(carry.strip())
        yield carry
    if offset == 0:
        raise _refuse(f"{name} is empty")
    if not has_text:
        raise _refuse(f"{name} holds only white space")


def file_texts(paths) -> Iterator[str]:
    """The text of `paths` (UTF-8 files), checked one by one as they are read."""
    # A NUL cannot be in a path: the OS call would fail with a ValueError, not a refusal.
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p and "\0" not in p for p in paths):
        raise _refuse("tokenizer_data must be a non-empty list of file paths", code="invalid_tokenizer_data")
    for p in paths:
        yield from _file_chunks(Path(p).expanduser())


def queue_texts(models, model_name: str) -> Iterator[str]:
    """The texts in a model's training-data queue, in the order they were added.

    The one place that reads queue text for tokenizer training (the queue's storage may
    change; this follows it)."""
    row = models.get(model_name)
    folder = models.folder(row) / "queue"
    entries = list(row.queue.where(QueueEntry.status == "ready").order_by(QueueEntry.id))
    if not entries:
        raise _refuse(f"the queue of '{row.model_name}' is empty; add text to it first", code="empty_queue")
    for entry in entries:
        try:
            # Pieces of about a megabyte: a cut inside a word moves at most a few merge counts.
            yield from iter_text(folder / entry.data_path)
        except (OSError, zstandard.ZstdError) as e:
            raise _refuse(f"item {entry.id} of the queue of '{row.model_name}' cannot be read ({e})") from None


def _capped(texts: Iterable[str], limit: int) -> Iterator[str]:
    used = 0
    for text in texts:
        if used >= limit:
            return
        used += len(text.encode("utf-8"))
        yield text


def train_tokenizer(models, vocab_size, tokenizer_data=None, tokenizer_from=None) -> tuple[BPETokenizer, dict]:
    """Train a BPE tokenizer for a new model from files or another model's queue.

    Returns the tokenizer and a description of its data for the model's lineage."""
    if vocab_size is None:
        vocab_size = DEFAULT_VOCAB_SIZE
    try:
        vocab_size = check_vocab_size(vocab_size)
    except TokenizerError as e:
        raise InvalidInput(str(e), code="invalid_vocab_size") from None
    if (tokenizer_data is None) == (tokenizer_from is None):
        raise InvalidInput(
            "a BPE tokenizer is trained on data: give tokenizer_data (file paths) or tokenizer_from "
            "(a model whose queue to use), one of the two",
            code="missing_tokenizer_data",
        )
    if tokenizer_from is not None:
        source = models.get(tokenizer_from)
        texts, detail = queue_texts(models, source.model_name), {"from_queue_of": source.model_name}
    else:
        texts = file_texts(tokenizer_data)
        detail = {"files": [str(Path(p).expanduser()) for p in tokenizer_data]}
    try:
        hf = train_bpe(_capped(texts, MAX_TRAIN_BYTES), vocab_size)
        tok = BPETokenizer.from_hf(hf)
    except TokenizerError as e:
        raise InvalidInput(str(e), code="tokenizer_training_failed") from None
    return tok, {**detail, "vocab_size": tok.vocab_size, "fingerprint": tok.fingerprint}


# ---- browser uploads ----------------------------------------------------------------------


def uploads_dir(root) -> Path:
    return root.path.joinpath(*UPLOADS)


def stage_uploads(root, files: list[tuple[str, object]]) -> dict:
    """Save uploaded files (name, binary stream) in the data root for a tokenizer to train on.

    Returns {"paths": [...], "files": [{"name", "byte_count"}]}; the paths go into
    tokenizer_data. Staged files are removed when a model is created from them, and left
    over ones after a day."""
    if not files:
        raise InvalidInput("send the files as multipart form data under the name 'files'", code="no_files")
    base = uploads_dir(root)
    _prune(base)
    folder = base / uuid.uuid4().hex
    folder.mkdir(parents=True)
    out, total = [], 0
    try:
        for i, (name, stream) in enumerate(files):
            safe = "".join(c if c.isalnum() or c in "._- " else "_" for c in Path(name or "unnamed").name)[:80]
            dest = folder / f"{i:03d}-{safe or 'unnamed'}"
            size = 0
            with open(dest, "wb") as f:
                while block := stream.read(CHUNK):
                    size += len(block)
                    total += len(block)
                    if total > MAX_UPLOAD_BYTES:
                        raise InvalidInput(
                            f"the files are larger than {MAX_UPLOAD_BYTES // 1024**2} MB in all; a tokenizer "
                            "needs far less: pick fewer files", code="upload_too_large")
                    f.write(block)
            out.append({"name": name, "byte_count": size, "path": str(dest)})
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return {"paths": [f["path"] for f in out], "files": [{"name": f["name"], "byte_count": f["byte_count"]} for f in out]}


def release_uploads(root, paths) -> None:
    """Remove the staged folders that `paths` came from (after the model that used them exists)."""
    base = uploads_dir(root).resolve()
    for p in paths or []:
        parent = Path(p).expanduser().resolve().parent
        if parent.parent == base:
            shutil.rmtree(parent, ignore_errors=True)


def _prune(base: Path) -> None:
    if not base.is_dir():
        return
    cutoff = time.time() - STALE_UPLOAD_SECONDS
    for folder in base.iterdir():
        try:
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass


__all__ = [
    "DEFAULT_VOCAB_SIZE", "VOCAB_MAX", "VOCAB_MIN", "file_texts", "queue_texts", "release_uploads",
    "stage_uploads", "train_tokenizer",
]
