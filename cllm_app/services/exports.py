"""Exports: a model leaves the app as a Hugging Face folder, a GGUF file (llama.cpp, LM Studio)
or an Ollama folder (the GGUF, a Modelfile), each with a model card (services/model_card.py).

The window submits an "export" job (jobs/export.py: progress, Stop); the CLI exports in its
own process. Both come here. An export never changes the model: it reads the weights file
once (training replaces that file whole at each checkpoint, so a read is one checkpoint,
never a mix) and names the checkpoint it read. Each file is written under a temporary name,
fsynced and renamed into place; a refused or stopped export leaves the target as it was.
"""

from __future__ import annotations

import os
import shlex
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from cllm_app.engine.config import GPTConfig
from cllm_app.engine.gguf_export import DTYPES
from cllm_app.engine.tokenizer import TOKENIZER_FILE, load_tokenizer
from cllm_app.engine.weights import read_weights
from cllm_app.errors import Conflict, InvalidInput, disk_full, free_bytes
from cllm_app.fsutil import atomic_write_bytes, fsync_dir, space_needed
from cllm_app.services.export_paths import slug as _slug
from cllm_app.services.model_card import model_card, run_prompt

FORMATS = ("gguf", "ollama", "hf")
FORMAT_LABELS = {
    "gguf": "GGUF (llama.cpp, Ollama, LM Studio)",
    "ollama": "Ollama folder (GGUF and Modelfile)",
    "hf": "Hugging Face folder",
}

Progress = Callable[[float, str], None]


class ExportStopped(Exception):
    """A Stop asked for while exporting: the target is left as it was."""


def _full_path(path) -> Path:
    if not isinstance(path, str) or not path.strip():
        raise InvalidInput("give the file or folder to export to", code="invalid_path")
    target = Path(os.path.expanduser(path.strip()))
    if not target.is_absolute():
        raise InvalidInput(f"give a full path (from the root of a disk), not {path!r}", code="invalid_path")
    return target


def formats() -> list[dict]:
    """What the Export menu offers: each format, its types, and whether it writes a file or a folder."""
    return [{"format": f, "label": FORMAT_LABELS[f], "dtypes": ["f32"] if f == "hf" else list(DTYPES),
             "writes": "file or folder" if f == "gguf" else "folder"} for f in FORMATS]


class Exports:
    def __init__(self, models, chat, jobs):
        self.models = models
        self.chat = chat  # the model's sampling settings go into an Ollama Modelfile
        self.jobs = jobs

    def submit(self, model_name: str, fmt, path, dtype="f32", overwrite=False) -> dict:
        """Check the request and queue the export job (jobs/export.py) that writes it."""
        return self.jobs.submit("export", model_name, self.check(model_name, fmt, path, dtype, overwrite))

    # ---- checking a request (the API answers 400/409 before any job starts) ------------------

    def check(self, model_name: str, fmt, path, dtype="f32", overwrite=False) -> dict:
        """The request made plain: {model_name, format, dtype, path (the file or folder written),
        overwrite}. Refuses what could not be written, before anything is."""
        row = self.models.get(model_name)
        if fmt not in FORMATS:
            raise InvalidInput(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}", code="invalid_format")
        if fmt == "hf":
            dtype = "f32"
        if dtype not in DTYPES:
            raise InvalidInput(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}", code="invalid_dtype")
        if not isinstance(overwrite, bool):
            raise InvalidInput("overwrite must be true or false", code="invalid_overwrite")
        target = _full_path(path)
        if fmt == "gguf":
            if target.is_dir():
                target = target / f"{_slug(row.model_name)}-{dtype}.gguf"
            elif target.suffix.lower() != ".gguf":
                raise InvalidInput(f"{target} is neither a folder nor a .gguf file", code="invalid_path")
            if not target.parent.is_dir():
                raise InvalidInput(f"the folder {target.parent} does not exist", code="invalid_path")
            taken = [p for p in (target, _card_beside(target)) if p.exists()]
            if taken and not overwrite:
                raise Conflict(f"{taken[0]} already exists; choose another file or overwrite it", code="file_exists")
        else:
            if target.exists() and not target.is_dir():
                raise InvalidInput(f"{target} is a file; give a folder", code="invalid_path")
            if not target.parent.is_dir():
                raise InvalidInput(f"the folder {target.parent} does not exist", code="invalid_path")
            if target.is_dir() and any(target.iterdir()) and not (overwrite and fmt == "ollama"):
                hint = "choose a new or empty folder" + (", or overwrite it" if fmt == "ollama" else "")
                raise Conflict(f"{target} is not empty; {hint}", code="folder_not_empty")
        return {"model_name": row.model_name, "format": fmt, "dtype": dtype, "path": str(target), "overwrite": overwrite}

    # ---- exporting ---------------------------------------------------------------------------

    def export(self, model_name: str, fmt: str, path, dtype: str = "f32", overwrite: bool = False,
               progress: Progress | None = None, should_stop: Callable[[], bool] | None = None) -> dict:
        """Export and say what was written: {path, files, command, checkpoint, ...}."""
        req = self.check(model_name, fmt, str(path), dtype, overwrite)
        row = self.models.get(model_name)
        report = progress or (lambda fraction, message: None)

        def tick(fraction: float, message: str) -> None:
            if should_stop is not None and should_stop():
                raise ExportStopped()
            report(fraction, message)

        tick(0.0, "reading the weights")
        source = self._read(row)
        target = Path(req["path"])
        if fmt == "hf":
            files = self._hf(row, source, target, tick)
            prompt, new = run_prompt(source["cfg"].block_size)
            script = (f"from transformers import pipeline; print(pipeline('text-generation', model={str(target)!r})"
                      f"({prompt!r}, max_new_tokens={new})[0]['generated_text'])")
            command = f"python -c {shlex.quote(script)}"
        elif fmt == "gguf":
            files = self._gguf(row, source, target, dtype, tick)
            prompt, new = run_prompt(source["cfg"].block_size)
            command = (f"llama-cli -m {shlex.quote(str(target))} -c {source['cfg'].block_size} -n {new} "
                       f"-p {shlex.quote(prompt)}")
        else:
            files = self._ollama(row, source, target, dtype, tick)
            name = _slug(row.model_name)
            command = f"cd {shlex.quote(str(target))} && ollama create {name} -f Modelfile && ollama run {name}"
        report(1.0, f"exported to {target}")
        return {"model_name": row.model_name, "format": fmt, "dtype": req["dtype"], "path": str(target),
                "files": [str(f) for f in files], "command": command, "checkpoint": source["checkpoint"],
                "training": source["training"]}

    def _read(self, row) -> dict:
        """The model's files as they are now, checked against each other."""
        from cllm_app.services.models import served_weights

        folder = self.models.folder(row)
        cfg = self.models.config_of(row)
        weights, meta = read_weights(served_weights(folder, row))
        # Layers added (or a rename) between reading the config and the weights would pair
        # a config with weights of another shape: that export is refused, not written wrong.
        layers = {k.split(".")[1] for k in weights if k.startswith("h.")}
        if len(layers) != cfg.n_layer or weights["wte.weight"].shape != (cfg.vocab_size, cfg.n_embd):
            raise Conflict(f"'{row.model_name}' changed while it was being read; export it again",
                           code="model_changed")
        bpe_json = (folder / TOKENIZER_FILE).read_text(encoding="utf-8") if row.tokenizer == "bpe" else None
        job = self.models.active_job(row)
        training = job is not None and job.kind == "train"
        checkpoint = None
        if "step" in meta:
            checkpoint = {"step": int(meta["step"]), "epoch": int(meta.get("epoch", 0)),
                          "tokens": int(meta.get("tokens", 0)), "saved_at": meta.get("saved_at")}
        return {"cfg": cfg, "weights": weights, "bpe_json": bpe_json, "checkpoint": checkpoint,
                "training": {"job_id": job.id} if training else None}

    def _card(self, row, source: dict, kind: str, file_name: str, modelfile: str | None = None) -> bytes:
        return model_card(self.models, row, kind, file_name, modelfile, source["checkpoint"]).encode("utf-8")

    def _hf(self, row, source: dict, out_dir: Path, tick) -> list[Path]:
        from cllm_app.engine.hf import export_hf

        bpe = load_tokenizer(self.models.folder(row), "bpe") if row.tokenizer == "bpe" else None
        what = f"exporting '{row.model_name}'"
        need = _size(source["cfg"]) + 2 * len(source["bpe_json"] or "") + (64 << 10)
        if need > free_bytes(out_dir):
            raise disk_full(what, out_dir, need)
        created = not out_dir.exists()
        try:
            with space_needed(what, out_dir, need):
                tick(0.1, "writing the Hugging Face folder")
                export_hf(source["cfg"], source["weights"], out_dir, row.tokenizer, bpe)
                tick(0.9, "writing the model card")
                atomic_write_bytes(out_dir / "README.md", self._card(row, source, "hf", out_dir.name))
        except BaseException:
            # Half an export is no export: the folder goes back to how it was (absent, or empty).
            if created:
                shutil.rmtree(out_dir, ignore_errors=True)
            elif out_dir.is_dir():
                for child in out_dir.iterdir():
                    shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
            raise
        return sorted(out_dir.iterdir())

    def _write_gguf(self, row, source: dict, path: Path, dtype: str, tick, start: float, end: float) -> None:
        """The GGUF under a temporary name in its folder, fsynced, then renamed into place."""
        from cllm_app.engine.gguf_export import write_gguf

        tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
        need = _size(source["cfg"]) + (1 << 20)  # f32 at most, with the tokenizer beside it

        def progress(done: int, total: int) -> None:
            tick(start + (end - start) * done / max(1, total), f"writing {path.name}")

        try:
            with space_needed(f"exporting '{row.model_name}'", path.parent, need):
                write_gguf(tmp, row.model_name, source["cfg"], source["weights"], row.tokenizer, source["bpe_json"],
                           dtype, progress=progress)
                with open(tmp, "rb") as f:
                    os.fsync(f.fileno())
                os.replace(tmp, path)
                fsync_dir(path.parent)
        finally:
            tmp.unlink(missing_ok=True)

    def _gguf(self, row, source: dict, path: Path, dtype: str, tick) -> list[Path]:
        self._write_gguf(row, source, path, dtype, tick, 0.02, 0.95)
        card = _card_beside(path)
        atomic_write_bytes(card, self._card(row, source, "gguf", path.name))
        return [path, card]

    def _ollama(self, row, source: dict, out_dir: Path, dtype: str, tick) -> list[Path]:
        from cllm_app.services.modelfile import modelfile

        created = not out_dir.exists()
        out_dir.mkdir(exist_ok=True)
        gguf = out_dir / f"{_slug(row.model_name)}.gguf"
        try:
            self._write_gguf(row, source, gguf, dtype, tick, 0.02, 0.9)
            tick(0.95, "writing the Modelfile and the model card")
            sampling = self.chat.sampling_settings(row.model_name)["sampling"]
            atomic_write_bytes(out_dir / "Modelfile", modelfile(gguf.name, sampling, source["cfg"].block_size).encode("utf-8"))
            atomic_write_bytes(out_dir / "README.md", self._card(row, source, "gguf", gguf.name, "Modelfile"))
        except BaseException:
            if created:
                shutil.rmtree(out_dir, ignore_errors=True)
            raise
        return [gguf, out_dir / "Modelfile", out_dir / "README.md"]


def _card_beside(gguf: Path) -> Path:
    """The model card beside a GGUF file: `name-f16.gguf` gets `name-f16.md`."""
    return gguf.with_suffix(".md")


def _size(cfg: GPTConfig) -> int:
    return 4 * cfg.n_params
