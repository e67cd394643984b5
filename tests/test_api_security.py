"""The guard's two keys: the launch secret opens /api/ only, the OpenAI key opens /v1/ only;
a token in the URL opens event streams only; a request must name its Host."""

import json

import pytest
from flask import Response

from tests.conftest import SECRET


def _err(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"]["code"] == code and body["error"]["message"]
    return body["error"]


@pytest.fixture
def key(client):
    return client.get("/api/openai/key").get_json()["api_key"]


def bearer(value):
    return {"Authorization": f"Bearer {value}", "X-CLLM-Token": ""}


def test_the_openai_key_is_its_own_and_opens_v1(client, key):
    assert key.startswith("sk-cllm-") and SECRET not in key
    assert client.get("/v1/models", headers=bearer(key)).status_code == 200


def test_the_openai_key_does_not_open_the_apps_api(client, key):
    for headers in ({"X-CLLM-Token": key}, bearer(key)):
        _err(client.get("/api/models", headers=headers), 403, "forbidden")
        _err(client.delete("/api/trash", json={"confirm": True}, headers=headers), 403, "forbidden")
    stream = {"X-CLLM-Token": "", "Accept": "text/event-stream"}
    _err(client.get(f"/api/models?token={key}", headers=stream), 403, "forbidden")


def test_the_launch_secret_does_not_open_v1(client):
    for headers in (bearer(SECRET), {"X-CLLM-Token": SECRET}, {}):
        r = client.get("/v1/models", headers=headers)
        assert r.status_code == 401
        assert r.get_json()["error"]["code"] == "invalid_api_key"  # OpenAI's shape
        assert r.get_json()["error"]["type"] == "authentication_error"
    assert client.get(f"/v1/models?token={SECRET}").status_code == 401


def test_regenerate_invalidates_the_old_key_at_once(client, key):
    new = client.post("/api/openai/key/regenerate").get_json()
    assert new["api_key"] != key and new["base_url"] == "http://127.0.0.1:5555/v1"
    assert client.get("/v1/models", headers=bearer(key)).status_code == 401
    assert client.get("/v1/models", headers=bearer(new["api_key"])).status_code == 200
    assert client.get("/api/openai/key").get_json()["api_key"] == new["api_key"]


def test_the_key_persists_in_a_private_file_of_the_data_root(client, key, studio, home):
    path = home / "openai-key"
    assert path.read_text().strip() == key
    assert (path.stat().st_mode & 0o777) == 0o600
    from cllm_app.services.openai_key import OpenAIKey

    assert OpenAIKey(path).get() == key  # the next launch finds the same key
    path.chmod(0o644)
    assert OpenAIKey(path).get() == key and (path.stat().st_mode & 0o777) == 0o600


def test_a_broken_key_file_gets_a_new_key(studio, home):
    from cllm_app.services.openai_key import OpenAIKey

    path = home / "openai-key"
    path.write_text("")
    key = OpenAIKey(path).get()
    assert key.startswith("sk-cllm-") and path.read_text().strip() == key


def test_token_in_the_url_is_refused_on_json_routes(client):
    no_header = {"X-CLLM-Token": ""}
    _err(client.get(f"/api/models?token={SECRET}", headers=no_header), 403, "forbidden")
    _err(client.post(f"/api/models?token={SECRET}", json={}, headers=no_header), 403, "forbidden")
    # Asking for an event stream from a JSON route does not get the JSON out either.
    faked = {**no_header, "Accept": "text/event-stream"}
    error = _err(client.get(f"/api/models?token={SECRET}", headers=faked), 403, "forbidden")
    assert "event streams" in error["message"]
    # A POST with that Accept is no EventSource.
    _err(client.post(f"/api/models?token={SECRET}", json={}, headers=faked), 403, "forbidden")
    assert client.get("/api/models").status_code == 200  # the header still works


def test_token_in_the_url_opens_an_event_stream(client):
    app = client.application

    # What /api/events (an EventSource GET) will look like; no such route exists yet.
    def events():
        return Response("event: hello\ndata: {}\n\n", mimetype="text/event-stream")

    app.add_url_rule("/api/test-events", "test_events", events)
    stream = {"X-CLLM-Token": "", "Accept": "text/event-stream"}
    r = client.get(f"/api/test-events?token={SECRET}", headers=stream)
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    assert b"event: hello" in r.data
    _err(client.get("/api/test-events?token=wrong", headers=stream), 403, "forbidden")
    _err(client.get(f"/api/test-events?token={SECRET}", headers={"X-CLLM-Token": ""}), 403, "forbidden")


@pytest.mark.parametrize("path", ["/api/models", "/v1/models", "/"])
def test_a_request_without_host_is_refused(client, path):
    r = client.get(path, environ_overrides={"HTTP_HOST": ""})
    assert r.status_code == 403
    body = json.loads(r.data)
    assert "Host" in body["error"]["message"]
