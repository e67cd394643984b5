"""App-wide settings kept in the store: the theme and the shared model selection."""

import json

from cllm_app.store import LanguageModel, Setting


def get(key: str, default=None):
    row = Setting.get_or_none(Setting.key == key)
    return json.loads(row.value) if row else default


def put(key: str, value) -> None:
    Setting.replace(key=key, value=json.dumps(value)).execute()


def selected_model() -> str | None:
    """The selection is kept by id, so a rename never leaves the old name behind."""
    model_id = get("selected_model_id")
    if model_id is None:
        return None
    row = LanguageModel.get_or_none((LanguageModel.id == model_id) & LanguageModel.deleted_at.is_null())
    return row.model_name if row else None
