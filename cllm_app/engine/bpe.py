"""Byte-level BPE: trained with Hugging Face `tokenizers`, encoded with tiktoken.

The tokenizer is GPT-2's kind: text is split by GPT-2's regex, each piece is turned into
bytes, and merges learned from the person's text join bytes into tokens; <|endoftext|>
is the one special token (the document separator, `eot`). `tokenizer.json` (HF's format)
is the file of record. For speed, encoding goes through a tiktoken `Encoding` built from
the same merges: tiktoken merges the adjacent pair whose joined bytes rank lowest, which is
HF's merge order when every token's id follows the order of the merge that made it. That
is checked when the tokenizer loads (structure, then both encoders on probe text); when
it does not hold, encoding falls back to `tokenizers`, slower but the same tokens.

<|endoftext|> written inside a text is encoded as plain text, never as the separator: only
the data pipeline decides where a document ends, so a web page quoting the string cannot
split a document or inject a boundary.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np

from cllm_app.engine.stream_decoder import StreamDecoder

EOT_TEXT = "<|endoftext|>"
VOCAB_MIN, VOCAB_MAX = 512, 32768
# GPT-2's pre-tokenizer regex, as HF's ByteLevel(use_regex=True) applies it.
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
MIN_TRAIN_BYTES = 1024  # below this no merge is seen twice often enough to mean anything

# Text both encoders must agree on before tiktoken is trusted (the vocabulary's own tokens
# are added to it): scripts, emoji, whitespace of every kind, numbers, contractions.
PROBE_TEXT = (
    "Hello, world! It's 2024-06-01; the price is $3.50 (about €3,20). Don't, won't, we'll, I'd, they've.\n"
    "\n\n\n    indented\tline\r\nwindows line\u00a0no-break\u3000ideographic\u2028\u2029\x85\x0b\x0c end  \n"
    "Ünïcödé façade naïve – “quotes” — ‘single’ … ½ ² Ⅻ ١٢٣ 日本語のテキスト 中文 한국어 русский Ελληνικά עברית\n"
    "emoji 😀👍🏽 👩‍👩‍👧 🇫🇷 ❤️ 12345678901234567890 3.14159 0x1F -42 +7e10\n"
    "def f(x):\n    return x ** 2  # comment\n\n\tif a != b: print('''s''')\n"
    + " " * 64 + "\n" * 8 + "\t" * 5 + "a" * 40 + " " + "ab" * 30 + "\n"
    + "The <|endoftext|> marker here is plain text. <|endoftext|>\n"
)


class TokenizerError(ValueError):
    """A tokenizer that cannot be trained or loaded, with the reason in words."""


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in character for each byte (its byte-level BPE alphabet)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = keep[:]
    n = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(keep, chars, strict=True)}


@lru_cache(maxsize=1)
def _unicode_to_bytes() -> dict[str, int]:
    return {c: b for b, c in bytes_to_unicode().items()}


def token_text_bytes(token: str) -> bytes:
    """The bytes a byte-level token string stands for."""
    table = _unicode_to_bytes()
    try:
        return bytes(table[c] for c in token)
    except KeyError as e:
        raise TokenizerError(f"token {token!r} is not byte-level (character {e.args[0]!r})") from None


# ---- training -------------------------------------------------------------------------------


def _empty_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return tok


def check_vocab_size(vocab_size) -> int:
    """vocab_size for a new BPE tokenizer, or TokenizerError saying the allowed range."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or not VOCAB_MIN <= vocab_size <= VOCAB_MAX:
        raise TokenizerError(f"vocab_size for a BPE tokenizer must be a whole number from {VOCAB_MIN} to {VOCAB_MAX}")
    return vocab_size


def train_bpe(texts: Iterable[str], vocab_size: int):
    """Train a byte-level BPE of `vocab_size` tokens (with <|endoftext|>) on `texts`, streamed.

    Returns a `tokenizers.Tokenizer`. Refuses a size outside 512..32768, and text too small
    to learn that many merges (each merge must be seen at least twice)."""
    from tokenizers import pre_tokenizers, trainers

    vocab_size = check_vocab_size(vocab_size)
    seen = {"bytes": 0, "texts": 0}

    def counted() -> Iterator[str]:
        for text in texts:
            if not isinstance(text, str):
                raise TokenizerError("training texts must be strings")
            seen["bytes"] += len(text.encode("utf-8", errors="surrogatepass"))
            seen["texts"] += 1
            if text.strip():
                yield text

    tok = _empty_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOT_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(counted(), trainer)
    if seen["bytes"] < MIN_TRAIN_BYTES:
        raise TokenizerError(
            f"the training text is {seen['bytes']:,} bytes in {seen['texts']} text(s); a BPE tokenizer "
            f"needs at least {MIN_TRAIN_BYTES:,} bytes, and far more for a large vocabulary"
        )
    got = tok.get_vocab_size()
    if got < vocab_size:
        raise TokenizerError(
            f"the training text ({seen['bytes']:,} bytes) only yields {got:,} tokens, fewer than the "
            f"{vocab_size:,} asked for; give more text or choose vocab_size {max(VOCAB_MIN, got)} or less"
            if got >= VOCAB_MIN
            else f"the training text ({seen['bytes']:,} bytes) only yields {got:,} tokens, fewer than the "
            f"{vocab_size:,} asked for and fewer than the smallest vocabulary ({VOCAB_MIN}); give more text"
        )
    return tok


# ---- loading --------------------------------------------------------------------------------


def _merge_pair(m) -> tuple[str, str]:
    # tokenizers writes merges as ["a", "b"] (0.20+) or "a b" (older files, GPT-2's own).
    if isinstance(m, str):
        a, _, b = m.partition(" ")
        return a, b
    return m[0], m[1]


def _check_structure(data: dict) -> tuple[dict[str, int], list[tuple[str, str]], int]:
    """(vocab, merges, eot) of a byte-level BPE tokenizer.json, or TokenizerError."""
    model = data.get("model") or {}
    if model.get("type") != "BPE":
        raise TokenizerError(f"it holds a '{model.get('type')}' model; only byte-level BPE is supported")
    pre = data.get("pre_tokenizer") or {}
    if pre.get("type") != "ByteLevel" or pre.get("add_prefix_space") or pre.get("use_regex") is False:
        raise TokenizerError("its pre-tokenizer is not GPT-2's byte-level one (ByteLevel with the GPT-2 regex)")
    if data.get("normalizer") is not None:
        raise TokenizerError("it has a normalizer; a byte-level BPE tokenizer keeps text as it is")
    if model.get("dropout") or model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        raise TokenizerError("its BPE uses dropout or word prefixes/suffixes, which byte-level BPE does not")
    vocab = model.get("vocab") or {}
    if EOT_TEXT not in vocab:
        raise TokenizerError(f"it has no {EOT_TEXT} token")
    if not 257 <= len(vocab) <= 65535:
        raise TokenizerError(f"it has {len(vocab):,} tokens; this app handles 257 to 65,535")
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise TokenizerError("its token ids are not 0..N-1")
    for token in vocab:
        if token != EOT_TEXT:
            token_text_bytes(token)
    specials = [t["content"] for t in data.get("added_tokens") or [] if t.get("special")]
    if any(s != EOT_TEXT for s in specials):
        raise TokenizerError(f"it has special tokens other than {EOT_TEXT}: {', '.join(s for s in specials if s != EOT_TEXT)}")
    return vocab, [_merge_pair(m) for m in model.get("merges") or []], vocab[EOT_TEXT]


def _ranks_follow_merges(vocab: dict[str, int], merges: list[tuple[str, str]]) -> bool:
    """Whether tiktoken's rule (lowest-ranked joined token first) is HF's merge order here."""
    made = set()
    last = -1
    for a, b in merges:
        token = vocab.get(a + b)
        if token is None or a not in vocab or b not in vocab or token <= last:
            return False
        if token <= vocab[a] or token <= vocab[b]:
            return False
        made.add(a + b)
        last = token
    singles = {bytes_to_unicode()[b] for b in range(256)}
    if not singles <= vocab.keys():
        return False
    # A token no merge makes would be produced by tiktoken's whole-piece lookup but never by HF.
    return vocab.keys() - singles - {EOT_TEXT} == made


def _probe_texts(vocab: dict[str, int]) -> list[str]:
    """The probe text, each token of the vocabulary alone, and tokens side by side in pairs and
    triples (lines keep every piece short: BPE time grows with the square of a piece's length)."""
    pieces = [token_text_bytes(t).decode("utf-8", errors="replace") for t in vocab if t != EOT_TEXT]
    rng = random.Random(0)
    shuffled = pieces[:]
    rng.shuffle(shuffled)
    pairs = "\n".join(a + b for a, b in zip(shuffled, shuffled[1:] + shuffled[:1], strict=True))
    triples = "\n".join("".join(shuffled[i : i + 3]) for i in range(0, len(shuffled), 3))
    return [PROBE_TEXT, "\n".join(pieces), pairs, triples]


class BPETokenizer:
    """A byte-level BPE tokenizer from a tokenizer.json (see the module docstring)."""

    kind = "bpe"

    def __init__(self, json_text: str):
        from tokenizers import Tokenizer

        try:
            data = json.loads(json_text)
        except ValueError as e:
            raise TokenizerError(f"it is not JSON ({e})") from None
        if not isinstance(data, dict):
            raise TokenizerError("it is not a tokenizer.json object")
        vocab, merges, eot = _check_structure(data)
        try:
            self.hf = Tokenizer.from_str(json_text)
        except Exception as e:  # tokenizers raises a bare Exception for a malformed file
            raise TokenizerError(f"tokenizers cannot read it ({e})") from None
        self.hf.encode_special_tokens = True  # <|endoftext|> in text is plain text (see above)
        self.json_text = json_text
        self.vocab_size = len(vocab)
        self.eot = eot
        table = [b""] * self.vocab_size
        for token, i in vocab.items():
            if i != eot:
                table[i] = token_text_bytes(token)
        self._bytes = table
        canonical = json.dumps(
            {"pattern": GPT2_PATTERN, "vocab": sorted(vocab.items(), key=lambda kv: kv[1]), "merges": merges, "eot": EOT_TEXT},
            ensure_ascii=False, separators=(",", ":"),
        )
        self.fingerprint = f"bpe{self.vocab_size}-{hashlib.sha256(canonical.encode()).hexdigest()[:20]}"
        self.tiktoken = self._tiktoken_if_exact(vocab, merges)

    @classmethod
    def from_file(cls, path: Path) -> BPETokenizer:
        """Load `path` (a tokenizer.json); TokenizerError says why it cannot be used."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TokenizerError(f"{path} is missing") from None
        except (OSError, UnicodeDecodeError) as e:
            raise TokenizerError(f"{path} cannot be read ({e})") from None
        return cls(text)

    @classmethod
    def from_hf(cls, tok) -> BPETokenizer:
        """Wrap a freshly trained `tokenizers.Tokenizer`."""
        return cls(tok.to_str())

    def _tiktoken_if_exact(self, vocab: dict[str, int], merges: list[tuple[str, str]]):
        import tiktoken

        if not _ranks_follow_merges(vocab, merges):
            return None
        ranks = {self._bytes[i]: i for i in range(self.vocab_size) if i != self.eot}
        enc = tiktoken.Encoding(
            f"cllm-{self.fingerprint}", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
            special_tokens={EOT_TEXT: self.eot}, explicit_n_vocab=self.vocab_size,
        )
        for text in _probe_texts(vocab):
            if enc.encode_ordinary(text) != self.hf.encode(text, add_special_tokens=False).ids:
                return None
        return enc

    @property
    def encoder(self) -> str:
        """Which library encodes: "tiktoken" (exact conversion) or "tokenizers" (fallback)."""
        return "tiktoken" if self.tiktoken is not None else "tokenizers"

    def encode(self, text: str) -> np.ndarray:
        if self.tiktoken is not None:
            # disallowed_special=() makes <|endoftext|> in the text ordinary text.
            return self.tiktoken.encode_to_numpy(text, disallowed_special=()).astype(np.uint16)
        return np.array(self.hf.encode(text, add_special_tokens=False).ids, dtype=np.uint16)

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        if self.tiktoken is None:
            return [np.array(e.ids, np.uint16) for e in self.hf.encode_batch(list(texts), add_special_tokens=False)]
        if len(texts) < 2:
            return [self.encode(t) for t in texts]
        return list(_pool().map(self.encode, texts))  # tiktoken lets go of the GIL while it encodes

    def token_bytes(self, token: int) -> bytes:
        return self._bytes[token] if 0 <= token < self.vocab_size else b""

    def decode(self, ids) -> str:
        table, n = self._bytes, self.vocab_size
        return b"".join(table[t] for t in map(int, ids) if 0 <= t < n).decode("utf-8", errors="replace")

    def stream_decoder(self) -> StreamDecoder:
        return StreamDecoder(self.token_bytes)


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="bpe-encode")
