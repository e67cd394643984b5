"""Training bundles: one folder with a model, its newest checkpoint, its data as token shards and
a PyTorch training script, that trains on any machine or cluster (torchrun) with nothing of
ours installed; and the way back, which puts what it learned into the same model.

The script is bundle_kit/train.py, and the code it runs is ours, copied into the bundle when it
is made (the modules the trainer needs, found by their imports), so the bundle trains with the
same data order, split, plan and checkpoints as the app.
"""

import ast
import hashlib
import json
import os
import shutil
import uuid
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from cllm_app import __version__, training_settings
from cllm_app.engine.checkpoint import DONE, list_checkpoints, load_latest, verify
from cllm_app.engine.token_shards import dtype_for, write_documents
from cllm_app.engine.tokenizer import load_tokenizer
from cllm_app.engine.trainer import TrainSettings, split_documents
from cllm_app.engine.weights import save_weights
from cllm_app.errors import Conflict, InvalidInput, NotFound
from cllm_app.fsutil import fsync_dir
from cllm_app.services.models import WEIGHTS_FILE, changing
from cllm_app.store import LanguageModel, LossPoint, ModelEvent, db
from cllm_app.store.schema import iso, utcnow

PACKAGE = Path(__file__).resolve().parent.parent  # cllm_app/
KIT = PACKAGE / "bundle_kit"
# What train.py imports of ours; the modules these import come along too.
ENTRY_MODULES = ("engine/trainer.py", "engine/torch_numerics.py", "engine/token_shards.py")
FORMAT = 1
KEEP_CHECKPOINTS = 3


def code_for_bundle() -> list[Path]:
    """Our modules the bundle's training needs (paths inside cllm_app/), with their packages'
    __init__.py: the entry modules and everything of ours they import, transitively."""
    todo, found = [PACKAGE / m for m in ENTRY_MODULES], set()
    while todo:
        path = todo.pop()
        if path in found:
            continue
        found.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                # `from cllm_app.engine import memory` imports a module by the second name
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            for name in names:
                if name == "cllm_app" or name.startswith("cllm_app."):
                    parts = name.split(".")[1:]
                    module = PACKAGE.joinpath(*parts)
                    if module.is_dir():
                        todo.append(module / "__init__.py")
                    elif module.with_suffix(".py").is_file():  # else a name defined in a module
                        todo.append(module.with_suffix(".py"))
    for path in list(found):
        for parent in path.relative_to(PACKAGE).parents:
            found.add(PACKAGE / parent / "__init__.py")
    return sorted(p.relative_to(PACKAGE) for p in found)


def _checkpoint_id(folder: Path) -> dict:
    """The newest whole checkpoint of a model: its step and the SHA-256 of its DONE marker."""
    for path in reversed(list_checkpoints(folder)):
        if verify(path):
            return {"step": int(path.name.split("-")[1]), "done": hashlib.sha256((path / DONE).read_bytes()).hexdigest()}
    return {"step": 0, "done": None}


def _copy_tree(source: Path, target: Path) -> None:
    """Copy a folder under a temporary name, fsync it, then rename it into place."""
    tmp = target.parent / f".tmp-{uuid.uuid4().hex}"
    shutil.copytree(source, tmp)
    for p in tmp.iterdir():
        with open(p, "rb") as f:
            os.fsync(f.fileno())
    fsync_dir(tmp)
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    fsync_dir(target.parent)


class Bundles:
    def __init__(self, models, training):
        self.models, self.training = models, training

    # ---- out --------------------------------------------------------------------------------

    def export(self, model_name: str, path: str) -> dict:
        """Write model NAME's training bundle into the folder `path` (new, or empty)."""
        target = _folder(path, "the folder to write the bundle into")
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise Conflict(f"{target} already exists and is not an empty folder: choose a new one", code="bundle_exists")
        if not target.parent.is_dir():
            raise InvalidInput(f"the folder {target.parent} does not exist", code="invalid_path")
        with changing:  # no training starts while its checkpoint is read
            row = self.models.get(model_name)
            self.models.refuse_if_busy(row, "bundle")
            folder = self.models.folder(row)
            docs = self.training.documents(row)
            if not docs:
                raise InvalidInput(f"the training-data queue of '{row.model_name}' is empty: add text first",
                                   code="empty_queue")
            staging = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:8]}"
            try:
                bundle = self._write(row, folder, docs, staging, target)
                if target.exists():
                    target.rmdir()
                os.replace(staging, target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        return {"path": str(target), "model_name": row.model_name, "start_step": bundle["start"]["step"],
                "tokens": bundle["tokens"], "documents": len(docs)}

    def _write(self, row, folder: Path, docs, staging: Path, target: Path) -> dict:
        """Fill `staging` with the bundle; returns its bundle.json."""
        config = self.models.config_of(row)
        (staging / "model").mkdir(parents=True)
        shutil.copy2(folder / "config.json", staging / "model" / "config.json")
        shutil.copy2(folder / WEIGHTS_FILE, staging / "model" / "model.safetensors")
        start = _checkpoint_id(folder / "checkpoints")
        (staging / "checkpoints").mkdir()
        if start["done"] is not None:
            name = f"step-{start['step']:09d}"
            shutil.copytree(folder / "checkpoints" / name, staging / "checkpoints" / name)
        train, val = split_documents(docs, row.validation_split, row.validation_share)
        write_documents(staging / "data", config.vocab_size, {"train": train, "val": val})
        tokens = sum(int(d.tokens.size) for d in docs)
        settings = TrainSettings(**{n: getattr(row, n) for n in training_settings.NAMES})
        bundle = {
            "format": FORMAT,
            "made_by": f"CLLM Studio {__version__}",
            "made_at": iso(utcnow()),
            "model": {"id": row.id, "created_at": iso(row.created_at), "name": row.model_name},
            "config": config.to_dict(),
            "settings": asdict(settings),
            "eot": load_tokenizer(folder, row.tokenizer).eot,
            "start": start,
            "tokens": tokens,
        }
        (staging / "bundle.json").write_text(json.dumps(bundle, indent=1))
        for rel in code_for_bundle():
            (staging / "cllm_app" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PACKAGE / rel, staging / "cllm_app" / rel)
        shutil.copy2(KIT / "train.py", staging / "train.py")
        shutil.copy2(KIT / "launch.sh", staging / "launch.sh")
        os.chmod(staging / "launch.sh", 0o755)
        readme = (KIT / "README.md").read_text().format(
            model_name=row.model_name, version=__version__, made_at=bundle["made_at"], start_step=start["step"],
            epochs_trained=row.epochs_trained, target_epochs=row.target_epochs, batch_size=row.batch_size,
            path=target, tokens=f"{tokens:,}", dtype=dtype_for(config.vocab_size).name)
        (staging / "README.md").write_text(readme)
        return bundle

    # ---- back -------------------------------------------------------------------------------

    def import_(self, path: str, model_name: str | None = None) -> dict:
        """Bring a bundle's training back into its model: the newest checkpoint, the weights,
        epochs, steps, tokens, every step's loss, and a lineage event."""
        source = _folder(path, "the bundle's folder")
        try:
            bundle = json.loads((source / "bundle.json").read_text())
            made_from = bundle["model"]
            start = bundle["start"]
        except (OSError, ValueError, KeyError, TypeError):
            raise InvalidInput(f"{source} holds no readable bundle.json: it is not a CLLM Studio training bundle",
                               code="not_a_bundle") from None
        with changing:
            if model_name is not None:
                row = self.models.get(model_name)
            else:
                row = LanguageModel.get_or_none(LanguageModel.id == made_from["id"])
                if row is None:
                    raise NotFound(f"the model this bundle was made from ('{made_from['name']}') is no longer here",
                                   code="model_not_found")
            if row.id != made_from["id"] or iso(row.created_at) != made_from["created_at"]:
                raise Conflict(f"this bundle was made from the model '{made_from['name']}', not from "
                               f"'{row.model_name}': it is not merged into another model", code="bundle_other_model")
            self.models.refuse_if_busy(row, "import a bundle into")
            folder = self.models.folder(row)
            now = _checkpoint_id(folder / "checkpoints")
            if now != start or self.models.config_of(row).to_dict() != bundle["config"]:
                raise Conflict(
                    f"'{row.model_name}' has changed since this bundle was made (it is at step {now['step']} here; "
                    f"the bundle started from step {start['step']}): importing it would throw away what changed. "
                    "Make a new bundle", code="bundle_outdated")
            newest = load_latest(source / "checkpoints")
            if newest is None or newest.step <= start["step"]:
                raise InvalidInput(f"the bundle holds no training beyond step {start['step']}: run its launch.sh first",
                                   code="bundle_untrained")
            history = self._history(source, start["step"], newest.step)
            runs = [json.loads(line) for line in _lines(source / "runs.jsonl")]
            runs = [r for r in runs if r.get("ended_at", 0) > start["step"]] or [{}]
            _copy_tree(newest.path, folder / "checkpoints" / newest.path.name)
            for old in list_checkpoints(folder / "checkpoints")[:-KEEP_CHECKPOINTS]:
                shutil.rmtree(old, ignore_errors=True)
            params = {k[len("param."):]: v for k, v in newest.tensors.items() if k.startswith("param.")}
            save_weights(folder / WEIGHTS_FILE, params)
            meta = newest.meta
            processes = max(int(r.get("processes", 1)) for r in runs)
            device = runs[-1].get("device", "unknown device")
            with db.atomic():
                LossPoint.delete().where((LossPoint.model == row) & (LossPoint.step > start["step"])).execute()
                for point in history:
                    LossPoint.create(model=row, **point)
                LanguageModel.update(steps_trained=meta["step"], tokens_trained=meta["tokens_seen"],
                                     epochs_trained=meta["epoch"], updated_at=utcnow()).where(
                    LanguageModel.id == row.id).execute()
                ModelEvent.create(model=row, kind="trained_outside", detail=json.dumps({
                    "processes": processes, "device": device, "from_step": start["step"], "to_step": meta["step"],
                    "bundle": str(source), "step": start["step"],
                    "summary": f"trained outside the app ({processes} process{'es' if processes > 1 else ''}, {device})",
                }))
        return {**self.models.describe(LanguageModel.get_by_id(row.id)),
                "imported": {"from_step": start["step"], "to_step": meta["step"], "points": len(history),
                             "processes": processes, "device": device}}

    @staticmethod
    def _history(source: Path, after: int, upto: int) -> list[dict]:
        """The loss points a bundle's runs wrote for steps (after, upto], val losses merged in."""
        points: dict[int, dict] = {}
        for line in _lines(source / "history.jsonl"):
            r = json.loads(line)
            step = r.get("step")
            if not isinstance(step, int) or not after < step <= upto:
                continue
            when = _stored_time(r.get("time"))
            if "train_loss" in r:
                points[step] = {"step": step, "epoch": r["epoch"], "train_loss": r["train_loss"],
                                "learning_rate": r["learning_rate"], "tokens_per_sec": r["tokens_per_sec"],
                                "created_at": when, "val_loss": None}
            elif "val_loss" in r and step in points:
                points[step]["val_loss"] = r["val_loss"]
        return [points[s] for s in sorted(points)]


def _folder(path, what: str) -> Path:
    """A folder named by its full path (a relative one would mean the server's working folder)."""
    if not isinstance(path, str) or not path.strip() or "\0" in path:
        raise InvalidInput(f"give {what} as a full path", code="invalid_path")
    folder = Path(path.strip()).expanduser()
    if not folder.is_absolute():
        raise InvalidInput(f"give {what} as a full path, not {path!r}", code="invalid_path")
    try:
        return folder.resolve()
    except (OSError, RuntimeError, ValueError) as e:
        raise InvalidInput(f"{path!r} is not a usable folder ({e})", code="invalid_path") from None


def _stored_time(text) -> datetime:
    """A history line's time as the store keeps times (naive UTC); now when it has none."""
    try:
        when = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return utcnow()
    return when.astimezone(timezone.utc).replace(tzinfo=None) if when.tzinfo else when


def _lines(path: Path) -> list[str]:
    try:
        return [line for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []
