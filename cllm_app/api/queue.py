"""/api/models/<name>/queue: a model's training-data queue (ingest jobs, import, list, preview,
remove, clear, statistics)."""

from flask import Blueprint, jsonify, request

from cllm_app.api.body import json_body
from cllm_app.api.context import studio
from cllm_app.errors import InvalidInput
from cllm_app.services.ingest import MAX_UPLOAD_BYTES

bp = Blueprint("queue", __name__, url_prefix="/api")


def queue():
    return studio().queue


@bp.get("/models/<path:model_name>/queue")
def list_queue(model_name):
    """One page of a model's queue (`search`, `source_kind`, `offset`, `limit`), with its totals."""
    a = request.args
    return queue().list(model_name, a.get("search") or None, a.get("offset", 0), a.get("limit", 100),
                        a.get("source_kind") or None)


@bp.get("/models/<path:model_name>/queue/stats")
def queue_stats(model_name):
    """Items, tokens and bytes of a model's queue, in all, per source and per model imported from."""
    return queue().stats(model_name)


@bp.post("/models/<path:model_name>/queue/files")
def add_files(model_name):
    """Ingest files and folders by path (the desktop window's file dialog gives paths) in a job."""
    body = json_body("adding files")
    job = studio().ingest.start(model_name, body.get("paths"), text_field=body.get("text_field"),
                       csv_column=body.get("csv_column"))
    return jsonify(job), 202


@bp.post("/models/<path:model_name>/queue/upload")
def upload(model_name):
    """Ingest files sent as multipart form data (a browser's file picker or drag and drop) in a job."""
    request.max_content_length = MAX_UPLOAD_BYTES
    files = request.files.getlist("files")
    if not files:
        raise InvalidInput("send the files as multipart form data under the name 'files'", code="no_files")
    form = request.form
    job = studio().ingest.start_upload(model_name, [(f.filename, f.stream) for f in files],
                       form.get("text_field") or None, form.get("csv_column") or None)
    return jsonify(job), 202


@bp.post("/models/<path:model_name>/queue/import")
def import_queue(model_name):
    """Copy another model's queue, whole or chosen items (`entry_ids`), into this one in a job."""
    body = json_body("an import")
    return jsonify(studio().ingest.start_import(model_name, body.get("from"), body.get("entry_ids"))), 202


@bp.post("/models/<path:model_name>/queue/remove")
def remove_many(model_name):
    """Remove several items at once (all or none)."""
    body = json_body("removing items")
    return {"removed": queue().remove_many(model_name, body.get("entry_ids"))}


@bp.delete("/models/<path:model_name>/queue")
def clear(model_name):
    """Empty a model's queue; needs {"confirm": true}."""
    body = json_body("clearing the queue")
    return queue().clear(model_name, body.get("confirm"))


@bp.get("/models/<path:model_name>/queue/<int:entry_id>")
def preview(model_name, entry_id):
    """One queue item with the start of its text (`max_chars`, 2000 by default)."""
    return queue().preview(model_name, entry_id, int(request.args.get("max_chars", "2000")))


@bp.patch("/models/<path:model_name>/queue/<int:entry_id>")
def mark(model_name, entry_id):
    """Mark an item as validation ({"holdout": true}: held out whole, never trained on), or not."""
    body = json_body("marking an item")
    return queue().mark(model_name, entry_id, body.get("holdout"))


@bp.delete("/models/<path:model_name>/queue/<int:entry_id>")
def remove(model_name, entry_id):
    """Remove one item from a model's queue."""
    return {"removed": queue().remove(model_name, entry_id)}
