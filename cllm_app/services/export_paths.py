"""Where an export writes: the file name it gives a model, and the temporary file a killed
export leaves behind. Apart from services/exports.py so that a job's end (services/ingest.py's
discard_leftovers, reached from the store's orphan checks) can clean up without importing
the export machinery, which imports the model services in turn."""

import re
from glob import escape as glob_escape
from pathlib import Path


def slug(name: str) -> str:
    """A file and Ollama model name: Ollama takes lowercase letters, digits, '-', '_' and '.'."""
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-.") or "model"


def discard_partial(params: dict) -> None:
    """An export whose process was killed mid-write leaves its temporary GGUF: it goes."""
    target = Path(params.get("path") or "")
    if params.get("format") == "ollama":
        target = target / f"{slug(params.get('model_name', ''))}.gguf"
    if target.parent.is_dir():
        for tmp in target.parent.glob(f".{glob_escape(target.name)}.tmp-*"):
            tmp.unlink(missing_ok=True)
