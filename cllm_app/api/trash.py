"""/api/trash: deleted models, restore, empty."""

from flask import Blueprint

from cllm_app.api.body import json_body
from cllm_app.api.context import studio

bp = Blueprint("trash", __name__, url_prefix="/api")


def lifecycle():
    return studio().models


@bp.get("/trash")
def list_trash():
    """Models in the trash, newest first."""
    return {"trash": lifecycle().trash()}


@bp.post("/trash/<int:model_id>/restore")
def restore(model_id):
    """Bring a model back from the trash, under its old name or a new one."""
    body = json_body("a restore")
    return lifecycle().restore(model_id, body.get("model_name"))


@bp.delete("/trash")
def empty():
    """Delete everything in the trash for good; needs {"confirm": true}."""
    body = json_body("emptying the trash")
    return {"removed": lifecycle().empty_trash(confirm=body.get("confirm"))}
