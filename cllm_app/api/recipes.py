"""/api/models/<name>/recipe: the recipe chooser's proposal for a time budget (services/recipe.py),
and applying it."""

from flask import Blueprint, request

from cllm_app.api.body import json_body
from cllm_app.api.context import studio
from cllm_app.errors import InvalidInput

bp = Blueprint("recipes", __name__, url_prefix="/api")


def _flag(value) -> bool:
    if value in (None, "", "0", "false", False):
        return False
    if value in ("1", "true", True):
        return True
    raise InvalidInput("keep_shape must be true or false", code="invalid_keep_shape")


@bp.get("/models/<path:model_name>/recipe")
def propose(model_name):
    """What to train for `minutes` (and why); `keep_shape=1` keeps the shape and tokenizer."""
    minutes = request.args.get("minutes", "10")
    try:
        minutes = float(minutes)
    except ValueError:
        raise InvalidInput("minutes must be a number", code="invalid_minutes") from None
    return studio().recipes.propose(model_name, minutes, _flag(request.args.get("keep_shape")))


@bp.post("/models/<path:model_name>/recipe")
def apply(model_name):
    """Set the proposal on the model (its shape and tokenizer too, before it has trained)."""
    body = json_body("a recipe")
    return studio().recipes.apply(model_name, body.get("minutes"), _flag(body.get("keep_shape")))
