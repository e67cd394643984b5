"""/api/themes: list, choose and add themes (CSS files of variables)."""

from flask import Blueprint, jsonify

from cllm_app.api.body import json_body
from cllm_app.api.context import studio

bp = Blueprint("themes", __name__, url_prefix="/api")


def themes():
    return studio().themes


@bp.get("/themes")
def list_themes():
    """The themes in the data root's themes/ folder and the one in use."""
    return themes().listing()


@bp.put("/themes/current")
def use_theme():
    """Choose the theme in use; it is remembered."""
    body = json_body("choosing a theme")
    return themes().use(body.get("name"))


@bp.post("/themes")
def add_theme():
    """Save a custom theme from its CSS text."""
    body = json_body("a new theme")
    return jsonify(themes().add(body.get("name"), body.get("css"))), 201
