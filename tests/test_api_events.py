"""GET /api/events on the real server: a change committed by another process (the CLI) or
another connection arrives as an event; ids increase; a reconnect with Last-Event-ID gets what it missed; the stream needs the
token (as ?token= too, since EventSource cannot send headers) and sends heartbeats."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest
import requests

from cllm_app.server import Server
from cllm_app.services.studio import Studio
from tests.conftest import wait_until

TINY = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16}


@pytest.fixture
def server(studio):
    s = Server(studio).start()
    yield s
    s.stop()


class Stream:
    """An SSE reader on a plain socket (HTTP/1.0, so the body is the bare stream), read in this
    thread with a deadline: events come out as (name, id, data), comments as ("comment", None, text)."""

    def __init__(self, server, last_event_id=None, token=True, in_query=False):
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        path = "/api/events" + (f"?token={server.secret}" if token else "")
        if in_query and last_event_id is not None:
            path += f"&last_event_id={last_event_id}"
            last_event_id = None
        lines = [f"GET {path} HTTP/1.0", f"Host: 127.0.0.1:{server.port}", "Accept: text/event-stream"]
        if last_event_id is not None:
            lines.append(f"Last-Event-ID: {last_event_id}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buffer = b""
        head = self._until(b"\r\n\r\n", 10.0)
        self.status = int(head.split(b" ", 2)[1])

    def _until(self, mark: bytes, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while mark not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"nothing more from the stream after {timeout}s")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError("the stream ended")
            self.buffer += chunk
        block, self.buffer = self.buffer.split(mark, 1)
        return block

    def next(self, name, timeout=10.0, where=lambda _d: True):
        deadline = time.monotonic() + timeout
        while True:
            block = self._until(b"\n\n", max(0.01, deadline - time.monotonic())).decode()
            kind, event_id, data = "message", None, ""
            for line in block.split("\n"):
                if line.startswith(":"):
                    kind, data = "comment", line
                elif line.startswith("id: "):
                    event_id = int(line[4:])
                elif line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    data += line[6:]
            if kind == "comment" and kind == name:
                return kind, None, data
            if data and kind == name and kind != "comment" and where(json.loads(data)):
                return kind, event_id, json.loads(data)

    def close(self):
        self.sock.close()


def cllm(*args, home):
    done = subprocess.run([sys.executable, "-m", "cllm_app", *args], env={**os.environ, "CLLM_HOME": str(home)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_change_by_another_process_arrives_with_increasing_ids_and_resumes(server, home):
    stream = Stream(server)
    try:
        _, ready_id, ready = stream.next("ready")
        assert ready == {"last_id": ready_id, "resumed": False}

        cllm("models", "create", "first", "--layers", "1", "--heads", "2", "--dim", "16", "--context", "16", home=home)
        _, id1, ev1 = stream.next("change", where=lambda d: "models" in d["topics"])
        first_id = server.app.config["STUDIO"].models.get("first").id
        assert ev1["id"] == id1 > ready_id and ev1["model_ids"] == [first_id]

        cllm("models", "rename", "first", "second", home=home)
        _, id2, ev2 = stream.next("change", where=lambda d: "models" in d["topics"])
        assert id2 > id1 and ev2["model_ids"] == [first_id]
    finally:
        stream.close()

    # A change while no one listens; a reconnect from the last id seen gets it, first.
    h = {"X-CLLM-Token": server.secret}
    assert requests.post(server.origin + "/api/models/second/rename", json={"model_name": "third"},
                         headers=h, timeout=10).status_code == 200
    wait_until(lambda: server.app.config["STUDIO"].events.last_id > id2, 10, "the rename's event")
    again = Stream(server, last_event_id=id2)
    try:
        _, no_id, ready = again.next("ready")
        assert ready["resumed"] is True and no_id is None  # the resumed stream keeps its last id
        _, id3, ev3 = again.next("change")
        assert id3 == id2 + 1 and "models" in ev3["topics"]
    finally:
        again.close()
    by_query = Stream(server, last_event_id=id2, in_query=True)  # a first connection cannot set the header
    try:
        assert by_query.next("ready")[2]["resumed"] is True and by_query.next("change")[1] == id3
    finally:
        by_query.close()

    # An id this feed never gave (an earlier run of the app): start over, fetch everything.
    fresh = Stream(server, last_event_id=10**9)
    try:
        _, fresh_id, ready = fresh.next("ready")
        assert ready["resumed"] is False and fresh_id == ready["last_id"] >= id3
    finally:
        fresh.close()


def test_a_job_report_by_another_connection_is_a_progress_event(server, home):
    studio = server.app.config["STUDIO"]
    studio.models.create("m", **TINY)
    job = studio.jobs.submit("ingest", "m", {}, state="running")
    stream = Stream(server)
    try:
        stream.next("ready")
        other = Studio(home)
        try:
            other.jobs.report(job["id"], progress=0.5, detail={"files_done": 1})
            stream.next("change", where=lambda d: d["topics"] == ["progress"])
            other.jobs.finish(job["id"], "done")
            stream.next("change", where=lambda d: "jobs" in d["topics"])
        finally:
            other.close()
    finally:
        stream.close()


def test_the_stream_needs_the_token_and_sends_heartbeats(server):
    refused = Stream(server, token=False)
    assert refused.status == 403
    refused.close()
    server.app.config["EVENTS_HEARTBEAT"] = 0.2
    stream = Stream(server)
    try:
        stream.next("ready")
        assert stream.next("comment")[2] == ": heartbeat"
    finally:
        stream.close()


def test_a_change_carries_the_state_now_of_what_it_touched(server, home):
    """A window's store takes models, jobs and crawls from the events alone: each change says
    how they stand now, exactly as the API shows them, whichever process made it."""
    studio = server.app.config["STUDIO"]
    h = {"X-CLLM-Token": server.secret}
    stream = Stream(server)
    try:
        stream.next("ready")
        cllm("models", "create", "m", "--layers", "1", "--heads", "2", "--dim", "16", "--context", "16", home=home)
        _, _, created = stream.next("change", where=lambda d: "models" in d["topics"])
        listed = requests.get(server.origin + "/api/models", headers=h, timeout=10).json()["models"]
        assert created["models"] == listed

        studio.queue.add_text("m", "words to learn " * 40, origin="a.txt", source_kind="file")
        _, _, added = stream.next("change", where=lambda d: "queue" in d["topics"])
        [model] = added["models"]
        assert model["queue"]["items"] == 1 and model["queue"]["tokens"] > 0

        other = Studio(home)  # a job's worker, in another process as far as the feed can tell
        try:
            job = other.jobs.submit("ingest", "m", {}, state="running")
            other.jobs.report(job["id"], progress=0.5, message="half way")
        finally:
            other.close()
        _, _, progress = stream.next("change", where=lambda d: any(j["progress"] == 0.5 for j in d.get("jobs", [])))
        [shown] = [j for j in progress["jobs"] if j["id"] == job["id"]]
        assert shown == studio.jobs.get(job["id"]) and shown["model_id"] == model["id"]

        studio.jobs.finish(job["id"], "done")
        studio.changed()
        _, _, done = stream.next("change", where=lambda d: any(j["state"] == "done" for j in d.get("jobs", [])))
        assert next(m for m in done["models"] if m["id"] == model["id"])["busy"] is None

        cllm("models", "delete", "m", "--yes", home=home)
        _, _, deleted = stream.next("change", where=lambda d: {"id": model["id"], "deleted": True} in d.get("models", []))
        assert deleted["model_ids"] == [model["id"]]
    finally:
        stream.close()
