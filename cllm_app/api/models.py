"""/api/models and /api/model-names: the model lifecycle over HTTP."""

from flask import Blueprint, Response, jsonify, request

from cllm_app.api.body import json_body
from cllm_app.api.context import studio
from cllm_app.errors import CllmError
from cllm_app.services.tokenizers import MAX_UPLOAD_BYTES, stage_uploads

bp = Blueprint("models", __name__, url_prefix="/api")


def lifecycle():
    return studio().models


@bp.get("/models")
def list_models():
    """List models, sortable by name, created, updated or size."""
    sort = request.args.get("sort", "name")
    order = request.args.get("order", "asc")
    # Encoded by the service, once per change: the window asks again and again while a model trains.
    return Response(lifecycle().list_json(sort=sort, order=order), mimetype="application/json")


@bp.post("/models")
def create_model():
    """Create a model with a chosen name (or the default model_N), shape and tokenizer (byte or BPE)."""
    body = json_body("a new model")
    model = lifecycle().create(**body)
    return jsonify(model), 201


@bp.get("/model-names/default")
def default_name():
    """The name a new model gets if none is chosen: model_N with the lowest free N."""
    return {"model_name": lifecycle().default_name()}


@bp.get("/model-names/check")
def check_name():
    """Whether a name is allowed and free (for live validation); `current` is the model being renamed."""
    try:
        name = lifecycle().check_new_name(request.args.get("model_name", ""), request.args.get("current"))
    except CllmError as e:
        return {"ok": False, "code": e.code, "message": e.message}
    return {"ok": True, "model_name": name}


@bp.get("/models/<path:model_name>")
def show_model(model_name):
    """One model in detail: shape, parameters, training settings, epochs, queue, disk size, lineage."""
    return lifecycle().show(model_name)


@bp.patch("/models/<path:model_name>")
def configure_model(model_name):
    """Change training settings or the shape (layers can be added, never removed)."""
    body = json_body("model settings")
    return lifecycle().configure(model_name, **body)


@bp.post("/models/<path:model_name>/rename")
def rename_model(model_name):
    """Rename a model and everything that belongs to it."""
    body = json_body("a rename")
    return lifecycle().rename(model_name, body.get("model_name"))


@bp.post("/models/<path:model_name>/duplicate")
def duplicate_model(model_name):
    """Copy a model's weights, config, queue and history under a new name."""
    body = json_body("a duplicate")
    return jsonify(lifecycle().duplicate(model_name, body.get("model_name"))), 201


@bp.delete("/models/<path:model_name>")
def delete_model(model_name):
    """Move a model to the trash; needs {"confirm": true}."""
    body = json_body("a delete")
    return {"trash": lifecycle().delete(model_name, confirm=body.get("confirm"))}


@bp.put("/models/<path:model_name>/tokenizer")
def set_tokenizer(model_name):
    """Give a model that has not trained another tokenizer (byte, or BPE trained on data)."""
    body = json_body("a tokenizer")
    return lifecycle().set_tokenizer(model_name, **body)


@bp.post("/tokenizer-data")
def upload_tokenizer_data():
    """Stage files sent as multipart form data for a new model's BPE tokenizer to train on."""
    request.max_content_length = MAX_UPLOAD_BYTES + (1 << 20)
    files = request.files.getlist("files")
    return jsonify(stage_uploads(studio().root, [(f.filename or "unnamed", f.stream) for f in files])), 201
