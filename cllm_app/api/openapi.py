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

# A BPE tokenizer is trained when a model is created, on files (paths) or another model's queue.
_TOKENIZER = {
    "tokenizer": {"type": "string", "enum": ["byte", "bpe"]},
    "tokenizer_data": {"type": "array", "items": _STR},
    "tokenizer_from": _STR,
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
            # files in themes/ that are not themes (services/theme_css.py), and why
            "skipped": {"type": "array", "items": _obj({"name": _STR, "file": _STR, "message": _STR})},
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
    "Crawl": {
        "type": "object",
        "properties": {
            "id": _INT,
            "model_name": _STR,
            "state": _STR,
            "settings": {"type": "object"},
            "job_id": {"type": ["integer", "null"]},
            "queued": _INT,
            "fetched": _INT,
            "skipped": _INT,
            "failed": _INT,
            "tokens": _INT,
            "requested": _INT,
            "trainings_queued": _INT,
            "message": {"type": ["string", "null"]},
            "resumable": {"type": "boolean"},
            "created_at": _STR,
            "updated_at": _STR,
            "finished_at": {"type": ["string", "null"]},
        },
    },
    "CrawlUrl": {
        "type": "object",
        "properties": {
            "id": _INT,
            "url": _STR,
            "depth": _INT,
            "status": _STR,
            "outcome": {"type": ["string", "null"]},
            "reason": {"type": ["string", "null"]},
            "http_status": {"type": ["integer", "null"]},
            "final_url": {"type": ["string", "null"]},
            "title": {"type": ["string", "null"]},
            "queue_entry_id": {"type": ["integer", "null"]},
            "token_count": _INT,
            "fetched_at": {"type": ["string", "null"]},
        },
    },
    "Sampling": _obj({
        "temperature": _NUM, "top_k": _INT, "top_p": _NUM, "repetition_penalty": _NUM,
        "max_new_tokens": _INT, "seed": {"type": ["integer", "null"]},
    }),
    "SamplingSettings": {"type": "object", "properties": {"model_name": _STR, "preset": _STR, "sampling": _ref("Sampling")}},
    "Conversation": {
        "type": "object",
        "properties": {
            "id": _INT, "model_name": _STR, "title": _STR, "created_at": _STR, "updated_at": _STR,
            "message_count": _INT, "messages": {"type": "array", "items": _ref("Message")},
        },
    },
    "Message": {
        "type": "object",
        "properties": {
            "id": _INT, "conversation_id": _INT, "role": _STR, "content": _STR,
            "sampling": {"type": ["object", "null"]}, "prompt_tokens": {"type": ["integer", "null"]},
            "completion_tokens": {"type": ["integer", "null"]}, "tokens_per_sec": {"type": ["number", "null"]},
            "finish_reason": {"type": ["string", "null"]}, "created_at": _STR,
        },
    },
    "StreamEvents": {
        "type": "string",
        "description": "text/event-stream: events start {stream_id, prompt_tokens}, token {text, pieces} "
        "(the text made since the previous write, `pieces` pieces of it; at most ~100 a second), done {prompt_tokens, completion_tokens, seconds, time_to_first_token, "
        "tokens_per_sec, finish_reason, message?}, or error {code, message}",
    },
    "ChangeEvents": {
        "type": "string",
        "description": "text/event-stream, one stream per window (the token may ride as ?token=): "
        "ready {last_id, resumed} first, then change {id, topics, model_ids, at} with an increasing `id:` "
        "for every change to the store by any process (topics: models, queue, jobs, progress, history, "
        "crawls, store), and `: heartbeat` comments; a reconnect with Last-Event-ID gets what it missed, "
        "or resumed false when that is no longer kept (fetch everything again)",
    },
    "Settings": {
        "type": "object",
        "properties": {"selected_model": {"type": ["string", "null"]}, "theme": _STR},
    },
}

# (method, rule) -> (request body schema or None, success status, response schema)
ROUTES = {
    ("GET", "/api/models"): (None, 200, _obj({"models": {"type": "array", "items": _ref("Model")}})),
    ("POST", "/api/models"): (
        _obj({"model_name": _STR, **_ARCH, "vocab_size": _INT, **_TRAINING, **_TOKENIZER}), 201, _ref("Model")
    ),
    ("PUT", "/api/models/{model_name}/tokenizer"): (_obj({"vocab_size": _INT, **_TOKENIZER}), 200, _ref("Model")),
    ("POST", "/api/tokenizer-data"): (
        {"multipart": {"type": "object", "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
        201,
        _obj({"paths": {"type": "array", "items": _STR},
              "files": {"type": "array", "items": _obj({"name": _STR, "byte_count": _INT})}}),
    ),
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
    ("POST", "/api/models/{model_name}/crawls"): (
        _obj(
            {
                "start_urls": {"type": "array", "items": _STR},
                "allowed_domains": {"type": "array", "items": _STR},
                "max_depth": _INT,
                "max_pages": _INT,
                "max_page_bytes": _INT,
                "rate": _NUM,
                "user_agent": _STR,
                "timeout": _NUM,
                "train_after_tokens": _INT,
            },
            ("start_urls",),
        ),
        202,
        _ref("Crawl"),
    ),
    ("GET", "/api/models/{model_name}/crawls"): (
        None,
        200,
        _obj({"model_name": _STR, "crawls": {"type": "array", "items": _ref("Crawl")}}),
    ),
    ("GET", "/api/crawls/{crawl_id}"): (None, 200, _ref("Crawl")),
    ("GET", "/api/crawls/{crawl_id}/urls"): (
        None,
        200,
        _obj({"crawl_id": _INT, "status": _STR, "total": _INT, "offset": _INT, "limit": _INT,
              "urls": {"type": "array", "items": _ref("CrawlUrl")}}),
    ),
    ("POST", "/api/crawls/{crawl_id}/pause"): (None, 200, _ref("Crawl")),
    ("POST", "/api/crawls/{crawl_id}/stop"): (None, 200, _ref("Crawl")),
    ("POST", "/api/crawls/{crawl_id}/resume"): (None, 202, _ref("Crawl")),
    # the LLM tab (api/generate.py); the streamed routes answer text/event-stream (see there)
    ("GET", "/api/models/{model_name}/conversations"): (
        None, 200, _obj({"model_name": _STR, "conversations": {"type": "array", "items": _ref("Conversation")}})),
    ("POST", "/api/models/{model_name}/conversations"): (_obj({"title": _STR}), 201, _ref("Conversation")),
    ("GET", "/api/conversations/{conversation_id}"): (None, 200, _ref("Conversation")),
    ("PATCH", "/api/conversations/{conversation_id}"): (_obj({"title": _STR}, ("title",)), 200, _ref("Conversation")),
    ("DELETE", "/api/conversations/{conversation_id}"): (None, 200, _obj({"deleted": _ref("Conversation")})),
    ("POST", "/api/conversations/{conversation_id}/messages"): (
        _obj({"content": _STR, "sampling": _ref("Sampling")}, ("content",)), 200, _ref("StreamEvents")),
    ("POST", "/api/conversations/{conversation_id}/regenerate"): (
        _obj({"sampling": _ref("Sampling")}), 200, _ref("StreamEvents")),
    ("POST", "/api/models/{model_name}/complete"): (
        _obj({"prompt": _STR, "sampling": _ref("Sampling"), "stop": {"type": ["string", "array"]}}, ("prompt",)),
        200, _ref("StreamEvents")),
    ("POST", "/api/streams/stop"): (
        _obj({"stream_id": _STR}, ("stream_id",)), 200, _obj({"stream_id": _STR, "stopped": {"type": "boolean"}})),
    ("GET", "/api/events"): (None, 200, _ref("ChangeEvents")),
    ("GET", "/api/sampling-presets"): (None, 200, _obj({"presets": {"type": "array"}})),
    ("GET", "/api/models/{model_name}/sampling"): (None, 200, _ref("SamplingSettings")),
    ("PUT", "/api/models/{model_name}/sampling"): (
        _obj({"preset": _STR, "sampling": _ref("Sampling")}, ("preset", "sampling")), 200, _ref("SamplingSettings")),
}

# The Research tab (cllm_app/api/research.py).
_EVALUATE_BODY = _obj({
    "source": {"type": "string", "enum": ["validation", "queue", "text"]},
    "from_model": _STR,
    "split": {"type": "string", "enum": ["all", "validation"]},
    "text": _STR,
    "max_tokens": _INT,
    "run": {"type": "string", "enum": ["auto", "job"]},
})
_EVALUATION = {
    "type": "object",
    "description": "An evaluation (200), or with 202 the evaluate Job whose detail gets it.",
    "properties": {
        "model_name": _STR, "source": {"type": "object"}, "tokens": _INT, "bytes": _INT, "documents": _INT,
        "windows": _INT, "window": _INT, "total_nats": _NUM, "loss": {"type": ["number", "null"]},
        "perplexity": {"type": ["number", "null"]}, "bits_per_byte": {"type": ["number", "null"]},
        "tokens_available": _INT, "max_tokens": _INT, "truncated": {"type": "boolean"},
        "stopped": {"type": "boolean"}, "seconds": _NUM, "tokens_per_sec": {"type": ["number", "null"]},
    },
}
_NOTE = {
    "type": "object",
    "properties": {
        "note_name": _STR, "title": _STR, "bytes": _INT, "modified_at": _STR,
        "models": {"type": "array", "items": _STR}, "content": _STR, "html": _STR,
        "snippets": {"type": "array", "items": _STR},
    },
}
_UPLOAD = {"multipart": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}}
ROUTES.update({
    ("POST", "/api/models/{model_name}/evaluate"): (_EVALUATE_BODY, 200, _EVALUATION),
    ("POST", "/api/models/{model_name}/evaluate/upload"): (_UPLOAD, 200, _EVALUATION),
    ("GET", "/api/research/compare"): (None, 200, _obj({"models": {"type": "array", "items": {"type": "object"}}})),
    ("POST", "/api/models/{model_name}/inspect"): (
        _obj({"prompt": _STR, "top_k": _INT, "layer": _INT, "head": _INT}, ("prompt",)),
        200,
        {"type": "object", "properties": {
            "tokens": {"type": "array"}, "surprisal_bits": {"type": "array"}, "top_k": {"type": "array"},
            "attention": {"type": "array"}, "layer": _INT, "head": _INT,
        }},
    ),
    ("GET", "/api/research/lineage"): (
        None, 200, _obj({"nodes": {"type": "array"}, "edges": {"type": "array"}}),
    ),
    ("GET", "/api/research/notes"): (
        None, 200, _obj({"notes": {"type": "array", "items": _NOTE}, "q": _STR, "folder": _STR}),
    ),
    ("POST", "/api/research/notes"): (_obj({"note_name": _STR, "content": _STR}, ("note_name",)), 201, _NOTE),
    ("POST", "/api/research/notes/upload"): (_UPLOAD, 201, _NOTE),
    ("GET", "/api/research/notes/{note_name}"): (None, 200, _NOTE),
    ("PUT", "/api/research/notes/{note_name}"): (_obj({"content": _STR}, ("content",)), 200, _NOTE),
    ("POST", "/api/research/notes/{note_name}/rename"): (_obj({"note_name": _STR}, ("note_name",)), 200, _NOTE),
    ("DELETE", "/api/research/notes/{note_name}"): (
        _obj({"confirm": {"type": "boolean"}}, ("confirm",)), 200, _obj({"note_name": _STR}),
    ),
    ("PUT", "/api/research/notes/{note_name}/models/{model_name}"): (None, 200, _NOTE),
    ("DELETE", "/api/research/notes/{note_name}/models/{model_name}"): (None, 200, _NOTE),
})

# The OpenAI key (cllm_app/api/openai_compat.py); /v1/ itself is OpenAI's API, not described here.
_OPENAI_KEY = _obj({"api_key": _STR, "base_url": _STR, "file": _STR})
ROUTES.update({
    ("GET", "/api/openai/key"): (None, 200, _OPENAI_KEY),
    ("POST", "/api/openai/key/regenerate"): (None, 200, _OPENAI_KEY),
})

QUERY_PARAMS = {
    ("GET", "/api/models"): [
        ("sort", {"type": "string", "enum": ["name", "created", "updated", "size"]}),
        ("order", {"type": "string", "enum": ["asc", "desc"]}),
    ],
    ("GET", "/api/model-names/check"): [("model_name", _STR), ("current", _STR)],
    ("GET", "/api/jobs"): [("model_name", _STR), ("active", {"type": "string", "enum": ["0", "1"]})],
    ("GET", "/api/models/{model_name}/loss-history"): [("since_step", _INT)],
    ("GET", "/api/crawls/{crawl_id}/urls"): [
        ("status", {"type": "string", "enum": ["processed", "all", "queued", "fetched", "skipped", "failed"]}),
        ("offset", _INT),
        ("limit", _INT),
    ],
    ("GET", "/api/research/compare"): [("model_name", _STR)],
    ("GET", "/api/research/notes"): [("q", _STR), ("model_name", _STR)],
    ("GET", "/api/models/{model_name}/queue"): [
        ("search", _STR), ("source_kind", _STR), ("offset", _INT), ("limit", _INT)
    ],
    ("GET", "/api/models/{model_name}/queue/{entry_id}"): [("max_chars", _INT)],
    ("GET", "/api/events"): [("last_event_id", _INT)],  # as the Last-Event-ID header, for a first connection
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
                # Any write can meet a full disk (code disk_full): nothing changed, free space and retry.
                "507": {"description": "The disk is full", "content": {"application/json": {"schema": _ref("Error")}}},
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
