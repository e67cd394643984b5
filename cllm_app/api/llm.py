"""The LLM tab's routes: conversations, sampling settings, and replies streamed as server-sent events.

A streamed reply is `text/event-stream` with these events, each `data` one JSON object:

    event: start   {"stream_id", "prompt_tokens", ...}   (chat: "conversation_id", "user_message")
    event: token   {"text"}                              one per piece of text, sent at once
    event: done    {"prompt_tokens", "completion_tokens", "seconds", "time_to_first_token",
                    "tokens_per_sec", "finish_reason"}   (chat: "message", the saved reply)
    event: error   {"code", "message"}                   the stream failed part way

Refusals found before the stream begins (unknown model, bad sampling, empty prompt, too many
streams) are ordinary JSON errors with a 4xx status. POST /api/streams/stop ends a stream
after its current token; a client that goes away ends it too.
"""

import logging
import socket
import time
from collections.abc import Iterator

from flask import Blueprint, Response, jsonify, request

from cllm_app.api.body import json_body
from cllm_app.api.context import studio
from cllm_app.api.sse import json_data
from cllm_app.errors import CllmError
from cllm_app.services.chat import Reply
from cllm_app.services.sampling import PRESETS

log = logging.getLogger(__name__)
bp = Blueprint("generate", __name__, url_prefix="/api")

SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def _event(name: str, data: dict) -> str:
    return f"event: {name}\ndata: {json_data(data)}\n\n"


def no_delay() -> None:
    """Send each write at once: with Nagle's algorithm a small write waits for the previous
    one's acknowledgement, which costs a round trip per token (werkzeug writes a chunk in
    several small pieces)."""
    sock = request.environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


GATHER_SECONDS = 0.01


def drained(reply: Reply) -> Iterator[list[str]]:
    """Iterate `reply` in this thread and give out, at each write, every piece made since the
    last one: the first at once, then at most one write per GATHER_SECONDS. A write per token
    cost a fifth of a small model's speed; a hundred writes a second look just as live, and
    generating in a thread of its own (tried) lost as much again to handing pieces over.
    If the reader goes away (the next write fails), the stream is told to stop and ends as
    cancelled."""
    pieces = reply.pieces()
    batch: list[str] = []
    last = float("-inf")
    finished = False
    try:
        for piece in pieces:
            batch.append(piece)
            now = time.monotonic()
            if now - last >= GATHER_SECONDS:
                yield batch
                batch, last = [], now
        finished = True
        if batch:
            yield batch
    finally:
        if not finished:
            reply.handle.stop_event.set()
        pieces.close()


def sse_response(reply: Reply) -> Response:
    """Stream `reply` as server-sent events: one event per piece, each write sent at once."""
    no_delay()

    def events():
        yield _event("start", reply.start_info())
        try:
            for pieces in drained(reply):
                # One event per write, not per piece: encoding and parsing an event per token
                # cost more than a small model takes to make one. `pieces` keeps the count.
                yield _event("token", {"text": "".join(pieces), "pieces": len(pieces)})
        except CllmError as e:
            yield _event("error", {"code": e.code, "message": e.message})
            return
        except Exception as e:  # a bug mid-stream: the headers are gone, so say it in the stream
            log.exception("a stream failed")
            yield _event("error", {"code": "internal_error", "message": f"generation failed: {e}"})
            return
        yield _event("done", reply.result())

    response = Response(events(), mimetype="text/event-stream", headers=SSE_HEADERS)
    # If the client leaves before the first event is sent, the generator never runs: free the slot here.
    response.call_on_close(lambda: reply.streams.close(reply.handle))
    return response


# ---- conversations --------------------------------------------------------------------------


@bp.get("/models/<path:model_name>/conversations")
def list_conversations(model_name):
    """A model's conversations, the most recently active first."""
    return studio().chat.list(model_name)


@bp.post("/models/<path:model_name>/conversations")
def create_conversation(model_name):
    """Start a new, empty conversation with a model."""
    body = json_body("a new conversation")
    return jsonify(studio().chat.create(model_name, body.get("title"))), 201


@bp.get("/conversations/<int:conversation_id>")
def show_conversation(conversation_id):
    """One conversation with all its messages."""
    return studio().chat.show(conversation_id)


@bp.patch("/conversations/<int:conversation_id>")
def rename_conversation(conversation_id):
    """Rename a conversation."""
    body = json_body("a conversation")
    return studio().chat.rename(conversation_id, body.get("title"))


@bp.delete("/conversations/<int:conversation_id>")
def delete_conversation(conversation_id):
    """Delete a conversation and its messages."""
    return {"deleted": studio().chat.delete(conversation_id)}


@bp.post("/conversations/<int:conversation_id>/messages")
def send_message(conversation_id):
    """Add the person's message and stream the model's reply (server-sent events)."""
    body = json_body("a message")
    return sse_response(studio().chat.start_reply(conversation_id, body.get("content"), body.get("sampling")))


@bp.post("/conversations/<int:conversation_id>/regenerate")
def regenerate(conversation_id):
    """Replace the last reply with a new one, streamed (server-sent events)."""
    body = json_body("a regenerate")
    return sse_response(studio().chat.start_reply(conversation_id, None, body.get("sampling"), regenerate=True))


# ---- completion, stop, sampling -------------------------------------------------------------


@bp.post("/models/<path:model_name>/complete")
def complete(model_name):
    """Continue a prompt, streamed (server-sent events)."""
    body = json_body("a completion")
    return sse_response(studio().chat.start_completion(model_name, body.get("prompt"), body.get("sampling"), body.get("stop")))


@bp.post("/streams/stop")
def stop_stream():
    """Stop a stream after its current token; it then ends with its done event."""
    stream_id = json_body("a stop")["stream_id"]
    return {"stream_id": stream_id, "stopped": studio().streams.stop(stream_id)}


@bp.get("/sampling-presets")
def sampling_presets():
    """The named sampling presets (Custom is any other mix)."""
    return {"presets": [{"name": name, "sampling": values} for name, values in PRESETS.items()]}


@bp.get("/models/<path:model_name>/sampling")
def get_sampling(model_name):
    """The sampling settings remembered for a model (its preset and values)."""
    return studio().chat.sampling_settings(model_name)


@bp.put("/models/<path:model_name>/sampling")
def put_sampling(model_name):
    """Remember sampling settings for a model."""
    body = json_body("sampling settings")
    return studio().chat.save_sampling_settings(model_name, body.get("preset"), body.get("sampling"))
