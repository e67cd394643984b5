"""Training bundles: write a model's bundle to a folder, and bring a trained one back."""

from flask import Blueprint, jsonify

from cllm_app.api.body import json_body
from cllm_app.api.context import studio

bp = Blueprint("bundles", __name__, url_prefix="/api")


@bp.post("/models/<path:model_name>/bundle")
def make_bundle(model_name):
    """Write the model's training bundle (torchrun, nothing of ours installed) into the folder `path`."""
    body = json_body("a bundle")
    return jsonify(studio().bundles.export(model_name, body.get("path"))), 201


@bp.post("/bundles/import")
def import_bundle():
    """Bring a trained bundle (the folder `path`) back into its model (`model_name`: its name now, if renamed)."""
    body = json_body("a bundle import")
    return studio().bundles.import_(body.get("path"), body.get("model_name"))
