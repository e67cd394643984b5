"""GET /api/events: every change to the store, as server-sent events, for the window to follow.

    retry: 1000
    event: ready    id: N   {"last_id": N, "resumed": false}   (no id line when resumed)
    event: change   id: N   {"id", "topics": [...], "model_ids": [...], "at"}
    : heartbeat                                                every HEARTBEAT_SECONDS

Topics: models, queue, jobs (a job's state), progress (a running job's report), history (loss
points), crawls, store (anything else). Changes by this process, a job's worker, the CLI or
another connection all appear. A reconnecting EventSource sends Last-Event-ID and gets what it
missed first (`resumed: true`); when that is no longer kept, `resumed: false` tells it to fetch
everything it shows again. The heartbeat makes a dead connection fail its write, which frees
the thread this stream holds. Like every /api/ route it needs the launch secret; EventSource
cannot set headers, so the page sends it as `?token=`.
"""


from flask import Blueprint, Response, current_app, request

from cllm_app.api.context import studio
from cllm_app.api.llm import SSE_HEADERS, no_delay
from cllm_app.api.sse import json_data

bp = Blueprint("events", __name__, url_prefix="/api")

HEARTBEAT_SECONDS = 15.0


def _last_event_id() -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.args.get("last_event_id") or ""
    return int(raw) if raw.strip().isdigit() else None


def _frame(name: str, data: dict, event_id: int | None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json_data(data)}\n\n"


@bp.get("/events")
def events():
    """The store's changes as server-sent events (text/event-stream; resumes with Last-Event-ID)."""
    feed = studio().events
    heartbeat = float(current_app.config.get("EVENTS_HEARTBEAT", HEARTBEAT_SECONDS))
    asked = _last_event_id()
    missed = feed.after(asked) if asked is not None else None
    no_delay()

    def stream():
        yield "retry: 1000\n\n"
        if missed is None:
            last = feed.last_id
            yield _frame("ready", {"last_id": last, "resumed": False}, last)
        else:
            yield _frame("ready", {"last_id": feed.last_id, "resumed": True}, None)
            last = asked
            for event in missed:
                yield _frame("change", event, event["id"])
                last = event["id"]
        while not feed.closed:
            pending = feed.wait(last, heartbeat)
            if pending is None:  # fell behind what is kept: start over from now
                last = feed.last_id
                yield _frame("ready", {"last_id": last, "resumed": False}, last)
            elif not pending:
                yield ": heartbeat\n\n"
            else:
                for event in pending:
                    yield _frame("change", event, event["id"])
                last = pending[-1]["id"]

    return Response(stream(), mimetype="text/event-stream", headers=SSE_HEADERS)
