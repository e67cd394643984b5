"""An OpenAI-compatible API on the app's own server, so existing clients can use any local model:
GET /v1/models, POST /v1/completions, POST /v1/chat/completions (with `stream: true` as
OpenAI's chunks ending in `data: [DONE]`).

The client's API key is the app's OpenAI key (`Authorization: Bearer <key>`), which opens
/v1/ only (see api/security.py); the LLM tab shows it and makes a new one through
GET /api/openai/key and POST /api/openai/key/regenerate. The model is a model's name. Parameters:

- temperature (0 to 2, default 1), top_p (default 1), seed, stop (a text or up to four) and
  max_tokens (or max_completion_tokens) map to our sampling; max_tokens defaults to 16 for
  completions (as OpenAI's) and to 256 for chat.
- top_k (default 0, off) and repetition_penalty (default 1, off) are accepted as extensions.
- frequency_penalty and presence_penalty are accepted (-2 to 2) and ignored: our repetition
  penalty is a different rule, so mapping one onto the other would mislead.
- n must be 1; logprobs, echo, suffix, best_of above 1, tools and functions are refused.
- stream_options.include_usage adds OpenAI's final usage chunk.

Errors come in OpenAI's shape: {"error": {"message", "type", "param", "code"}}.
"""

import calendar
import json
import logging
import time
import uuid

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from cllm_app.api.context import studio
from cllm_app.api.llm import drained, no_delay
from cllm_app.api.sse import json_data
from cllm_app.errors import CllmError, InvalidInput
from cllm_app.services.chat import Reply
from cllm_app.services.validate import as_float, as_int

log = logging.getLogger(__name__)
bp = Blueprint("openai", __name__, url_prefix="/v1")
# The key's own routes are the window's, so they sit under /api/ behind the launch secret.
key_bp = Blueprint("openai_key", __name__, url_prefix="/api/openai")

COMMON = {
    "model", "temperature", "top_p", "top_k", "repetition_penalty", "max_tokens", "seed", "stop",
    "n", "stream", "stream_options", "frequency_penalty", "presence_penalty", "user", "logprobs",
}
COMPLETION_FIELDS = COMMON | {"prompt", "echo", "suffix", "best_of", "logit_bias"}
CHAT_FIELDS = COMMON | {"messages", "max_completion_tokens", "top_logprobs", "tools", "tool_choice",
                        "functions", "function_call", "response_format", "logit_bias", "parallel_tool_calls"}
CHAT_DEFAULT_MAX_TOKENS = 256
COMPLETION_DEFAULT_MAX_TOKENS = 16
ROLE_ALIASES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def _error(status: int, message: str, code: str, param: str | None = None):
    kind = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
            429: "rate_limit_error"}.get(status, "invalid_request_error" if status < 500 else "server_error")
    response = jsonify({"error": {"message": message, "type": kind, "param": param, "code": code}})
    response.status_code = status
    return response


@bp.errorhandler(CllmError)
def _refused(e: CllmError):
    return _error(e.status, e.message, e.code)


@bp.errorhandler(HTTPException)
def _http(e: HTTPException):
    return _error(e.code or 500, e.description or e.name, (e.name or "error").lower().replace(" ", "_"))


@bp.errorhandler(Exception)
def _unexpected(e: Exception):
    log.exception("unexpected error on %s %s", request.method, request.path)
    return _error(500, f"something went wrong inside the app: {e}", "internal_error")


def _body(allowed: set[str]) -> dict:
    data = request.get_json(silent=True, force=True)
    if not isinstance(data, dict):
        raise InvalidInput("the request body must be a JSON object", code="invalid_json")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise InvalidInput(f"unsupported parameter(s): {', '.join(unknown)}", code="unsupported_parameter")
    return data


def _refuse_unless(ok: bool, message: str, code: str = "unsupported_parameter") -> None:
    if not ok:
        raise InvalidInput(message, code=code)


def _sampling(body: dict, default_max: int) -> dict:
    """OpenAI's parameters as our sampling settings (see the module's docstring)."""
    _refuse_unless(body.get("n") in (None, 1), "n must be 1: this server makes one choice per request")
    _refuse_unless(not body.get("logprobs") and not body.get("top_logprobs"), "logprobs are not supported")
    _refuse_unless(not body.get("echo"), "echo is not supported")
    _refuse_unless(not body.get("suffix"), "suffix is not supported")
    _refuse_unless(body.get("best_of") in (None, 1), "best_of must be 1")
    _refuse_unless(not body.get("tools") and not body.get("functions"), "tools and functions are not supported")
    _refuse_unless(not body.get("logit_bias"), "logit_bias is not supported")
    for penalty in ("frequency_penalty", "presence_penalty"):
        if body.get(penalty) is not None:
            as_float(penalty, body[penalty], -2.0, 2.0)  # accepted, then ignored
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    temperature = body.get("temperature")
    if temperature is not None:
        temperature = as_float("temperature", temperature, 0.0, 2.0)
    return {
        "temperature": 1.0 if temperature is None else temperature,
        "top_p": 1.0 if body.get("top_p") is None else body["top_p"],
        "top_k": 0 if body.get("top_k") is None else body["top_k"],
        "repetition_penalty": 1.0 if body.get("repetition_penalty") is None else body["repetition_penalty"],
        "max_new_tokens": default_max if max_tokens is None else as_int("max_tokens", max_tokens, 1, 100_000),
        "seed": body.get("seed"),
    }


def _model_name(body: dict) -> str:
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise InvalidInput("model must be the name of one of your models (GET /v1/models lists them)",
                           code="invalid_model")
    return name


def _stream_flags(body: dict) -> tuple[bool, bool]:
    stream = body.get("stream") or False
    _refuse_unless(isinstance(stream, bool), "stream must be true or false", "invalid_stream")
    options = body.get("stream_options") or {}
    _refuse_unless(isinstance(options, dict), "stream_options must be an object", "invalid_stream_options")
    return stream, bool(options.get("include_usage"))


def _usage(stats: dict) -> dict:
    return {
        "prompt_tokens": stats["prompt_tokens"],
        "completion_tokens": stats["completion_tokens"],
        "total_tokens": stats["prompt_tokens"] + stats["completion_tokens"],
    }


def _finish(stats: dict) -> str:
    return "length" if stats["finish_reason"] == "length" else "stop"


def _sse(reply: Reply, chunk, last_chunk, usage_chunk) -> Response:
    """OpenAI's streaming: `data: {chunk}` lines, a chunk with finish_reason, usage if asked, [DONE]."""

    no_delay()

    def lines():
        try:
            first = chunk(None)
            if first is not None:
                yield f"data: {json.dumps(first)}\n\n"
            for pieces in drained(reply):
                yield f"data: {json_data(chunk(''.join(pieces)))}\n\n"
        except CllmError as e:
            yield f"data: {json.dumps({'error': {'message': e.message, 'type': 'invalid_request_error', 'param': None, 'code': e.code}})}\n\n"
            return
        except Exception as e:
            log.exception("an OpenAI-style stream failed")
            yield f"data: {json.dumps({'error': {'message': str(e), 'type': 'server_error', 'param': None, 'code': 'internal_error'}})}\n\n"
            return
        stats = reply.result()
        yield f"data: {json.dumps(last_chunk(stats))}\n\n"
        if usage_chunk is not None:
            yield f"data: {json.dumps(usage_chunk(stats))}\n\n"
        yield "data: [DONE]\n\n"

    response = Response(lines(), mimetype="text/event-stream", headers={"Cache-Control": "no-store"})
    response.call_on_close(lambda: reply.streams.close(reply.handle))
    return response


def _model_object(m: dict) -> dict:
    created = calendar.timegm(time.strptime(m["created_at"], "%Y-%m-%dT%H:%M:%SZ"))
    return {"id": m["model_name"], "object": "model", "created": created, "owned_by": "cllm-studio"}


@bp.get("/models")
def list_models():
    """Your models, as OpenAI's model list."""
    return {"object": "list", "data": [_model_object(m) for m in studio().models.list()]}


@bp.get("/models/<path:model_name>")
def get_model(model_name):
    """One model, as OpenAI's model object."""
    return _model_object(studio().models.show(model_name))


@bp.post("/completions")
def completions():
    """Continue a prompt (OpenAI's legacy completions)."""
    body = _body(COMPLETION_FIELDS)
    name = _model_name(body)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    _refuse_unless(isinstance(prompt, str), "prompt must be one text (lists of prompts are not supported)",
                   "invalid_prompt")
    stream, include_usage = _stream_flags(body)
    reply = studio().chat.start_completion(name, prompt, _sampling(body, COMPLETION_DEFAULT_MAX_TOKENS), body.get("stop"))
    model = name
    cid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())

    def choice(text, finish):
        return {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}

    def wrap(choices, usage=None):
        return {"id": cid, "object": "text_completion", "created": created, "model": model,
                "choices": choices, **({"usage": usage} if usage is not None else {})}

    if stream:
        return _sse(
            reply,
            lambda piece: None if piece is None else wrap([choice(piece, None)]),
            lambda stats: wrap([choice("", _finish(stats))]),
            (lambda stats: wrap([], _usage(stats))) if include_usage else None,
        )
    text = "".join(reply.pieces())
    stats = reply.result()
    return wrap([choice(text, _finish(stats))], _usage(stats))


def _turns(messages) -> list[tuple[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise InvalidInput("messages must be a non-empty list of {role, content}", code="invalid_messages")
    turns = []
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ROLE_ALIASES:
            raise InvalidInput(f"messages[{i}].role must be system, developer, user or assistant",
                               code="invalid_messages")
        content = m.get("content")
        if isinstance(content, list):  # content parts: only text ones
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                       for p in content):
                raise InvalidInput(f"messages[{i}].content may hold only text parts", code="invalid_messages")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise InvalidInput(f"messages[{i}].content must be text", code="invalid_messages")
        turns.append((ROLE_ALIASES[role], content))
    # Several system messages become one, first, as the template puts a system turn first.
    system = "\n".join(c for r, c in turns if r == "system")
    rest = [(r, c) for r, c in turns if r != "system"]
    return ([("system", system)] if system else []) + rest


@bp.post("/chat/completions")
def chat_completions():
    """Answer a conversation (OpenAI's chat completions); nothing is stored."""
    body = _body(CHAT_FIELDS)
    name = _model_name(body)
    turns = _turns(body.get("messages"))
    stream, include_usage = _stream_flags(body)
    reply = studio().chat.start_turns(name, turns, _sampling(body, CHAT_DEFAULT_MAX_TOKENS), body.get("stop"))
    cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def wrap(kind, choices, usage=None):
        return {"id": cid, "object": kind, "created": created, "model": name, "system_fingerprint": None,
                "choices": choices, **({"usage": usage} if usage is not None else {})}

    def delta(piece):
        d = {"role": "assistant", "content": ""} if piece is None else {"content": piece}
        return wrap("chat.completion.chunk", [{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}])

    if stream:
        return _sse(
            reply,
            delta,
            lambda stats: wrap("chat.completion.chunk",
                               [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": _finish(stats)}]),
            (lambda stats: wrap("chat.completion.chunk", [], _usage(stats))) if include_usage else None,
        )
    text = "".join(reply.pieces())
    stats = reply.result()
    message = {"role": "assistant", "content": text, "refusal": None}
    return wrap("chat.completion", [{"index": 0, "message": message, "logprobs": None,
                                     "finish_reason": _finish(stats)}], _usage(stats))


# ---- the key, for the LLM tab ---------------------------------------------------------------


def _key_info(key: str) -> dict:
    return {"api_key": key, "base_url": request.host_url + "v1", "file": str(studio().openai_key.path)}


@key_bp.get("/key")
def get_key():
    """The OpenAI key and the base URL an OpenAI client needs."""
    return _key_info(studio().openai_key.get())


@key_bp.post("/key/regenerate")
def regenerate_key():
    """Make a new OpenAI key; the old one stops working at once."""
    return _key_info(studio().openai_key.regenerate())
