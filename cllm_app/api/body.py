"""Reading request bodies: JSON objects only, with a clear refusal otherwise."""

from flask import request

from cllm_app.errors import InvalidInput
from cllm_app.services.validate import only_fields


def json_body(allowed: set[str], what: str) -> dict:
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    data = request.get_json(silent=True, force=True)
    if data is None:
        raise InvalidInput("the request body must be a JSON object", code="invalid_json")
    return only_fields(data, allowed, what)
