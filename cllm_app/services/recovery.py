"""Starting on a data root that is not as it should be: read-only, or with a damaged store.

A read-only root is refused at start with one plain message. A damaged store has been moved
aside by the store (store/db.py); here the new store learns again, from the model folders,
what they hold: each `models/NAME/` with a readable config.json becomes a model again, with
its weights, checkpoints (its progress is the newest good checkpoint's) and its queue's texts.
What only the old store knew (loss history, jobs, crawls, conversations, settings, the trash's
names) stays in the moved file, which a person can still try to rescue with `sqlite3 .recover`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import uuid
from pathlib import Path

from cllm_app import training_settings
from cllm_app.data.textstore import TEXT_SUFFIX, iter_text
from cllm_app.engine.checkpoint import META, list_checkpoints, problem
from cllm_app.engine.config import GPTConfig
from cllm_app.engine.tokenizer import TOKENIZER_FILE
from cllm_app.errors import CllmError, DataRootUnusable
from cllm_app.paths import DataRoot
from cllm_app.services.names import check_name, name_key
from cllm_app.store import LanguageModel, ModelEvent, QueueEntry, db
from cllm_app.store.db import Damage

log = logging.getLogger(__name__)
_UNWRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}


def check_writable(root: DataRoot) -> None:
    """Refuse a data root that cannot be written, before anything tries to."""
    path = root.path
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{uuid.uuid4().hex}"
        probe.touch()
        probe.unlink()
    except OSError as e:
        if e.errno not in _UNWRITABLE:
            return  # a full disk, say: the app starts, so a person can free space from it
        why = "it is on a read-only disk" if e.errno == errno.EROFS else "this user may not write there"
        raise DataRootUnusable(
            f"the data root {path} cannot be written ({why}): CLLM Studio keeps its models and its store "
            "there. Make it writable (remount the disk read-write, or fix the folder's permissions), or "
            "set CLLM_HOME to a folder you can write, and start again"
        ) from None


def _progress(folder: Path) -> dict:
    """Steps, epochs and tokens trained, from the newest good checkpoint."""
    for path in reversed(list_checkpoints(folder / "checkpoints")):
        if problem(path) is None:
            meta = json.loads((path / META).read_bytes())
            return {"steps_trained": meta["step"], "epochs_trained": meta["epoch"],
                    "tokens_trained": meta["tokens_seen"], "settings": meta.get("settings", {})}
    return {"steps_trained": 0, "epochs_trained": 0, "tokens_trained": 0, "settings": {}}


def _queue(row: LanguageModel, queue_dir: Path) -> int:
    """Queue entries again for the stored texts (their origins were in the old store)."""
    n = 0
    for path in sorted(queue_dir.glob(f"*{TEXT_SUFFIX}")):
        digest, size = hashlib.sha256(), 0
        try:
            for text in iter_text(path):
                data = text.encode("utf-8")
                digest.update(data)
                size += len(data)
        except Exception as e:  # noqa: BLE001 - one unreadable text must not stop the rest
            log.warning("left out %s while recovering the queue: %s", path, e)
            continue
        h = digest.hexdigest()
        if not h.startswith(path.name[: -len(TEXT_SUFFIX)]):
            continue  # not a text this app wrote (or a damaged one): it stays, unlisted
        QueueEntry.create(model=row, source_kind="file", origin=f"recovered: {path.name}", data_path=path.name,
                          content_hash=h, byte_count=size, token_count=0, status="ready")
        n += 1
    return n


def reregister_models(root: DataRoot, damage: Damage) -> list[str]:
    """Models again for the folders under models/; returns their names. Token counts are
    filled in when training next reads the queue."""
    from cllm_app.services.models import CONFIG_FILE, WEIGHTS_FILE

    names = []
    if not root.models_dir.is_dir():
        return names
    for folder in sorted(root.models_dir.iterdir()):
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        try:
            name = check_name(folder.name)
            config = GPTConfig.load(folder / CONFIG_FILE)
            if not (folder / WEIGHTS_FILE).exists():
                raise ValueError("it has no model.safetensors")
            progress = _progress(folder)
        except (CllmError, OSError, ValueError, TypeError, KeyError) as e:
            log.warning("left %s out of the recovered store: %s", folder, getattr(e, "message", e))
            continue
        settings = training_settings.defaults_for(config.block_size)
        settings.update({k: v for k, v in progress.pop("settings").items() if k in settings})
        settings["target_epochs"] = max(settings["target_epochs"], progress["epochs_trained"])
        with db.atomic():
            row = LanguageModel.create(
                model_name=name, name_key=name_key(name),
                tokenizer="bpe" if (folder / TOKENIZER_FILE).exists() else "byte",
                **config.to_dict(), **settings, **progress,
            )
            items = _queue(row, folder / "queue")
            ModelEvent.create(model=row, kind="recovered", detail=json.dumps(
                {"damaged_store": damage.moved_to.name, "queue_items": items}))
        names.append(name)
    return names


def damaged_store_notice(root: DataRoot, damage: Damage, names: list[str]) -> str:
    """What happened, in one paragraph, for the CLI's stderr and the log."""
    models = ", ".join(f"'{n}'" for n in names) if names else "none"
    return (
        f"the store {root.db_path} was damaged ({damage.reason}). It was moved aside as "
        f"{damage.moved_to} (nothing was deleted) and a new store was started. The models found in "
        f"{root.models_dir} are back with their weights, checkpoints and training texts: {models}. "
        "Their loss history, jobs, crawls, conversations and settings were only in the old store, and "
        f"models in the trash stay in {root.trash_dir} without their names; "
        f"to try to rescue them: sqlite3 {damage.moved_to} .recover | sqlite3 rescued.db"
    )


def write_notice(root: DataRoot, text: str) -> Path:
    logs = root.path / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    path = logs / "store-recovered.txt"
    with open(path, "a", encoding="utf-8") as f:
        f.write(text + "\n")
        f.flush()
        os.fsync(f.fileno())
    return path
