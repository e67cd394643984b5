"""Token shards: a model's training documents as plain binary files, for a training bundle.

A shard is a 64-byte header, then the tokens, little-endian:

    offset  size  field
    0       8     magic: the bytes b"CLLMTOKS"
    8       4     version: 1 (uint32)
    12      4     bytes per token: 2 (uint16, when every id of the vocabulary fits) or 4 (uint32)
    16      8     token count (uint64)
    24      40    zero

Where each document starts and ends, with its id and its key (the key decides the validation
split), is in index.json beside the shards, so any program can read the tokens with one
`numpy.fromfile(path, dtype, offset=64)`.
"""

import json
import struct
from pathlib import Path

import numpy as np

MAGIC = b"CLLMTOKS"
VERSION = 1
HEADER = struct.Struct("<8sIIQ40x")
INDEX = "index.json"
SHARD_TOKENS = 100_000_000  # tokens per shard at most (200 MB of uint16)


def dtype_for(vocab_size: int) -> np.dtype:
    return np.dtype("<u2") if vocab_size <= 2**16 else np.dtype("<u4")


def write_shard(path: Path, tokens: np.ndarray, dtype: np.dtype) -> None:
    with open(path, "wb") as f:
        f.write(HEADER.pack(MAGIC, VERSION, dtype.itemsize, tokens.size))
        f.write(np.ascontiguousarray(tokens, dtype=dtype).tobytes())


def read_shard(path: Path) -> np.ndarray:
    """The tokens of one shard (memory-mapped), after checking its header."""
    with open(path, "rb") as f:
        head = f.read(HEADER.size)
    if len(head) < HEADER.size:
        raise ValueError(f"{path.name} is shorter than a token shard's header")
    magic, version, itemsize, count = HEADER.unpack(head)
    if magic != MAGIC:
        raise ValueError(f"{path.name} is not a token shard (its magic number is {magic!r})")
    if version != VERSION or itemsize not in (2, 4):
        raise ValueError(f"{path.name} is a token shard of version {version} with {itemsize}-byte tokens, "
                         f"this reader knows version {VERSION} with 2 or 4")
    tokens = np.memmap(path, dtype=np.dtype(f"<u{itemsize}"), mode="r", offset=HEADER.size)
    if tokens.size != count:
        raise ValueError(f"{path.name} says it holds {count:,} tokens but holds {tokens.size:,}")
    return tokens


def _parts(docs: list) -> list[list]:
    """The documents in runs of at most SHARD_TOKENS tokens (a longer document is a run alone)."""
    parts, size = [[]], 0
    for d in docs:
        if parts[-1] and size + d.tokens.size > SHARD_TOKENS:
            parts.append([])
            size = 0
        parts[-1].append(d)
        size += int(d.tokens.size)
    return [p for p in parts if p]


def write_documents(folder: Path, vocab_size: int, groups: dict[str, list]) -> dict:
    """Write `groups` ({"train": [Document], "val": [...]}) as shards in `folder`, and index.json."""
    folder.mkdir(parents=True, exist_ok=True)
    dtype = dtype_for(vocab_size)
    index = {"format": "cllm-token-shards", "version": VERSION, "dtype": dtype.name, "shards": []}
    for group, docs in groups.items():
        for n, part in enumerate(_parts(docs)):
            name = f"{group}-{n:03d}.bin"
            write_shard(folder / name, np.concatenate([d.tokens for d in part]), dtype)
            entries, offset = [], 0
            for d in part:
                entries.append({"doc_id": d.doc_id, "key": d.key, "offset": offset, "tokens": int(d.tokens.size),
                                **({"holdout": True} if getattr(d, "holdout", False) else {})})
                offset += int(d.tokens.size)
            index["shards"].append({"file": name, "split": group, "tokens": offset, "documents": entries})
    (folder / INDEX).write_text(json.dumps(index, indent=1))
    return index


def read_documents(folder: Path) -> list[tuple[int, str, np.ndarray]]:
    """Every document of the shards in `folder`: (doc_id, key, tokens as int32). A document
    whose head is in "train" and tail in "val" comes back whole, its parts joined in order."""
    index = json.loads((folder / INDEX).read_text())
    parts: dict[int, list] = {}
    keys: dict[int, str] = {}
    for shard in index["shards"]:
        tokens = read_shard(folder / shard["file"])
        for d in shard["documents"]:
            keys.setdefault(d["doc_id"], d["key"])
            parts.setdefault(d["doc_id"], []).append(np.asarray(tokens[d["offset"] : d["offset"] + d["tokens"]], np.int32))
    return [(i, keys[i], p[0] if len(p) == 1 else np.concatenate(p)) for i, p in parts.items()]


def held_out_ids(folder: Path) -> set[int]:
    """The documents a person marked as validation."""
    index = json.loads((folder / INDEX).read_text())
    return {d["doc_id"] for shard in index["shards"] for d in shard["documents"] if d.get("holdout")}
