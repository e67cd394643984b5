"""Tokenizers behind one small interface: the byte tokenizer (the default) and byte-level BPE
(engine/bpe.py), whose tokenizer.json lives in the model's folder.

Token ids are uint16 on disk and int32 in batches; `eot` (<|endoftext|>) separates
documents in the training stream.
"""

from pathlib import Path
from typing import Protocol

import numpy as np

from cllm_app.engine.bpe import BPETokenizer, TokenizerError
from cllm_app.engine.stream_decoder import StreamDecoder

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


TOKENIZER_KINDS = ("byte", "bpe")


def tokenizer_for(kind: str) -> Tokenizer:
    """A tokenizer that needs no file (only the byte tokenizer)."""
    if kind == "byte":
        return ByteTokenizer()
    raise ValueError(f"unknown tokenizer kind '{kind}'")


def load_tokenizer(model_folder: Path, kind: str) -> Tokenizer:
    """The tokenizer of the model kept in `model_folder` (a BPE model keeps its tokenizer.json there)."""
    if kind == "bpe":
        return _load_bpe(Path(model_folder) / TOKENIZER_FILE)
    return tokenizer_for(kind)


_cache: dict[tuple[str, int, int], Tokenizer] = {}


def _load_bpe(path: Path) -> Tokenizer:
    """Loading checks the tiktoken conversion (a fraction of a second), so a loaded tokenizer is
    kept while its file is unchanged: generation and ingestion load it again and again."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise TokenizerError(f"{path} is missing: this BPE model has lost its tokenizer") from None
    key = (str(path), st.st_mtime_ns, st.st_size)
    tok = _cache.get(key)
    if tok is None:
        tok = BPETokenizer.from_file(path)
        if len(_cache) > 8:
            _cache.clear()
        _cache[key] = tok
    return tok
