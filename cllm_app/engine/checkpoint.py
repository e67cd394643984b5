"""Checkpoints: the complete training state, written atomically, verified on load.

A checkpoint is a folder `step-NNNNNNNNN/` holding `state.safetensors` (weights and
AdamW moments) and `meta.json` (step, epoch, data position, RNG states, schedule,
config). It only counts once its `DONE` marker, which holds the SHA-256 of both
files, is in place: the folder is written under a temporary name, every file is
fsynced, the marker is written last, and then the folder is renamed. Loading walks
back from the newest checkpoint and skips any that is partial or corrupt.
"""

import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save

from cllm_app.fsutil import fsync_dir, space_needed

log = logging.getLogger(__name__)

_NAME = re.compile(r"^step-(\d{9})$")
STATE, META, DONE = "state.safetensors", "meta.json", "DONE"


@dataclass
class Checkpoint:
    path: Path
    step: int
    tensors: dict[str, np.ndarray]
    meta: dict


def _write(path: Path, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return hashlib.sha256(data).hexdigest()


def save_checkpoint(folder: Path, step: int, tensors: dict[str, np.ndarray], meta: dict, keep: int = 3) -> Path:
    """Write checkpoint `step` into `folder` and keep only the newest `keep`."""
    final = folder / f"step-{step:09d}"
    tmp = folder / f".tmp-{uuid.uuid4().hex}"
    state = save({k: np.ascontiguousarray(v) for k, v in tensors.items()})
    meta_bytes = json.dumps({**meta, "step": step}, sort_keys=True).encode()
    with space_needed(f"the checkpoint of step {step}", folder, len(state) + len(meta_bytes)):
        folder.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        try:
            hashes = {STATE: _write(tmp / STATE, state), META: _write(tmp / META, meta_bytes)}
            _write(tmp / DONE, json.dumps(hashes, sort_keys=True).encode())
            fsync_dir(tmp)
            if final.exists():  # a checkpoint of the same step from a run that was cut short
                shutil.rmtree(final)
            os.replace(tmp, final)
            fsync_dir(folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    for old in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoint folders, oldest first (complete or not)."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and _NAME.match(p.name)]
    return sorted(found, key=lambda p: p.name)


def problem(path: Path) -> str | None:
    """Why checkpoint folder `path` cannot be trusted, or None when its files match their hashes."""
    try:
        expected = json.loads((path / DONE).read_bytes())
    except FileNotFoundError:
        return "it has no DONE marker (it was never finished)"
    except (OSError, ValueError) as e:
        return f"its DONE marker cannot be read ({e})"
    if not isinstance(expected, dict) or set(expected) != {STATE, META}:
        return "its DONE marker does not list state.safetensors and meta.json"
    for name, digest in expected.items():
        try:
            actual = hashlib.sha256((path / name).read_bytes()).hexdigest()
        except OSError as e:
            return f"{name} cannot be read ({e.strerror or e})"
        if actual != digest:
            return f"{name} does not match the hash in its DONE marker"
    return None


def verify(path: Path) -> bool:
    return problem(path) is None


def load_latest(folder: Path, on_skip: Callable[[Path, str], None] | None = None) -> Checkpoint | None:
    """The newest complete checkpoint, skipping partial or corrupt ones; None if there is none.
    Each one skipped is told to `on_skip(path, why)` (and logged), so a person learns which
    checkpoint was damaged and that training went on from the one before it."""
    for path in reversed(list_checkpoints(folder)):
        why = problem(path)
        if why is None:
            try:
                meta = json.loads((path / META).read_bytes())
                return Checkpoint(path=path, step=meta["step"], tensors=load_file(str(path / STATE)), meta=meta)
            except (OSError, ValueError, KeyError, SafetensorError) as e:
                why = f"it cannot be loaded ({e})"
        log.warning("skipped the damaged checkpoint %s: %s", path, why)
        if on_skip is not None:
            on_skip(path, why)
    return None


def clean_partials(folder: Path) -> None:
    """Remove temporary folders left by a write that was killed."""
    if folder.is_dir():
        for p in folder.iterdir():
            if p.is_dir() and p.name.startswith(".tmp-"):
                shutil.rmtree(p, ignore_errors=True)
