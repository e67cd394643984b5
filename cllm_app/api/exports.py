"""Exports: a model as a GGUF file, an Ollama folder or a Hugging Face folder, written by a job."""

from flask import Blueprint, jsonify

from cllm_app.api.body import json_body
from cllm_app.api.context import studio
from cllm_app.services.exports import formats

bp = Blueprint("exports", __name__, url_prefix="/api")


@bp.get("/export-formats")
def export_formats():
    """The formats the Export menu offers, with their types."""
    return jsonify({"formats": formats()})


@bp.post("/models/<path:model_name>/export")
def export(model_name):
    """Queue an export job writing the model to `path` in `format` (gguf: `dtype`)."""
    body = json_body("an export")
    job = studio().exports.submit(model_name, body.get("format"), body.get("path"), body.get("dtype", "f32"),
                                  body.get("overwrite", False))
    return jsonify(job), 202
