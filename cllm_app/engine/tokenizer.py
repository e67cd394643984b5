"""Tokenizers behind one small interface, so BPE can join the byte tokenizer later.

Token ids are uint16 on disk and int32 in batches; `eot` (<|endoftext|>) separates
documents in the training stream.
"""

import codecs
from pathlib import Path
from typing import Protocol

import numpy as np

TOKENIZER_FILE = "tokenizer.json"  # a BPE model's tokenizer, beside its weights


class Tokenizer(Protocol):
    kind: str
    vocab_size: int
    eot: int
    # Names the exact token mapping: token caches live under it, so two models with the
    # same fingerprint can share cached tokens and a changed tokenizer never reads stale ones.
    fingerprint: str

    def encode(self, text: str) -> np.ndarray: ...

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]: ...

    def decode(self, ids) -> str: ...

    def stream_decoder(self) -> "StreamDecoder": ...


class StreamDecoder:
    """Turns tokens into text one at a time; a character split across byte tokens is
    held back until it is complete, so a stream never shows half a character."""

    def __init__(self, to_bytes):
        self._to_bytes = to_bytes
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token: int) -> str:
        return self._utf8.decode(self._to_bytes(token))

    def flush(self) -> str:
        return self._utf8.decode(b"", final=True)


class ByteTokenizer:
    """256 byte tokens plus <|endoftext|> = 256: any text, any language, no training."""

    kind = "byte"
    vocab_size = 257
    eot = 256
    fingerprint = "byte"

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint16)

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        return [self.encode(t) for t in texts]

    def encode_bytes(self, data: bytes) -> np.ndarray:
        return np.frombuffer(data, dtype=np.uint8).astype(np.uint16)

    def _bytes(self, token: int) -> bytes:
        return bytes((token,)) if 0 <= token < 256 else b""

    def decode(self, ids) -> str:
        data = bytes(int(t) for t in ids if 0 <= int(t) < 256)
        return data.decode("utf-8", errors="replace")

    def stream_decoder(self) -> StreamDecoder:
        return StreamDecoder(self._bytes)


def tokenizer_for(kind: str) -> Tokenizer:
    if kind == "byte":
        return ByteTokenizer()
    raise ValueError(f"unknown tokenizer kind '{kind}'")


def load_tokenizer(model_folder: Path, kind: str) -> Tokenizer:
    """The tokenizer of the model kept in `model_folder` (a BPE model keeps its tokenizer.json there)."""
    return tokenizer_for(kind)
