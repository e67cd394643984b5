"""/api/research and a model's evaluate/inspect/notes: the Research tab over HTTP."""

from flask import Blueprint, jsonify, request

from cllm_app.api.body import json_body
from cllm_app.api.context import studio
from cllm_app.errors import InvalidInput
from cllm_app.services.research import evaluate as evaluate_service

bp = Blueprint("research", __name__, url_prefix="/api")


def _evaluated(answer: tuple[dict, bool]):
    body, is_job = answer
    return jsonify(body), 202 if is_job else 200


@bp.post("/models/<path:model_name>/evaluate")
def evaluate(model_name):
    """Loss, perplexity and bits per byte on the model's validation split, a queue or a text (large inputs run as a job)."""
    body = json_body("an evaluation")
    return _evaluated(studio().research.evaluate(model_name, body))


@bp.post("/models/<path:model_name>/evaluate/upload")
def evaluate_upload(model_name):
    """Evaluate on a text file sent as multipart form data under 'file' (max_tokens and run as form fields)."""
    request.max_content_length = evaluate_service.MAX_TEXT_BYTES + 1024 * 1024
    upload = request.files.get("file")
    if upload is None:
        raise InvalidInput("send the text file as multipart form data under the name 'file'", code="no_file")
    name = upload.filename or "uploaded file"
    text = evaluate_service.read_upload(upload.stream, name)
    body = {"source": "text", "text": text, "origin": name}
    for field in ("max_tokens", "run"):
        value = request.form.get(field)
        if value:
            body[field] = int(value) if field == "max_tokens" and value.isdigit() else value
    return _evaluated(studio().research.evaluate(model_name, body))


@bp.get("/research/compare")
def compare():
    """Loss histories and a summary table of the models named by repeated model_name parameters."""
    return studio().research.compare(request.args.getlist("model_name"))


@bp.post("/models/<path:model_name>/inspect")
def inspect(model_name):
    """Top-k next tokens, per-token surprisal and one head's attention for a prompt."""
    body = json_body("an inspection")
    return studio().research.inspect(
        model_name, body.get("prompt"), body.get("top_k", 10), body.get("layer", 0), body.get("head", 0)
    )


@bp.get("/research/lineage")
def lineage():
    """Every model as a node and the edges between them (duplicated, data imported)."""
    return studio().research.lineage()


# ---- notes ---------------------------------------------------------------------------------


def notes():
    return studio().notes


@bp.get("/research/notes")
def list_notes():
    """The research notes; `q` searches names and text (case-insensitive), `model_name` narrows to a model's notes."""
    return notes().list(request.args.get("q"), request.args.get("model_name"))


@bp.post("/research/notes")
def create_note():
    """Create a note (a .md or .txt file in the research folder)."""
    body = json_body("a new note")
    return jsonify(notes().create(body.get("note_name"), body.get("content", ""))), 201


@bp.post("/research/notes/upload")
def import_note():
    """Import a text document as a new note (multipart form data under 'file')."""
    request.max_content_length = 8 * 1024 * 1024
    upload = request.files.get("file")
    if upload is None:
        raise InvalidInput("send the document as multipart form data under the name 'file'", code="no_file")
    return jsonify(notes().import_file(upload.filename or "", upload.stream)), 201


@bp.get("/research/notes/<note_name>")
def get_note(note_name):
    """One note: its text, its safe rendered HTML and the models it is attached to."""
    return notes().get(note_name)


@bp.put("/research/notes/<note_name>")
def save_note(note_name):
    """Replace a note's text (written atomically)."""
    body = json_body("a note")
    return notes().save(note_name, body.get("content"))


@bp.post("/research/notes/<note_name>/rename")
def rename_note(note_name):
    """Rename a note; its attachments follow."""
    body = json_body("a rename")
    return notes().rename(note_name, body.get("note_name"))


@bp.delete("/research/notes/<note_name>")
def delete_note(note_name):
    """Delete a note; needs {"confirm": true}."""
    body = json_body("a delete")
    return notes().delete(note_name, body.get("confirm"))


@bp.put("/research/notes/<note_name>/models/<path:model_name>")
def attach_note(note_name, model_name):
    """Attach a note to a model."""
    return notes().attach(note_name, model_name)


@bp.delete("/research/notes/<note_name>/models/<path:model_name>")
def detach_note(note_name, model_name):
    """Detach a note from a model."""
    return notes().detach(note_name, model_name)
