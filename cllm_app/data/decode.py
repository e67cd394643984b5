"""Bytes of unknown encoding to text, or a refusal with the reason.

The encoding is decided once from the file's first megabyte: a BOM, else strict UTF-8, else
charset-normalizer's best guess. Binary files are recognised by their signature, NUL bytes
or control characters, so a picture never reaches the model as text; and a guessed encoding
whose reading is still noise (random bytes read as a code page) is refused, not kept as
mojibake.
"""

import codecs
import re
import unicodedata
from collections.abc import Iterator
from itertools import pairwise
from typing import BinaryIO

from cllm_app.data import Empty, Refused
from cllm_app.data import limits as _limits

SAMPLE_BYTES = 1 << 20

_BOMS = (  # UTF-32's BOMs first: UTF-32 LE's starts with UTF-16 LE's
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"PK\x03\x04", "a ZIP container (an Office document or an archive not named .zip)"),
    (b"\x7fELF", "a program"),
    (b"\x1f\x8b", "a gzip-compressed file"),
    (b"(\xb5/\xfd", "a zstd-compressed file"),
    (b"BZh", "a bzip2-compressed file"),
    (b"\xfd7zXZ\x00", "an xz-compressed file"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"OggS", "an Ogg audio file"),
    (b"ID3", "an MP3 audio file"),
    (b"fLaC", "a FLAC audio file"),
    (b"\x00\x00\x01\x00", "an icon"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Office document"),
)

# Control bytes that text does not hold (tab, newlines, form feed and ESC are fine).
_TEXT_CONTROLS = {9, 10, 11, 12, 13, 27}
_NOT_CONTROL = bytes(b for b in range(256) if b >= 32 or b in _TEXT_CONTROLS)


def signature(head: bytes) -> str | None:
    """What a binary file is, from its first bytes, or None."""
    for magic, what in SIGNATURES:
        if head.startswith(magic):
            return what
    if head[:4] == b"RIFF" and head[8:12] in (b"WAVE", b"AVI ", b"WEBP"):
        return "a media file"
    return None


def _utf16_without_bom(sample: bytes) -> str | None:
    """UTF-16 text without a BOM has NUL as every other byte (for Latin text)."""
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    codec = None
    if odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.05 * len(even):
        codec = "utf-16-le"
    elif even.count(0) > 0.4 * len(even) and odd.count(0) < 0.05 * len(odd):
        codec = "utf-16-be"
    if codec is None:
        return None
    text = sample[: len(sample) // 2 * 2].decode(codec, errors="replace")
    readable = sum(c.isprintable() or c in "\t\n\r\f" for c in text)
    return codec if readable >= 0.95 * len(text) else None  # NULs in a pattern, but not text


# Windows-1252's typography: curly quotes, guillemets, dashes, ellipsis, euro, no-break space.
_WESTERN_MARKS = set("‘’‚“”„«»‹›–—…€¿¡•°\u00a0")


def _western(sample: bytes) -> bool:
    """Mostly ASCII with accented letters and typography here and there: Windows-1252 (a
    superset of Latin-1 for text), the most common legacy encoding, which charset-normalizer
    often mistakes for a Baltic or Central European code page on short samples."""
    try:
        text = sample.decode("cp1252")
    except UnicodeDecodeError:
        return False
    high = [c for c in text if ord(c) > 127]
    if not high or len(high) > 0.3 * len(text):
        return False
    return sum(c.isalpha() or c in _WESTERN_MARKS for c in high) >= 0.9 * len(high)


NOT_TEXT = "it is not readable as text in any encoding"
NOISE_SHARE = 0.2  # of its non-ASCII characters out of place, a reading is noise (text: ~0, noise: 0.3-0.7)
NOISE_MIN_CHARS = 16  # fewer non-ASCII characters than this are too few to judge
NOISE_SAMPLE_BYTES = 1 << 16  # plenty to judge by; the judge runs in Python, character by character
_SCRIPT_ALIASES = {
    "HIRAGANA": "CJK", "KATAKANA": "CJK", "KATAKANA-HIRAGANA": "CJK", "HALFWIDTH": "CJK", "FULLWIDTH": "CJK",
    "IDEOGRAPHIC": "CJK", "HANGUL": "CJK", "MICRO": "LATIN", "FEMININE": "LATIN", "MASCULINE": "LATIN",
}
_MIXED_OK = {frozenset({"LATIN", "CJK"})}  # Japanese and Chinese run Latin words into their own
_SYMBOLS = set("€£¥¢₽₹₩°©®™§±×÷№★☆■□◆◇○●◎△▲▽▼〒♪→←↑↓")
_LETTERS = re.compile(r"[^\W\d_]+")


def _script(c: str) -> str:
    first = unicodedata.name(c, "?").split(" ", 1)[0]
    return _SCRIPT_ALIASES.get(first, first)


def _odd_word(word: str) -> bool:
    """A run of letters no language writes: scripts mixed, or case flipping inside it. Only
    non-ASCII letters count for case, so ASCII camelCase (code) is no sign of noise."""
    scripts = {_script(c) for c in word}
    if len(scripts) > 1 and frozenset(scripts) not in _MIXED_OK:
        return True
    if any(a.islower() and b.isupper() and (a > "\x7f" or b > "\x7f") for a, b in pairwise(word)):
        return True
    inner = {c.isupper() for c in word[1:] if c > "\x7f" and (c.isupper() or c.islower())}
    return len(inner) > 1


def noise_share(text: str) -> float | None:
    """The share of the non-ASCII characters of `text` that no text would hold where they stand
    (controls, stray symbols, letters in odd words); None when there are too few to judge.
    A right reading of real text scores about 0; random bytes read in a code page 0.3 or more."""
    high = [i for i, c in enumerate(text) if c > "\x7f"]
    if len(high) < NOISE_MIN_CHARS:
        return None
    odd = set()
    for m in _LETTERS.finditer(text):
        if max(m.group()) > "\x7f" and _odd_word(m.group()):
            odd.update(range(m.start(), m.end()))
    bad = sum(
        1 for i in high
        if i in odd or not (unicodedata.category(text[i])[0] in "LMPZ" or unicodedata.category(text[i]) == "No"
                            or text[i] in _SYMBOLS)
    )
    return bad / len(high)


def _readable(sample: bytes, codec: str) -> str:
    """`codec`, unless reading `sample` in it gives noise."""
    share = noise_share(codecs.getincrementaldecoder(codec)("replace").decode(sample[:NOISE_SAMPLE_BYTES]))
    if share is not None and share > NOISE_SHARE:
        raise Refused(f"{NOT_TEXT}: read as {codec}, its best guess, {share:.0%} of its non-ASCII characters are "
                      "noise; if it is text, save it as UTF-8 and add it again")
    return codec


def detect(sample: bytes, at_eof: bool) -> str:
    """The codec name for a file starting with `sample`; `at_eof`: the sample is the whole file."""
    if not sample:
        raise Empty("it is empty")
    for bom, codec in _BOMS:
        if sample.startswith(bom):
            return codec
    what = signature(sample)
    if what:
        raise Refused(f"it is {what}, not text")
    if b"\x00" in sample:
        codec = _utf16_without_bom(sample)
        if codec:
            return _readable(sample, codec)
        raise Refused("it looks binary (it contains NUL bytes), not text")
    controls = len(sample.translate(None, _NOT_CONTROL))
    if controls > max(2, len(sample) // 100):
        raise Refused(f"it looks binary ({controls:,} control characters in its first {len(sample):,} bytes), not text")
    try:
        codecs.getincrementaldecoder("utf-8")("strict").decode(sample, final=at_eof)
        return "utf-8"
    except UnicodeDecodeError as e:
        if at_eof and e.end == len(sample) and "unexpected end" in e.reason:
            raise Refused("it ends in the middle of a UTF-8 character (the file looks cut short)") from None
    if _western(sample):
        return _readable(sample, "cp1252")
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best()
    if best is None:
        raise Refused(f"{NOT_TEXT} (no encoding reads it without errors); if it is text, save it as UTF-8 and "
                      "add it again")
    return _readable(sample, best.encoding)


class Utf8Text(str):
    """Text read from UTF-8 that keeps the exact bytes it came from (`raw`), so storing it
    needs no encoding back: re-encoding was a fifth of a byte-level ingest's time."""

    raw: bytes


def decoded_chunks(
    stream: BinaryIO, head: bytes = b"", on_bytes=None, chunk: int | None = None
) -> Iterator[str]:
    """Text chunks of a binary stream whose first bytes (`head`) were already read.

    Raises Refused for an undecodable or oversized file; `on_bytes(n)` counts raw bytes read."""
    chunk = chunk or _limits.CHUNK
    sample = head
    while len(sample) < SAMPLE_BYTES:
        more = stream.read(SAMPLE_BYTES - len(sample))
        if not more:
            break
        sample += more
    at_eof = len(sample) < SAMPLE_BYTES
    codec = detect(sample, at_eof)
    decoder = codecs.getincrementaldecoder(codec)("strict")
    utf8 = codec == "utf-8"
    done = 0
    data = sample
    while True:
        if data:
            if on_bytes:
                on_bytes(len(data))
            if done + len(data) > _limits.MAX_FILE_BYTES:
                raise Refused(
                    f"it is larger than {_limits.MAX_FILE_BYTES / 1024**3:g} GB; split it into smaller files"
                )
            held = decoder.getstate()[0] if utf8 else b""
            try:
                text = decoder.decode(data)
            except UnicodeDecodeError as e:
                raise Refused(
                    f"it is not consistently {codec}: byte {done + e.start:,} cannot be read in that encoding"
                ) from None
            done += len(data)
            if text and utf8:
                still_held = len(decoder.getstate()[0])
                raw = data if not held and not still_held else (held + data)[: len(held) + len(data) - still_held]
                text = Utf8Text(text)
                text.raw = raw
            if text:
                yield text
        data = stream.read(chunk)
        if not data:
            break
    try:
        tail = decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise Refused(f"it ends in the middle of a {codec} character (the file looks cut short)") from None
    if tail:
        yield tail
