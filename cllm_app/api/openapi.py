"""/api/openapi.json: the OpenAPI 3.1 description of every /api route.

Paths and summaries come from the registered routes and their docstrings, so a
new route shows up by itself; bodies, query parameters and responses are declared
here, and a test fails when a route has none. The declarations are also the
validation: api/body.py checks each request against them, and the ranges come
from the services' own tables (ARCH_LIMITS, training_settings.SETTINGS, SAMPLING_LIMITS,
crawls.LIMITS), so description and server cannot disagree.
"""

from flask import Blueprint, current_app

from cllm_app import __version__, training_settings
from cllm_app.services import crawls
from cllm_app.services.chat import MAX_MESSAGE, MAX_TITLE
from cllm_app.services.exports import DTYPES as EXPORT_DTYPES
from cllm_app.services.exports import FORMATS as EXPORT_FORMATS
from cllm_app.services.models import ARCH_FIELDS, ARCH_LIMITS, SORT_KEYS
from cllm_app.services.names import MAX_NAME_LENGTH
from cllm_app.services.queue import PAGE_LIMIT
from cllm_app.services.research.compare import MAX_MODELS
from cllm_app.services.research.evaluate import MAX_TOKENS_LIMIT, RUN_MODES, SOURCES, SPLITS
from cllm_app.services.research.inspect import MAX_PROMPT_CHARS, MAX_TOP_K
from cllm_app.services.sampling import PRESETS, SAMPLING_FLOATS, SAMPLING_LIMITS
from cllm_app.services.streams import MAX_STOP_LENGTH, MAX_STOP_STRINGS
from cllm_app.services.tokenizers import VOCAB_MAX, VOCAB_MIN

bp = Blueprint("openapi", __name__, url_prefix="/api")

ROW_ID_MAX = 2**63 - 1  # SQLite keeps a row id in 64 signed bits

_INT = {"type": "integer"}
_NUM = {"type": "number"}
_STR = {"type": "string"}
_TEXT = {"type": "string", "minLength": 1}


def _int(lo: int | None = None, hi: int | None = None, null: bool = False) -> dict:
    schema = {"type": ["integer", "null"] if null else "integer"}
    if lo is not None:
        schema["minimum"] = lo
    if hi is not None:
        schema["maximum"] = hi
    return schema


def _num(lo: float, hi: float, lo_open: bool = False, null: bool = False) -> dict:
    return {"type": ["number", "null"] if null else "number", "exclusiveMinimum" if lo_open else "minimum": lo,
            "maximum": hi}


def _list(items: dict, min_items: int = 0, max_items: int | None = None) -> dict:
    schema = {"type": "array", "items": items}
    if min_items:
        schema["minItems"] = min_items
    if max_items is not None:
        schema["maxItems"] = max_items
    return schema


_ID = _int(0, ROW_ID_MAX)
_NAME = {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH, "x-code": "invalid_name"}
# A destructive request says so: anything but {"confirm": true} is refused.
_CONFIRM = {"type": "boolean", "const": True, "x-code": "confirmation_required",
            "x-message": 'this change needs confirmation: send {"confirm": true}'}
_ARCH = {f: _int(*ARCH_LIMITS[f]) for f in ARCH_FIELDS}
_TRAINING = {
    s.name: {**({"type": "string", "enum": list(s.choices)} if s.type is str
                else _num(s.minimum, s.maximum, lo_open=s.exclusive_minimum) if s.type is float
                else _int(s.minimum, s.maximum)),
             "default": s.default, "description": s.help}
    for s in training_settings.SETTINGS
}

# A BPE tokenizer is trained when a model is created, on files (paths) or another model's queue.
_TOKENIZER = {
    "vocab_size": _int(min(ARCH_LIMITS["vocab_size"][0], VOCAB_MIN), ARCH_LIMITS["vocab_size"][1]),
    "tokenizer": {"type": "string", "enum": ["byte", "bpe"]},
    "tokenizer_data": _list(_TEXT, 1),
    "tokenizer_from": _TEXT,
}
_FILE = {"type": "string", "format": "binary"}
_COLUMN = {"type": ["string", "integer"], "minLength": 1, "minimum": 0}  # a CSV column's name or number
# The words and codes of these refusals are the ones the services gave before the schemas did.
_TITLE = {"type": "string", "minLength": 1, "maxLength": MAX_TITLE, "x-code": "invalid_title",
          "x-message": "a conversation's title must be some text",
          "x-messages": {"maxLength": f"a conversation's title can be at most {MAX_TITLE} characters"}}
_MESSAGE = {"type": "string", "minLength": 1, "maxLength": MAX_MESSAGE, "x-code": "empty_message",
            "x-codes": {"maxLength": "message_too_long"}, "x-message": "write something first: the message is empty",
            "x-messages": {"maxLength": f"a message can be at most {MAX_MESSAGE:,} characters"}}
_PROMPT = {**_MESSAGE, "x-code": "empty_prompt", "x-codes": {"maxLength": "prompt_too_long"},
           "x-message": "write a prompt first: the prompt is empty",
           "x-messages": {"maxLength": f"a prompt can be at most {MAX_MESSAGE:,} characters"}}
_STOP_TEXT = {"type": "string", "minLength": 1, "maxLength": MAX_STOP_LENGTH}
_STOP = {**_STOP_TEXT, "type": ["string", "array", "null"], "items": _STOP_TEXT, "maxItems": MAX_STOP_STRINGS,
         "x-code": "invalid_stop"}  # one stop string or a list of them
_SAMPLING = {
    f: _num(lo, hi, lo_open=f == "top_p", null=True) if f in SAMPLING_FLOATS else _int(lo, hi, null=True)
    for f, (lo, hi) in SAMPLING_LIMITS.items()
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict, required: tuple = ()) -> dict:
    schema = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


def _event(name: str, data: dict, required: tuple) -> dict:
    return {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"const": name},
            "data": {"type": "string", "contentMediaType": "application/json",
                     "contentSchema": {"type": "object", "properties": data, "required": list(required)}},
        },
    }


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
            "best": {"type": ["object", "null"], "properties": {"step": _INT, "val_loss": {"type": "number"}}},
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
            "holdout": {"type": "boolean"},
            "train_tokens": {"type": ["integer", "null"]},
            "validation_tokens": {"type": ["integer", "null"]},
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
            "model_id": {"type": ["integer", "null"]},
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
            "model_id": _INT,
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
    "Sampling": _obj(_SAMPLING),
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
    # Each event of a streamed reply, as schemathesis and OpenAPI 3.2's itemSchema read an event
    # stream: {event, data}, the data one JSON object.
    "StreamEvents": {
        "description": "text/event-stream: events start {stream_id, prompt_tokens} (chat: conversation_id, "
        "user_message), token {text, pieces} (the text made since the previous write, `pieces` pieces of it; "
        "at most ~100 a second), done {prompt_tokens, completion_tokens, seconds, time_to_first_token, "
        "tokens_per_sec, finish_reason, message?}, or error {code, message}",
        "oneOf": [
            _event("start", {"stream_id": _STR, "prompt_tokens": _INT, "conversation_id": _INT,
                             "user_message": {"type": ["object", "null"]}}, ("stream_id", "prompt_tokens")),
            _event("token", {"text": _STR, "pieces": _int(1)}, ("text", "pieces")),
            _event("done", {
                "prompt_tokens": _INT, "completion_tokens": _INT, "seconds": _NUM,
                "time_to_first_token": {"type": ["number", "null"]}, "tokens_per_sec": {"type": ["number", "null"]},
                "finish_reason": _STR, "message": {"type": ["object", "null"]},
            }, ("prompt_tokens", "completion_tokens", "finish_reason")),
            _event("error", {"code": _STR, "message": _STR}, ("code", "message")),
        ],
    },
    "ChangeEvents": {
        "oneOf": [
            _event("ready", {"last_id": _INT, "resumed": {"type": "boolean"}}, ("last_id", "resumed")),
            _event("change", {
                "id": _INT, "topics": {"type": "array", "items": _STR},
                "model_ids": {"type": "array", "items": _INT}, "at": _STR,
                "models": {"type": "array", "items": {"oneOf": [
                    _ref("Model"), _obj({"id": _INT, "deleted": {"const": True}}, ("id", "deleted"))]}},
                "jobs": {"type": "array", "items": _ref("Job")},
                "crawls": {"type": "array", "items": _ref("Crawl")},
                "incomplete": {"type": "boolean"},
            }, ("id", "topics")),
        ],
        "description": "text/event-stream, one stream per window (the token may ride as ?token=): "
        "ready {last_id, resumed} first, then change {id, topics, model_ids, at, models, jobs, crawls} with "
        "an increasing `id:` for every change to the store by any process (topics: models, queue, jobs, "
        "progress, history, crawls, store). A change carries the state now of what it touched: `models` "
        "(each as GET /api/models lists it, or {id, deleted: true}) when models, queue or jobs changed; "
        "`jobs` (each model's active jobs and its newest of each kind) when jobs or progress did; `crawls` "
        "(each model's newest crawl) when crawls did; `incomplete` when that could not be said (ask the API). "
        "Loss points and queue items are not carried: ask for them. `: heartbeat` comments keep the line "
        "open; a reconnect with Last-Event-ID gets what it missed, or resumed false when that is no longer "
        "kept (fetch everything again)",
    },
    "Recipe": _obj({
        "model_name": _STR, "minutes": {"type": "number"}, "applies_shape": {"type": "boolean"},
        "shape": {"type": ["object", "null"]}, "tokenizer": {"type": ["object", "null"]},
        "settings": {"type": "object"}, "expected": {"type": "object"},
        "candidates": {"type": "array", "items": {"type": "object"}}, "why": {"type": "array", "items": _STR},
    }),
    "LossHistoryCsv": {
        "type": "string",
        "description": "text/csv, sent as an attachment named <model>-loss-history.csv: a header row "
        "step,epoch,train_loss,val_loss,learning_rate,tokens_per_sec,time, then every loss point by step, "
        "the values GET /api/models/{model_name}/loss-history gives (an empty cell for null)",
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
        _obj({"model_name": _NAME, **_ARCH, **_TRAINING, **_TOKENIZER}), 201, _ref("Model")
    ),
    ("PUT", "/api/models/{model_name}/tokenizer"): (_obj(dict(_TOKENIZER)), 200, _ref("Model")),
    ("POST", "/api/tokenizer-data"): (
        {"multipart": _obj({"files": _list(_FILE, 1)}, ("files",))},
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
    ("POST", "/api/models/{model_name}/rename"): (_obj({"model_name": _NAME}, ("model_name",)), 200, _ref("Model")),
    ("POST", "/api/models/{model_name}/duplicate"): (_obj({"model_name": _NAME}), 201, _ref("Model")),
    ("DELETE", "/api/models/{model_name}"): (
        _obj({"confirm": _CONFIRM}, ("confirm",)),
        200,
        _obj({"trash": _ref("TrashEntry")}),
    ),
    ("GET", "/api/models/{model_name}/queue"): (
        None,
        200,
        {"type": "object", "properties": {
            "model_name": _STR, "items": {"type": "array", "items": _ref("QueueItem")}, "total": _INT,
            "offset": _INT, "limit": _INT, "queue": _obj({"items": _INT, "tokens": _INT}), "tokens": _INT,
            "split": _obj({"setting": _STR, "mode": _STR, "share": {"type": "number"}, "description": _STR,
                           "train_tokens": _INT, "validation_tokens": _INT})}},
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
        _obj({"paths": _list(_TEXT, 1), "text_field": _TEXT, "csv_column": _COLUMN}, ("paths",)),
        202,
        _ref("Job"),
    ),
    ("POST", "/api/models/{model_name}/queue/upload"): (
        {"multipart": _obj({"files": _list(_FILE, 1), "text_field": _STR, "csv_column": _STR}, ("files",))},
        202,
        _ref("Job"),
    ),
    ("POST", "/api/models/{model_name}/bundle"): (
        _obj({"path": _TEXT}, ("path",)),
        201,
        _obj({"path": _STR, "model_name": _STR, "start_step": _INT, "tokens": _INT, "documents": _INT}),
    ),
    ("GET", "/api/export-formats"): (None, 200, _obj({"formats": {"type": "array", "items": _obj(
        {"format": _STR, "label": _STR, "dtypes": {"type": "array", "items": _STR}, "writes": _STR})}})),
    ("POST", "/api/models/{model_name}/export"): (
        _obj({"format": {"type": "string", "enum": list(EXPORT_FORMATS), "x-code": "invalid_format"},
              "path": {**_TEXT, "x-code": "invalid_path"},
              "dtype": {"type": "string", "enum": list(EXPORT_DTYPES), "x-code": "invalid_dtype"},
              "overwrite": {"type": "boolean", "x-code": "invalid_overwrite"}}, ("format", "path")),
        202,
        _ref("Job"),
    ),
    ("POST", "/api/bundles/import"): (
        _obj({"path": _TEXT, "model_name": _TEXT}, ("path",)),
        200,
        {"allOf": [_ref("Model"), {"type": "object", "properties": {"imported": _obj({
            "from_step": _INT, "to_step": _INT, "points": _INT, "processes": _INT, "device": _STR})}}]},
    ),
    ("POST", "/api/models/{model_name}/queue/import"): (
        _obj({"from": {**_TEXT, "x-code": "invalid_source"}, "entry_ids": _list(_ID, 1)}, ("from",)),
        202,
        _ref("Job"),
    ),
    ("POST", "/api/models/{model_name}/queue/remove"): (
        _obj({"entry_ids": _list(_ID, 1)}, ("entry_ids",)),
        200,
        _obj({"removed": {"type": "array", "items": _ref("QueueItem")}}),
    ),
    ("DELETE", "/api/models/{model_name}/queue"): (
        _obj({"confirm": _CONFIRM}, ("confirm",)),
        200,
        _obj({"model_name": _STR, "removed": _INT}),
    ),
    ("GET", "/api/models/{model_name}/queue/{entry_id}"): (
        None, 200, {"allOf": [_ref("QueueItem")], "properties": {"text": _STR, "truncated": {"type": "boolean"}}}
    ),
    ("DELETE", "/api/models/{model_name}/queue/{entry_id}"): (None, 200, _obj({"removed": _ref("QueueItem")})),
    ("PATCH", "/api/models/{model_name}/queue/{entry_id}"): (
        _obj({"holdout": {"type": "boolean", "x-code": "invalid_holdout"}}, ("holdout",)), 200, _ref("QueueItem"),
    ),
    ("POST", "/api/models/{model_name}/train"): (_obj({**_TRAINING, "new_cycle": {
        "type": "boolean", "x-code": "invalid_new_cycle", "description": "the epochs still to train warm up to the "
        "peak learning rate again and decay to its floor"}}), 202, _ref("Job")),
    ("GET", "/api/jobs"): (None, 200, _obj({"jobs": {"type": "array", "items": _ref("Job")}})),
    ("GET", "/api/training-settings"): (None, 200, _obj({"settings": {"type": "array", "items": _obj({
        "name": {"type": "string", "enum": list(training_settings.NAMES)},
        "type": {"type": "string", "enum": ["integer", "number", "string"]},
        "default": {"type": ["number", "string"]}, "minimum": {"type": "number"}, "maximum": {"type": "number"},
        "exclusive_minimum": {"type": "boolean"}, "help": _STR, "enum": {"type": "array", "items": _STR},
        "group": {"type": "string", "enum": ["training", "engine"]},
    })}})),
    ("GET", "/api/engines"): (None, 200, _obj({"engines": {"type": "array", "items": _obj({
        "name": {"type": "string", "enum": ["builtin", "torch"]}, "label": _STR, "available": {"type": "boolean"},
        "version": _STR, "reason": _STR, "install": _STR,
        "devices": {"type": "array", "items": _obj({"name": _STR, "label": _STR, "count": {"type": "integer"},
                                                     "bf16": {"type": "boolean"}})},
    })}})),
    ("GET", "/api/jobs/{job_id}"): (None, 200, _ref("Job")),
    ("POST", "/api/jobs/{job_id}/stop"): (None, 200, _ref("Job")),
    ("GET", "/api/models/{model_name}/loss-history"): (
        None,
        200,
        {"type": "object", "properties": {"model_name": _STR, "points": {"type": "array"}, "markers": {"type": "array"},
                                          "validation_note": {"type": ["string", "null"]}}},
    ),
    ("GET", "/api/models/{model_name}/loss-history.csv"): (None, 200, _ref("LossHistoryCsv")),
    ("GET", "/api/models/{model_name}/recipe"): (None, 200, _ref("Recipe")),
    ("POST", "/api/models/{model_name}/recipe"): (
        _obj({"minutes": {**_num(0.05, 10_080.0), "x-code": "invalid_minutes"},
              "keep_shape": {"type": "boolean", "x-code": "invalid_keep_shape"}}, ("minutes",)),
        200, _ref("Recipe")),
    ("GET", "/api/trash"): (None, 200, _obj({"trash": {"type": "array", "items": _ref("TrashEntry")}})),
    ("POST", "/api/trash/{model_id}/restore"): (_obj({"model_name": _NAME}), 200, _ref("Model")),
    ("DELETE", "/api/trash"): (_obj({"confirm": _CONFIRM}, ("confirm",)), 200, _obj({"removed": _INT})),
    ("GET", "/api/themes"): (None, 200, _ref("Themes")),
    ("PUT", "/api/themes/current"): (_obj({"name": _TEXT}, ("name",)), 200, _ref("Themes")),
    ("POST", "/api/themes"): (_obj({"name": _TEXT, "css": _TEXT}, ("name", "css")), 201, _ref("Themes")),
    ("GET", "/api/settings"): (None, 200, _ref("Settings")),
    ("PUT", "/api/settings"): (_obj({"selected_model": {"type": ["string", "null"]}}), 200, _ref("Settings")),
    ("GET", "/api/openapi.json"): (None, 200, {"type": "object"}),
    ("POST", "/api/models/{model_name}/crawls"): (
        _obj(
            {
                # a list, or one string of URLs (domains) separated by spaces; null keeps a default
                "start_urls": {**_list(_TEXT, 1, crawls.MAX_START_URLS), "type": ["array", "string"], "minLength": 1},
                "allowed_domains": {**_list(_TEXT, 0, crawls.MAX_DOMAINS), "type": ["array", "string", "null"]},
                **{f: _num(lo, hi, null=True) if f in crawls.FLOAT_FIELDS else _int(lo, hi, null=True)
                   for f, (lo, hi) in crawls.LIMITS.items()},
                "user_agent": {"type": ["string", "null"], "minLength": 1, "maxLength": 200},
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
    # the LLM tab (api/llm.py); the streamed routes answer text/event-stream (see there)
    ("GET", "/api/models/{model_name}/conversations"): (
        None, 200, _obj({"model_name": _STR, "conversations": {"type": "array", "items": _ref("Conversation")}})),
    ("POST", "/api/models/{model_name}/conversations"): (_obj({"title": _TITLE}), 201, _ref("Conversation")),
    ("GET", "/api/conversations/{conversation_id}"): (None, 200, _ref("Conversation")),
    ("PATCH", "/api/conversations/{conversation_id}"): (_obj({"title": _TITLE}, ("title",)), 200, _ref("Conversation")),
    ("DELETE", "/api/conversations/{conversation_id}"): (None, 200, _obj({"deleted": _ref("Conversation")})),
    ("POST", "/api/conversations/{conversation_id}/messages"): (
        _obj({"content": _MESSAGE, "sampling": _ref("Sampling")}, ("content",)), 200, _ref("StreamEvents")),
    ("POST", "/api/conversations/{conversation_id}/regenerate"): (
        _obj({"sampling": _ref("Sampling")}), 200, _ref("StreamEvents")),
    ("POST", "/api/models/{model_name}/complete"): (
        _obj({"prompt": _PROMPT, "sampling": _ref("Sampling"), "stop": _STOP}, ("prompt",)),
        200, _ref("StreamEvents")),
    ("POST", "/api/streams/stop"): (
        _obj({"stream_id": {**_TEXT, "x-code": "invalid_stream_id",
                            "x-message": "stream_id must be the id a stream's start event gave"}}, ("stream_id",)), 200, _obj({"stream_id": _STR, "stopped": {"type": "boolean"}})),
    ("GET", "/api/events"): (None, 200, _ref("ChangeEvents")),
    ("GET", "/api/sampling-presets"): (None, 200, _obj({"presets": {"type": "array"}})),
    ("GET", "/api/models/{model_name}/sampling"): (None, 200, _ref("SamplingSettings")),
    ("PUT", "/api/models/{model_name}/sampling"): (
        _obj({"preset": {"type": "string", "enum": [*PRESETS, "Custom"]}, "sampling": _ref("Sampling")}, ("preset", "sampling")), 200, _ref("SamplingSettings")),
}

# The Research tab (cllm_app/api/research.py).
_EVALUATE_BODY = _obj({
    "source": {"type": "string", "enum": list(SOURCES)},
    "from_model": _TEXT,
    "split": {"type": "string", "enum": list(SPLITS)},
    "text": {**_TEXT, "x-code": "empty_text", "x-message": "the text to evaluate is empty"},
    "max_tokens": _int(1, MAX_TOKENS_LIMIT, null=True),  # null: the default
    "run": {"type": "string", "enum": list(RUN_MODES)},
})
_EVALUATION = {
    "type": "object",
    "description": "An evaluation (200); a large one runs as a job, answered 202 with the Job whose detail gets it.",
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
_UPLOAD = {"multipart": _obj({"file": _FILE}, ("file",))}
ROUTES.update({
    ("POST", "/api/models/{model_name}/evaluate"): (_EVALUATE_BODY, 200, _EVALUATION),
    ("POST", "/api/models/{model_name}/evaluate/upload"): (
        {"multipart": _obj({"file": _FILE, "max_tokens": _EVALUATE_BODY["properties"]["max_tokens"],
                            "run": _EVALUATE_BODY["properties"]["run"]}, ("file",))},
        200,
        _EVALUATION,
    ),
    ("GET", "/api/research/compare"): (None, 200, _obj({"models": {"type": "array", "items": {"type": "object"}}})),
    ("POST", "/api/models/{model_name}/inspect"): (
        _obj({"prompt": {**_PROMPT, "maxLength": MAX_PROMPT_CHARS, "x-message": "write a prompt to inspect",
                         "x-messages": {"maxLength": f"the prompt is longer than {MAX_PROMPT_CHARS:,} characters"}},
              "top_k": _int(1, MAX_TOP_K),
              "layer": _int(0), "head": _int(0)}, ("prompt",)),
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
    ("POST", "/api/research/notes"): (_obj({"note_name": _TEXT, "content": _STR}, ("note_name",)), 201, _NOTE),
    ("POST", "/api/research/notes/upload"): (_UPLOAD, 201, _NOTE),
    ("GET", "/api/research/notes/{note_name}"): (None, 200, _NOTE),
    ("PUT", "/api/research/notes/{note_name}"): (_obj({"content": _STR}, ("content",)), 200, _NOTE),
    ("POST", "/api/research/notes/{note_name}/rename"): (_obj({"note_name": _TEXT}, ("note_name",)), 200, _NOTE),
    ("DELETE", "/api/research/notes/{note_name}"): (
        _obj({"confirm": _CONFIRM}, ("confirm",)), 200, _obj({"note_name": _STR}),
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


_NAME_RULE = "a name is letters, digits, spaces, '-', '_' and '.', not starting or ending with a space or a dot"
_SHAPE_RULE = ("n_embd a multiple of n_head, sequence_length at most block_size, at most "
               "500,000,000 parameters")
# Refusals (400) for rules a schema cannot state; an operation not named here refuses with 400
# only what its schema forbids. (Unknown models and ids are 404, a busy model or a taken name 409.)
RULES = {
    ("POST", "/api/models"): f"{_NAME_RULE}; {_SHAPE_RULE}; a BPE tokenizer: vocab_size {VOCAB_MIN} to "
    f"{VOCAB_MAX}, its data readable text files or a model with a queue; the byte tokenizer takes no data",
    ("PUT", "/api/models/{model_name}/tokenizer"): f"not once the model has trained; a BPE tokenizer: vocab_size "
    f"{VOCAB_MIN} to {VOCAB_MAX}, its data readable text files or a model with a queue",
    ("POST", "/api/tokenizer-data"): "the files' total size has a limit",
    ("PATCH", "/api/models/{model_name}"): f"{_SHAPE_RULE}; layers can be added, never removed; other shape "
    "fields are fixed once the model has trained; target_epochs not below epochs_trained",
    ("POST", "/api/models/{model_name}/rename"): _NAME_RULE,
    ("POST", "/api/models/{model_name}/duplicate"): _NAME_RULE,
    ("POST", "/api/trash/{model_id}/restore"): _NAME_RULE,
    ("GET", "/api/models/{model_name}/recipe"): "something in the queue: a recipe is fitted to its text",
    ("POST", "/api/models/{model_name}/recipe"): "something in the queue: a recipe is fitted to its text; a model "
    "not busy with a job when its shape changes",
    ("POST", "/api/models/{model_name}/train"): "sequence_length at most the model's block_size; target_epochs "
    "above epochs_trained, and something in the queue to train on",
    ("POST", "/api/models/{model_name}/queue/files"): "paths that exist and can be read",
    ("POST", "/api/models/{model_name}/bundle"): "a folder that is new or empty, in a folder that exists; something "
    "in the queue",
    ("POST", "/api/models/{model_name}/export"): "a full path; gguf: a .gguf file (refused if it exists, unless "
    "overwrite) or a folder that exists; ollama and hf: a folder that is new or empty (ollama: or overwrite), in "
    "a folder that exists",
    ("POST", "/api/bundles/import"): "a folder holding a bundle of this model, made from its current state, trained "
    "beyond it (another model or an older state is 409)",
    ("POST", "/api/models/{model_name}/queue/upload"): "files within the size limits",
    ("POST", "/api/models/{model_name}/queue/import"): "not from the model itself; a source queue that is not empty",
    ("POST", "/api/models/{model_name}/crawls"): "start URLs are http(s) URLs with a host, inside allowed_domains "
    "(domain names); user_agent printable ASCII",
    ("POST", "/api/models/{model_name}/conversations"): "a title is not only spaces",
    ("PATCH", "/api/conversations/{conversation_id}"): "a title is not only spaces",
    ("POST", "/api/conversations/{conversation_id}/messages"): "a message is not only spaces",
    ("POST", "/api/conversations/{conversation_id}/regenerate"): "there is a message to answer again",
    ("POST", "/api/models/{model_name}/evaluate"): "each source takes its own fields (text: text; queue: "
    "from_model); text without NUL characters; a model that has something to evaluate on",
    ("POST", "/api/models/{model_name}/evaluate/upload"): "a UTF-8 text file, not empty, within the size limit",
    ("POST", "/api/models/{model_name}/inspect"): "layer and head within the model's shape",
    ("PUT", "/api/themes/current"): "a theme that exists",
    ("POST", "/api/themes"): "a theme name of letters, digits, '-' and '_', not a built-in one; CSS only, "
    "within the size limit",
    ("POST", "/api/research/notes"): "a note name is a file name (no folders, no leading dot; .md or .txt); "
    "text without NUL characters, within the size limit",
    ("POST", "/api/research/notes/upload"): "a UTF-8 text document, not empty, within the size limit",
    ("GET", "/api/research/notes/{note_name}"): "a note name is a file name",
    ("PUT", "/api/research/notes/{note_name}"): "a note name is a file name; text without NUL characters, "
    "within the size limit",
    ("POST", "/api/research/notes/{note_name}/rename"): "a note name is a file name",
    ("DELETE", "/api/research/notes/{note_name}"): "a note name is a file name",
    ("PUT", "/api/research/notes/{note_name}/models/{model_name}"): "a note name is a file name",
    ("DELETE", "/api/research/notes/{note_name}/models/{model_name}"): "a note name is a file name",
}
STREAMED = {"StreamEvents", "ChangeEvents"}  # responses sent as text/event-stream
FILES = {"LossHistoryCsv": "text/csv"}  # responses sent as a file to save, not JSON
# Second successes: a large evaluation runs as a job, answered 202 with the Job.
ALSO = {
    ("POST", "/api/models/{model_name}/evaluate"): (202, _ref("Job")),
    ("POST", "/api/models/{model_name}/evaluate/upload"): (202, _ref("Job")),
}

# (name, schema, required) of each query parameter; body.check_query enforces them.
QUERY_PARAMS = {
    ("GET", "/api/models"): [
        ("sort", {"type": "string", "enum": list(SORT_KEYS)}, False),
        ("order", {"type": "string", "enum": ["asc", "desc"]}, False),
    ],
    ("GET", "/api/model-names/check"): [("model_name", _STR, False), ("current", _STR, False)],
    ("GET", "/api/jobs"): [("model_name", _STR, False),
                           ("active", {"type": "string", "enum": ["0", "1", "false", "true"]}, False)],
    ("GET", "/api/models/{model_name}/loss-history"): [("since_step", _int(0, 2**62), False)],
    ("GET", "/api/models/{model_name}/recipe"): [
        ("minutes", {**_num(0.05, 10_080.0), "x-code": "invalid_minutes"}, False),
        ("keep_shape", {"type": "string", "enum": ["0", "1", "false", "true"], "x-code": "invalid_keep_shape"}, False),
    ],
    ("GET", "/api/crawls/{crawl_id}/urls"): [
        ("status", {"type": "string", "enum": ["processed", "all", *crawls.URL_STATUSES]}, False),
        ("offset", _int(0, 10**9), False),
        ("limit", _int(1, 500), False),
    ],
    ("GET", "/api/research/compare"): [("model_name", {**_list(_TEXT, 1, MAX_MODELS), "x-code": "no_models",
                                               "x-codes": {"maxItems": "too_many_models"}}, True)],
    ("GET", "/api/research/notes"): [("q", _STR, False), ("model_name", _STR, False)],
    ("GET", "/api/models/{model_name}/queue"): [
        ("search", _STR, False), ("source_kind", _STR, False), ("offset", _int(0, ROW_ID_MAX), False),
        ("limit", _int(1, PAGE_LIMIT), False),
    ],
    ("GET", "/api/models/{model_name}/queue/{entry_id}"): [("max_chars", _int(0, 10**9), False)],
    # as the Last-Event-ID header, for a first connection
    ("GET", "/api/events"): [("last_event_id", _int(0, 2**63 - 1), False)],
}


def declared(method: str, rule: str, kind: str):
    """What the description declares for a Flask route: its JSON body schema ("body", None if
    it takes none) or its query parameters ("query")."""
    path = _openapi_path(rule)
    if kind == "query":
        return QUERY_PARAMS.get((method, path), ())
    body = ROUTES[(method, path)][0]
    return None if body is None or "multipart" in body else body


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


def _content(schema: dict) -> dict:
    name = schema.get("$ref", "").rsplit("/", 1)[-1]
    kind = "text/event-stream" if name in STREAMED else FILES.get(name, "application/json")
    return {kind: {"schema": schema}}


def build_spec(app) -> dict:
    paths: dict = {}
    refused = {"description": "Refused", "content": {"application/json": {"schema": _ref("Error")}}}
    for method, path, view in api_routes(app):
        body, status, response = ROUTES[(method, path)]
        doc = (view.__doc__ or "").strip()
        responses = {str(status): {"description": "OK", "content": _content(response)}}
        if (method, path) in ALSO:
            also, schema = ALSO[(method, path)]
            responses[str(also)] = {"description": "Accepted", "content": _content(schema)}
        if (method, path) in RULES:
            responses["400"] = {**refused, "description": f"Refused: {RULES[(method, path)]}"}
        responses["4XX"] = refused
        # Any write can meet a full disk (code disk_full): nothing changed, free space and retry.
        responses["507"] = {"description": "The disk is full", "content": {"application/json": {"schema": _ref("Error")}}}
        op = {
            "summary": doc.splitlines()[0] if doc else path,
            "operationId": view.__name__,
            "responses": responses,
        }
        params = [
            {"name": name, "in": "path", "required": True, "schema": _ID if name.endswith("_id") else _TEXT}
            for name in (seg[1:-1] for seg in path.split("/") if seg.startswith("{"))
        ]
        for name, schema, required in QUERY_PARAMS.get((method, path), ()):
            param = {"name": name, "in": "query", "required": required, "schema": schema}
            if schema.get("type") == "array":
                param.update(style="form", explode=True)
            params.append(param)
        if params:
            op["parameters"] = params
        if body is not None and "multipart" in body:
            op["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": body["multipart"]}}}
        elif body is not None:
            op["requestBody"] = {"required": bool(body.get("required")),
                                 "content": {"application/json": {"schema": body}}}
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
