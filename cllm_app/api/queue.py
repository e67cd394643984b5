"""/api/models/<name>/queue: a model's training-data queue."""

from contextlib import nullcontext

from flask import Blueprint, current_app, jsonify, request

from cllm_app.api.body import json_body
from cllm_app.errors import InvalidInput
from cllm_app.services.queue import MAX_FILE_BYTES

bp = Blueprint("queue", __name__, url_prefix="/api")


def queue():
    return current_app.config["STUDIO"].queue


@bp.get("/models/<path:model_name>/queue")
def list_queue(model_name):
    """The items of a model's queue with their origin, size and token count."""
    return queue().list(model_name)


@bp.post("/models/<path:model_name>/queue/files")
def add_files(model_name):
    """Add text files by path (the desktop window's file dialog gives paths)."""
    body = json_body({"paths"}, "adding files")
    return queue().add_files(model_name, body.get("paths"))


@bp.post("/models/<path:model_name>/queue/upload")
def upload(model_name):
    """Add text files sent as multipart form data (a browser's file picker or drag and drop)."""
    request.max_content_length = MAX_FILE_BYTES * 4  # several files per request
    files = request.files.getlist("files")
    if not files:
        raise InvalidInput("send the files as multipart form data under the name 'files'", code="no_files")
    sources = [(f.filename or "unnamed", lambda f=f: nullcontext(f.stream)) for f in files]
    return jsonify(queue().add_many(model_name, sources))


@bp.get("/models/<path:model_name>/queue/<int:entry_id>")
def preview(model_name, entry_id):
    """One queue item with the start of its text."""
    return queue().preview(model_name, entry_id)


@bp.delete("/models/<path:model_name>/queue/<int:entry_id>")
def remove(model_name, entry_id):
    """Remove one item from a model's queue."""
    return {"removed": queue().remove(model_name, entry_id)}
