"""The LLM tab's routes: SSE format, conversations, refusals as JSON, stop by id and by the
client going away (over a real socket)."""

import json
import time

import pytest
import requests

from cllm_app.server import Server
from tests.endless import never_says_eot

SHAPE = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 64}


@pytest.fixture
def client(client):
    client.post("/api/models", json={"model_name": "m", **SHAPE})
    return client


def parse_sse(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def _err(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == code


def test_completion_streams_start_tokens_and_done(client):
    r = client.post("/api/models/m/complete", json={"prompt": "Hello", "sampling": {"max_new_tokens": 12, "seed": 4}})
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    assert r.headers["Cache-Control"] == "no-store"
    events = parse_sse(r.get_data(as_text=True))
    names = [e for e, _ in events]
    assert names[0] == "start" and names[-1] == "done" and set(names[1:-1]) <= {"token"}
    start, done = events[0][1], events[-1][1]
    assert len(start["stream_id"]) == 32 and start["prompt_tokens"] == 5
    assert done["completion_tokens"] <= 12 and done["finish_reason"] in ("length", "stop")
    assert set(done) == {"prompt_tokens", "completion_tokens", "seconds", "time_to_first_token",
                         "tokens_per_sec", "finish_reason"}
    # the same seed says the same thing
    again = parse_sse(client.post("/api/models/m/complete", json={"prompt": "Hello", "sampling": {"max_new_tokens": 12, "seed": 4}}).get_data(as_text=True))
    assert [d for e, d in again if e == "token"] == [d for e, d in events if e == "token"]


def test_chat_round_trip_over_http(client):
    c = client.post("/api/models/m/conversations", json={}).get_json()
    r = client.post(f"/api/conversations/{c['id']}/messages", json={"content": "Hi", "sampling": {"max_new_tokens": 6}})
    events = parse_sse(r.get_data(as_text=True))
    assert events[0][1]["user_message"]["content"] == "Hi"
    done = events[-1][1]
    text = "".join(d["text"] for e, d in events if e == "token")
    assert done["message"]["content"] == text and done["message"]["role"] == "assistant"
    shown = client.get(f"/api/conversations/{c['id']}").get_json()
    assert [m["role"] for m in shown["messages"]] == ["user", "assistant"]
    r = client.post(f"/api/conversations/{c['id']}/regenerate", json={"sampling": {"max_new_tokens": 4}})
    assert parse_sse(r.get_data(as_text=True))[-1][0] == "done"
    assert client.patch(f"/api/conversations/{c['id']}", json={"title": "Named"}).get_json()["title"] == "Named"
    listed = client.get("/api/models/m/conversations").get_json()["conversations"]
    assert [(x["title"], x["message_count"]) for x in listed] == [("Named", 2)]
    assert client.delete(f"/api/conversations/{c['id']}").get_json()["deleted"]["id"] == c["id"]
    _err(client.get(f"/api/conversations/{c['id']}"), 404, "conversation_not_found")


@pytest.mark.parametrize(
    "path, body, status, code",
    [
        ("/api/models/m/complete", {"prompt": ""}, 400, "empty_prompt"),
        ("/api/models/m/complete", {"prompt": 3}, 400, "empty_prompt"),
        ("/api/models/m/complete", {"prompt": "x", "sampling": {"temperature": -1}}, 400, "invalid_temperature"),
        ("/api/models/m/complete", {"prompt": "x", "sampling": {"top_p": 0}}, 400, "invalid_top_p"),
        ("/api/models/m/complete", {"prompt": "x", "sampling": {"max_new_tokens": 0}}, 400, "invalid_max_new_tokens"),
        ("/api/models/m/complete", {"prompt": "x", "sampling": {"top_k": "many"}}, 400, "invalid_top_k"),
        ("/api/models/m/complete", {"prompt": "x", "sampling": {"seed": -3}}, 400, "invalid_seed"),
        ("/api/models/m/complete", {"prompt": "x", "sampling": {"warmth": 1}}, 400, "unknown_field"),
        ("/api/models/m/complete", {"prompt": "x", "stop": ["a"] * 9}, 400, "invalid_stop"),
        ("/api/models/m/complete", {"prompt": "x", "colour": 1}, 400, "unknown_field"),
        ("/api/models/nobody/complete", {"prompt": "x"}, 404, "model_not_found"),
        ("/api/conversations/999/messages", {"content": "x"}, 404, "conversation_not_found"),
        ("/api/conversations/999/regenerate", {}, 404, "conversation_not_found"),
        ("/api/models/nobody/conversations", {}, 404, "model_not_found"),
        ("/api/models/m/conversations", {"title": ""}, 400, "invalid_title"),
        ("/api/models/m/conversations", {"title": "x" * 300}, 400, "invalid_title"),
        ("/api/streams/stop", {}, 400, "invalid_stream_id"),
    ],
)
def test_refusals_are_json_before_any_stream(client, path, body, status, code):
    _err(client.post(path, json=body), status, code)


def test_empty_message_and_bad_title_on_a_real_conversation(client):
    c = client.post("/api/models/m/conversations", json={"title": "t"}).get_json()
    _err(client.post(f"/api/conversations/{c['id']}/messages", json={"content": "   "}), 400, "empty_message")
    _err(client.post(f"/api/conversations/{c['id']}/regenerate", json={}), 400, "nothing_to_regenerate")
    _err(client.patch(f"/api/conversations/{c['id']}", json={"title": 5}), 400, "invalid_title")
    assert client.get(f"/api/conversations/{c['id']}").get_json()["messages"] == []


def test_sampling_presets_and_settings(client):
    presets = client.get("/api/sampling-presets").get_json()["presets"]
    assert [p["name"] for p in presets] == ["Precise", "Balanced", "Creative"]
    assert client.get("/api/models/m/sampling").get_json()["preset"] == "Balanced"
    put = client.put("/api/models/m/sampling", json={"preset": "Precise", "sampling": presets[0]["sampling"]})
    assert put.get_json()["preset"] == "Precise"
    _err(client.put("/api/models/m/sampling", json={"preset": "Custom", "sampling": {"top_p": 2}}), 400, "invalid_top_p")


# ---- over a real socket ------------------------------------------------------------------------


def never_ends(studio, name: str) -> None:
    never_says_eot(studio.models.folder(studio.models.get(name)) / "model.safetensors")


# A reply this long would take years: with <|endoftext|> ruled out too, a stream asked for it
# is still running whenever a test stops it, however fast the machine decodes (a stream of
# the normal 100,000 tokens ended within a second on an AVX-512 machine, before its Stop).
ENDLESS = 2**62


@pytest.fixture
def server(studio, monkeypatch):
    from cllm_app.api import openapi
    from cllm_app.services import sampling

    # The bound lives in the service's table, which the API's published schema also states.
    monkeypatch.setitem(sampling.SAMPLING_LIMITS, "max_new_tokens", (1, ENDLESS))
    monkeypatch.setitem(openapi._SAMPLING["max_new_tokens"], "maximum", ENDLESS)
    studio.models.create("big", n_layer=2, n_head=2, n_embd=32, block_size=256)
    never_ends(studio, "big")
    s = Server(studio).start()
    yield s
    s.stop()


def _wait(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _events(response):
    """(event, data) pairs as they arrive on a streamed requests response."""
    name = None
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            yield name, json.loads(line[6:])


def test_stop_by_id_ends_the_stream_with_its_done_event(studio, server):
    h = {"X-CLLM-Token": server.secret}
    c = requests.post(f"{server.origin}/api/models/big/conversations", json={}, headers=h, timeout=10).json()
    r = requests.post(f"{server.origin}/api/conversations/{c['id']}/messages", headers=h, stream=True, timeout=30,
                      json={"content": "Tell me a long story", "sampling": {"max_new_tokens": ENDLESS, "temperature": 1.0}})
    seen = []
    for event, data in _events(r):
        seen.append((event, data))
        if event == "start":
            stream_id = data["stream_id"]
        # Stop once, at the third token: the done event that follows must not ask again
        # (a second stop finds the stream ended and says so).
        if event == "token" and sum(e == "token" for e, _ in seen) == 3:
            stop = requests.post(f"{server.origin}/api/streams/stop", json={"stream_id": stream_id}, headers=h, timeout=10)
            assert stop.json() == {"stream_id": stream_id, "stopped": True}
        if event == "done":
            break
    done = seen[-1][1]
    assert done["finish_reason"] == "cancelled" and done["completion_tokens"] < ENDLESS
    assert done["message"]["finish_reason"] == "cancelled"
    kept = requests.get(f"{server.origin}/api/conversations/{c['id']}", headers=h, timeout=10).json()
    assert kept["messages"][-1]["content"] == done["message"]["content"]
    _wait(lambda: studio.streams.active() == 0)


def test_a_client_going_away_ends_its_stream(studio, server):
    h = {"X-CLLM-Token": server.secret}
    r = requests.post(f"{server.origin}/api/models/big/complete", headers=h, stream=True, timeout=30,
                      json={"prompt": "Once", "sampling": {"max_new_tokens": ENDLESS, "temperature": 1.0}})
    tokens = 0
    for event, _data in _events(r):
        tokens += event == "token"
        if tokens == 5:
            break
    assert studio.streams.active() == 1
    r.close()  # the socket closes: the server notices at its next write and frees the slot
    _wait(lambda: studio.streams.active() == 0)
    # the slot is free again: another stream runs to its end
    r = requests.post(f"{server.origin}/api/models/big/complete", headers=h, timeout=30,
                      json={"prompt": "Once", "sampling": {"max_new_tokens": 5}})
    assert r.status_code == 200 and "event: done" in r.text


def test_a_token_holding_a_unicode_line_break_stays_on_its_data_line():
    # An untrained model emits any character. U+0085, U+2028 and U+2029 end a line for
    # str.splitlines(), which requests' iter_lines(decode_unicode=True) and other clients use.
    from cllm_app.api.llm import _event
    from cllm_app.api.sse import json_data

    text = "a\x85b\u2028c\u2029d\ne\r\"f\U0001F600é"
    frame = _event("token", {"text": text})
    lines = frame.splitlines()
    assert lines[:2] == ["event: token", f"data: {json_data({'text': text})}"]
    assert json.loads(lines[1][6:]) == {"text": text}
    assert "é" in frame and "\U0001F600" in frame  # only the line breaks are escaped
