"""Starting ingest jobs: paths from the desktop's dialog, uploads from a browser, and imports
from another model's queue. The job itself is cllm_app/jobs/ingest.py."""

import json
import os
import re
import shutil
import uuid
from pathlib import Path

from cllm_app.data.limits import MAX_INGEST_BYTES
from cllm_app.errors import InvalidInput
from cllm_app.services.export_paths import discard_partial

# The most one upload may carry (the API sets it on the request): the ingest's own limit.
MAX_UPLOAD_BYTES = MAX_INGEST_BYTES


def _safe_name(name: str, index: int) -> str:
    """A file name that is safe on every disk and keeps the extension (it picks the reader)."""
    base = re.sub(r"[^\w.\- ]+", "_", os.path.basename(name.replace("\\", "/")) or "file").strip(" .") or "file"
    return f"{index:05d}-{base[-120:]}"


def discard_staging(root: Path, staging: str | None) -> None:
    """Remove an ingest's staged uploads, once its job has ended in whatever state. Only a
    folder directly inside the data root's staging/ is removed, whatever the job's params say."""
    if not staging:
        return
    folder = Path(staging).resolve()
    if folder.parent == (Path(root) / "staging").resolve():
        shutil.rmtree(folder, ignore_errors=True)


def discard_leftovers(root: Path, job) -> None:
    """What a job leaves behind goes when it ends, in any state (done, failed, stopped,
    cancelled before it started, interrupted): an ingest's staged uploads, the temporary file
    of an export killed mid-write."""
    if job.kind == "ingest":
        discard_staging(root, json.loads(job.params or "{}").get("staging"))
    elif job.kind == "export":
        discard_partial(json.loads(job.params or "{}"))


class Ingest:
    """Queues ingest jobs: files and folders by path, browser uploads, imports."""

    def __init__(self, models, queue, jobs):
        self.models, self.queue, self.jobs = models, queue, jobs

    def start(self, model_name: str, paths, origins=None, staging: str | None = None,
              text_field=None, csv_column=None, foreground: bool = False) -> dict:
        """Queue an ingest job for files and folders by path. `foreground`: the caller runs it in
        its own process (`cllm data add`), so no runner (the open window's) may start it too."""
        self.queue.check_paths(paths)
        self.queue.options(text_field, csv_column)  # refuse a bad choice now, not in the job
        if origins is None:
            origins = [str(Path(p).expanduser().resolve()) for p in paths]
        params = {"paths": paths, "origins": origins, "staging": staging,
                  "text_field": text_field, "csv_column": csv_column}
        return self.jobs.submit("ingest", model_name, params, state="running" if foreground else "queued")

    def stage_uploads(self, model_name: str, files) -> tuple[str, list[str], list[str]]:
        """Copy uploaded files (name, binary stream) into a new staging folder.
        Returns (folder, paths, origins); the folder goes when the ingest job ends, however it ends
        (see discard_staging)."""
        self.models.get(model_name)
        if not files:
            raise InvalidInput("send the files as multipart form data under the name 'files'", code="no_files")
        folder = self.queue.staging_dir / uuid.uuid4().hex
        folder.mkdir(parents=True)
        paths, origins = [], []
        try:
            for i, (name, stream) in enumerate(files):
                dest = folder / _safe_name(name or "unnamed", i)
                with open(dest, "wb") as out:
                    shutil.copyfileobj(stream, out, 1 << 20)
                paths.append(str(dest))
                origins.append(os.path.basename((name or "unnamed").replace("\\", "/")))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return str(folder), paths, origins

    def start_upload(self, model_name: str, files, text_field=None, csv_column=None) -> dict:
        """Stage uploaded files and queue their ingest job."""
        self.queue.options(text_field, csv_column)
        folder, paths, origins = self.stage_uploads(model_name, files)
        try:
            return self.start(model_name, paths, origins, folder, text_field, csv_column)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def start_import(self, model_name: str, source_name, entry_ids=None, foreground: bool = False) -> dict:
        """Check an import now (self-import, unknown items) and queue it as an ingest job
        (`foreground`: as start's)."""
        _row, source, ids = self.queue.import_plan(model_name, source_name, entry_ids)
        params = {"import_from": source.id, "source_name": source.model_name,
                  "entry_ids": ids if entry_ids is not None else None}
        return self.jobs.submit("ingest", model_name, params, state="running" if foreground else "queued")
