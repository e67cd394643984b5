"""/api/settings: the shared model selection, kept so a reloaded window finds it again."""

from flask import Blueprint

from cllm_app.api.body import json_body
from cllm_app.api.context import studio
from cllm_app.services import settings

bp = Blueprint("settings", __name__, url_prefix="/api")


def _current() -> dict:
    return {"selected_model": settings.selected_model(), "theme": studio().themes.current()}


@bp.get("/settings")
def get_settings():
    """The selected model and the theme in use."""
    return _current()


@bp.put("/settings")
def put_settings():
    """Change the selected model (by name; null clears it)."""
    body = json_body("settings")
    if "selected_model" in body:
        name = body["selected_model"]
        model_id = None if name is None else studio().models.get(name).id
        settings.put("selected_model_id", model_id)
    return _current()
