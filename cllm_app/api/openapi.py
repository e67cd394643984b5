"""/api/openapi.json: the OpenAPI 3.1 description of every /api route.

Paths and summaries come from the registered routes and their docstrings, so a
new route shows up by itself; bodies and responses are described here, and a
test fails when a route has none.
"""

from flask import Blueprint, current_app

from cllm_app import __version__

bp = Blueprint("openapi", __name__, url_prefix="/api")

_INT = {"type": "integer"}
_NUM = {"type": "number"}
_STR = {"type": "string"}
_ARCH = {"n_layer": _INT, "n_head": _INT, "n_embd": _INT, "block_size": _INT}
_TRAINING = {
    "batch_size": _INT,
    "sequence_length": _INT,
    "learning_rate": _NUM,
    "target_epochs": _INT,
    "grad_accum": _INT,
    "eval_interval": _INT,
    "checkpoint_interval": _INT,
    "warmup_steps": _INT,
    "weight_decay": _NUM,
    "seed": _INT,
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict, required: tuple = ()) -> dict:
    schema = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


SCHEMAS = {
    "Error": _obj(
        {"error": _obj({"code": _STR, "message": _STR}, ("code", "message"))}, ("error",)
    ),
    "Model": {
        "type": "object",
        "properties": {
            "id": _INT,
            "model_name": _STR,
            "created_at": _STR,
            "updated_at": _STR,
            "tokenizer": _STR,
            "vocab_size": _INT,
            **_ARCH,
            "n_params": _INT,
            **_TRAINING,
            "epochs_trained": _INT,
            "steps_trained": _INT,
            "tokens_trained": _INT,
            "queue": _obj({"items": _INT, "tokens": _INT}),
            "queue_directory": _STR,
            "disk_bytes": _INT,
            "busy": {"type": ["object", "null"]},
            "duplicated_from": {"type": ["string", "null"]},
            "lineage": {"type": "object"},
        },
        "required": ["id", "model_name", *_ARCH, "n_params", "epochs_trained", "target_epochs"],
    },
    "TrashEntry": _obj(
        {"id": _INT, "model_name": _STR, "deleted_at": _STR, "disk_bytes": _INT, "n_params": _INT}
    ),
    "Themes": {
        "type": "object",
        "properties": {
            "themes": {"type": "array", "items": _obj({"name": _STR, "builtin": {"type": "boolean"}})},
            "current": _STR,
        },
    },
    "QueueItem": {
        "type": "object",
        "properties": {
            "id": _INT,
            "source_kind": _STR,
            "origin": _STR,
            "title": {"type": ["string", "null"]},
            "content_hash": _STR,
            "byte_count": _INT,
            "token_count": _INT,
            "token_fingerprint": {"type": ["string", "null"]},
            "imported_from": {"type": ["string", "null"]},
            "status": _STR,
            "error": {"type": ["string", "null"]},
            "epochs_used": _STR,
            "added_at": _STR,
        },
    },
    "IngestReport": {
        "type": "object",
        "properties": {
            **{k: _INT for k in ("files_total", "files_done", "bytes_total", "bytes_done", "tokens", "added",
                                 "duplicates", "refused", "empty", "report_truncated")},
            "stopped": {"type": "boolean"},
            "report": {"type": "array", "items": {"type": "object", "properties": {
                "origin": _STR, "outcome": {"type": "string", "enum": ["added", "duplicate", "refused", "empty"]},
                "reason": {"type": ["string", "null"]}, "entry_id": {"type": ["integer", "null"]},
                "title": {"type": ["string", "null"]}, "byte_count": {"type": ["integer", "null"]},
                "token_count": {"type": ["integer", "null"]}, "notes": _STR}}},
        },
    },
    "Job": {
        "type": "object",
        "properties": {
            "id": _INT,
            "kind": _STR,
            "model_name": {"type": ["string", "null"]},
            "state": _STR,
            "progress": _NUM,
            "message": {"type": ["string", "null"]},
            "error": {"type": ["string", "null"]},
            "params": {"type": "object"},
            "detail": {"type": "object"},
            "created_at": _STR,
            "started_at": {"type": ["string", "null"]},
            "finished_at": {"type": ["string", "null"]},
        },
    },
    "Settings": {
        "type": "object",
        "properties": {"selected_model": {"type": ["string", "null"]}, "theme": _STR},
    },
}

# (method, rule) -> (request body schema or None, success status, response schema)
ROUTES = {
    ("GET", "/api/models"): (None, 200, _obj({"models": {"type": "array", "items": _ref("Model")}})),
    ("POST", "/api/models"): (_obj({"model_name": _STR, **_ARCH, "vocab_size": _INT, **_TRAINING}), 201, _ref("Model")),
    ("GET", "/api/model-names/default"): (None, 200, _obj({"model_name": _STR})),
    ("GET", "/api/model-names/check"): (
        None,
        200,
        {"type": "object", "properties": {"ok": {"type": "boolean"}, "model_name": _STR, "code": _STR, "message": _STR}},
    ),
    ("GET", "/api/models/{model_name}"): (None, 200, _ref("Model")),
    ("PATCH", "/api/models/{model_name}"): (_obj({**_ARCH, **_TRAINING}), 200, _ref("Model")),
    ("POST", "/api/models/{model_name}/rename"): (_obj({"model_name": _STR}, ("model_name",)), 200, _ref("Model")),
    ("POST", "/api/models/{model_name}/duplicate"): (_obj({"model_name": _STR}), 201, _ref("Model")),
    ("DELETE", "/api/models/{model_name}"): (
        _obj({"confirm": {"type": "boolean"}}, ("confirm",)),
        200,
        _obj({"trash": _ref("TrashEntry")}),
    ),
    ("GET", "/api/models/{model_name}/queue"): (
        None,
        200,
        {"type": "object", "properties": {
            "model_name": _STR, "items": {"type": "array", "items": _ref("QueueItem")}, "total": _INT,
            "offset": _INT, "limit": _INT, "queue": _obj({"items": _INT, "tokens": _INT}), "tokens": _INT}},
    ),
    ("GET", "/api/models/{model_name}/queue/stats"): (
        None,
        200,
        {"type": "object", "properties": {
            "model_name": _STR, "items": _INT, "tokens": _INT, "byte_count": _INT, "tokenizer": _STR,
            "by_source": {"type": "array", "items": _obj(
                {"source_kind": _STR, "items": _INT, "tokens": _INT, "byte_count": _INT})},
            "imported_from": {"type": "array", "items": _obj(
                {"model_name": {"type": ["string", "null"]}, "items": _INT, "tokens": _INT})}}},
    ),
    ("POST", "/api/models/{model_name}/queue/files"): (
        _obj({"paths": {"type": "array", "items": _STR}, "text_field": _STR, "csv_column": _STR}, ("paths",)),
        202,
        _ref("Job"),
    ),
    ("POST", "/api/models/{model_name}/queue/upload"): (
        {"multipart": {"type": "object", "properties": {
            "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
            "text_field": _STR, "csv_column": _STR}}},
        202,
        _ref("Job"),
    ),
    ("POST", "/api/models/{model_name}/queue/import"): (
        _obj({"from": _STR, "entry_ids": {"type": "array", "items": _INT}}, ("from",)),
        202,
        _ref("Job"),
    ),
    ("POST", "/api/models/{model_name}/queue/remove"): (
        _obj({"entry_ids": {"type": "array", "items": _INT}}, ("entry_ids",)),
        200,
        _obj({"removed": {"type": "array", "items": _ref("QueueItem")}}),
    ),
    ("DELETE", "/api/models/{model_name}/queue"): (
        _obj({"confirm": {"type": "boolean"}}, ("confirm",)),
        200,
        _obj({"model_name": _STR, "removed": _INT}),
    ),
    ("GET", "/api/models/{model_name}/queue/{entry_id}"): (
        None, 200, {"allOf": [_ref("QueueItem")], "properties": {"text": _STR, "truncated": {"type": "boolean"}}}
    ),
    ("DELETE", "/api/models/{model_name}/queue/{entry_id}"): (None, 200, _obj({"removed": _ref("QueueItem")})),
    ("POST", "/api/models/{model_name}/train"): (_obj(dict(_TRAINING)), 202, _ref("Job")),
    ("GET", "/api/jobs"): (None, 200, _obj({"jobs": {"type": "array", "items": _ref("Job")}})),
    ("GET", "/api/jobs/{job_id}"): (None, 200, _ref("Job")),
    ("POST", "/api/jobs/{job_id}/stop"): (None, 200, _ref("Job")),
    ("GET", "/api/models/{model_name}/loss-history"): (
        None,
        200,
        {"type": "object", "properties": {"model_name": _STR, "points": {"type": "array"}, "markers": {"type": "array"}}},
    ),
    ("GET", "/api/trash"): (None, 200, _obj({"trash": {"type": "array", "items": _ref("TrashEntry")}})),
    ("POST", "/api/trash/{model_id}/restore"): (_obj({"model_name": _STR}), 200, _ref("Model")),
    ("DELETE", "/api/trash"): (_obj({"confirm": {"type": "boolean"}}, ("confirm",)), 200, _obj({"removed": _INT})),
    ("GET", "/api/themes"): (None, 200, _ref("Themes")),
    ("PUT", "/api/themes/current"): (_obj({"name": _STR}, ("name",)), 200, _ref("Themes")),
    ("POST", "/api/themes"): (_obj({"name": _STR, "css": _STR}, ("name", "css")), 201, _ref("Themes")),
    ("GET", "/api/settings"): (None, 200, _ref("Settings")),
    ("PUT", "/api/settings"): (_obj({"selected_model": {"type": ["string", "null"]}}), 200, _ref("Settings")),
    ("GET", "/api/openapi.json"): (None, 200, {"type": "object"}),
}

QUERY_PARAMS = {
    ("GET", "/api/models"): [
        ("sort", {"type": "string", "enum": ["name", "created", "updated", "size"]}),
        ("order", {"type": "string", "enum": ["asc", "desc"]}),
    ],
    ("GET", "/api/model-names/check"): [("model_name", _STR), ("current", _STR)],
    ("GET", "/api/jobs"): [("model_name", _STR), ("active", {"type": "string", "enum": ["0", "1"]})],
    ("GET", "/api/models/{model_name}/loss-history"): [("since_step", _INT)],
    ("GET", "/api/models/{model_name}/queue"): [
        ("search", _STR), ("source_kind", _STR), ("offset", _INT), ("limit", _INT)
    ],
    ("GET", "/api/models/{model_name}/queue/{entry_id}"): [("max_chars", _INT)],
}


def _openapi_path(rule: str) -> str:
    for conv in ("path:", "int:"):
        rule = rule.replace("<" + conv, "<")
    return rule.replace("<", "{").replace(">", "}")


def api_routes(app) -> list[tuple[str, str, object]]:
    """(method, OpenAPI path, view function) for every /api route of the app."""
    out = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((method, _openapi_path(rule.rule), app.view_functions[rule.endpoint]))
    return out


def build_spec(app) -> dict:
    paths: dict = {}
    for method, path, view in api_routes(app):
        body, status, response = ROUTES[(method, path)]
        doc = (view.__doc__ or "").strip()
        op = {
            "summary": doc.splitlines()[0] if doc else path,
            "operationId": view.__name__,
            "responses": {
                str(status): {"description": "OK", "content": {"application/json": {"schema": response}}},
                "4XX": {"description": "Refused", "content": {"application/json": {"schema": _ref("Error")}}},
            },
        }
        params = [
            {"name": name, "in": "path", "required": True, "schema": _INT if name.endswith("_id") else _STR}
            for name in (seg[1:-1] for seg in path.split("/") if seg.startswith("{"))
        ]
        params += [{"name": n, "in": "query", "required": False, "schema": s} for n, s in QUERY_PARAMS.get((method, path), [])]
        if params:
            op["parameters"] = params
        if body is not None and "multipart" in body:
            op["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": body["multipart"]}}}
        elif body is not None:
            op["requestBody"] = {"required": False, "content": {"application/json": {"schema": body}}}
        paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "CLLM Studio API",
            "version": __version__,
            "description": "Local API of CLLM Studio. Every request carries the launch secret in the "
            "X-CLLM-Token header and is addressed to 127.0.0.1 on the app's port.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "X-CLLM-Token"}},
        },
        "security": [{"token": []}],
        "paths": paths,
    }


@bp.get("/openapi.json")
def openapi():
    """This document."""
    return build_spec(current_app)
