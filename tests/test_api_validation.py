"""Requests are checked against the schemas /api/openapi.json publishes, and what the fuzzer
found (tests/test_api_fuzz.py) stays fixed: each case here was a 5xx, a refusal of a request the
description allowed, or an acceptance of one it forbade."""

import pytest

from cllm_app.api.openapi import ROUTES

TOO_BIG = 733351995267715885432832  # above 2**63: no SQLite row id


def _err(response, status, code=None):
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:300])
    error = response.get_json()["error"]
    assert error["message"]
    if code:
        assert error["code"] == code, error


@pytest.mark.parametrize("method, path", [
    ("delete", "/api/conversations/{}"), ("get", "/api/conversations/{}"), ("patch", "/api/conversations/{}"),
    ("post", "/api/conversations/{}/messages"), ("post", "/api/conversations/{}/regenerate"),
    ("get", "/api/crawls/{}"), ("get", "/api/crawls/{}/urls"), ("post", "/api/crawls/{}/pause"),
    ("post", "/api/crawls/{}/stop"), ("post", "/api/crawls/{}/resume"), ("get", "/api/jobs/{}"),
    ("post", "/api/jobs/{}/stop"), ("post", "/api/trash/{}/restore"),
    ("delete", "/api/models/m/queue/{}"), ("get", "/api/models/m/queue/{}"),
])
def test_an_id_beyond_sqlite_integers_is_not_found(client, method, path):
    client.post("/api/models", json={"model_name": "m"})
    body = {"title": "t"} if method == "patch" else {"content": "hi"} if path.endswith("messages") else {}
    _err(getattr(client, method)(path.format(TOO_BIG), json=body), 404)
    _err(getattr(client, method)(path.format(2**63), json=body), 404)


def test_json_nested_thousands_deep_is_refused(client):
    deep = "[" * 5000 + "]" * 5000
    _err(client.post("/api/models", data=deep, content_type="application/json"), 400, "invalid_json")
    _err(client.post("/api/models", data='{"model_name": ' + deep + "}", content_type="application/json"),
         400, "invalid_json")
    assert client.get("/api/models").status_code == 200


@pytest.mark.parametrize("path, body, code", [
    ("/api/models", {"tokenizer_from": None}, "invalid_tokenizer_from"),
    ("/api/models", {"n_layer": 65}, "invalid_n_layer"),
    ("/api/models", {"n_head": 3669774117}, "invalid_n_head"),
    ("/api/models", {"learning_rate": 0}, "invalid_learning_rate"),
    ("/api/models", {"model_name": ""}, "invalid_name"),
    ("/api/models/m/queue/files", {"paths": ["a.txt"], "text_field": -19060504429}, "invalid_text_field"),
    ("/api/models/m/queue/files", {"paths": []}, "invalid_paths"),
    ("/api/models/m/queue/remove", {"entry_ids": [TOO_BIG]}, "invalid_entry_ids"),
    ("/api/models/m/complete", {"prompt": "a", "sampling": {"top_p": 0}}, "invalid_top_p"),
    ("/api/models/m/complete", {"prompt": "a", "stop": ["x"] * 5}, "invalid_stop"),
    ("/api/models/m/crawls", {"start_urls": []}, "invalid_start_urls"),
])
def test_bodies_the_schema_forbids_are_refused(client, path, body, code):
    client.post("/api/models", json={"model_name": "m"})
    _err(client.post(path, json=body), 400, code)


@pytest.mark.parametrize("path, code", [
    ("/api/jobs?active=null", "invalid_active"),
    ("/api/models?sort=colour", "invalid_sort"),
    ("/api/models/m/loss-history?since_step=-566", "invalid_since_step"),
    ("/api/models/m/queue?limit=0", "invalid_limit"),
    ("/api/research/compare", "no_models"),
])
def test_query_strings_the_schema_forbids_are_refused(client, path, code):
    client.post("/api/models", json={"model_name": "m"})
    _err(client.get(path), 400, code)


def test_confirmation_is_stated_in_the_schema_and_refused_with_its_own_code(client):
    spec = client.get("/api/openapi.json").get_json()
    body = spec["paths"]["/api/trash"]["delete"]["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"]["properties"]["confirm"]["const"] is True
    _err(client.delete("/api/trash", json={"confirm": False}), 400, "confirmation_required")
    _err(client.delete("/api/trash"), 400, "confirmation_required")
    assert client.delete("/api/trash", json={"confirm": True}).get_json() == {"removed": 0}


def test_streamed_replies_are_described_as_event_streams(client):
    spec = client.get("/api/openapi.json").get_json()
    for path in ("/api/models/{model_name}/complete", "/api/conversations/{conversation_id}/messages",
                 "/api/conversations/{conversation_id}/regenerate"):
        ok = spec["paths"][path]["post"]["responses"]["200"]
        assert list(ok["content"]) == ["text/event-stream"], path


def test_every_json_body_is_described_as_a_closed_object(client):
    """The validator reads these schemas: a field the description does not name is refused."""
    for (method, path), (body, _status, _response) in ROUTES.items():
        if body is not None and "multipart" not in body:
            assert body["additionalProperties"] is False, (method, path)


def test_a_path_with_a_nul_is_refused_not_a_crash(client):
    client.post("/api/models", json={"model_name": "m"})
    _err(client.post("/api/models/m/queue/files", json={"paths": ["a\u0000b"]}), 400, "invalid_paths")
    _err(client.post("/api/models", json={"tokenizer": "bpe", "tokenizer_data": ["a\u0000b"]}), 400,
         "invalid_tokenizer_data")


def test_whole_numbers_written_with_a_point_are_whole_numbers(client, studio):
    """JSON Schema counts 3.0 an integer, so the description allows it: the services get 3."""
    client.post("/api/models", json={"model_name": "m"})
    entry = studio.queue.add_text("m", "some text to keep", origin="t", source_kind="text")["added"]
    answer = client.post("/api/models/m/queue/remove", json={"entry_ids": [float(entry["id"])]})
    assert answer.status_code == 200, answer.get_json()
    assert [e["id"] for e in answer.get_json()["removed"]] == [entry["id"]]
    assert client.patch("/api/models/m", json={"batch_size": 4.0}).get_json()["batch_size"] == 4


def test_an_evaluation_run_as_a_job_is_a_documented_202(client):
    spec = client.get("/api/openapi.json").get_json()
    for path in ("/api/models/{model_name}/evaluate", "/api/models/{model_name}/evaluate/upload"):
        responses = spec["paths"][path]["post"]["responses"]
        assert responses["202"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Job"}
    upload = spec["paths"]["/api/models/{model_name}/evaluate/upload"]["post"]["requestBody"]
    assert set(upload["content"]["multipart/form-data"]["schema"]["properties"]) == {"file", "max_tokens", "run"}


def test_numbers_beyond_any_range_are_refused_not_a_crash(client):
    _err(client.post("/api/models", data='{"n_layer": ' + "9" * 400 + "}", content_type="application/json"),
         400, "invalid_n_layer")
    _err(client.post("/api/models", data='{"learning_rate": NaN}', content_type="application/json"),
         400, "invalid_learning_rate")
    _err(client.post("/api/models", data='{"learning_rate": 1e999}', content_type="application/json"),
         400, "invalid_learning_rate")


CHECKED_KEYWORDS = {
    "type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "minLength", "maxLength", "minItems",
    "maxItems", "items", "properties", "required", "additionalProperties", "$ref",
    "description", "default", "format", "x-code", "x-codes", "x-message", "x-messages",  # annotations, refusals' words
}


def test_request_schemas_use_only_what_the_checker_enforces():
    """A keyword api/body.py does not know would be published and not enforced: the
    description and the server would disagree again."""
    from cllm_app.api.openapi import QUERY_PARAMS, SCHEMAS

    def walk(schema, where):
        assert set(schema) <= CHECKED_KEYWORDS, (where, set(schema) - CHECKED_KEYWORDS)
        if "$ref" in schema:
            walk(SCHEMAS[schema["$ref"].rsplit("/", 1)[-1]], schema["$ref"])
        for sub in (schema.get("properties") or {}).values():
            walk(sub, where)
        if isinstance(schema.get("items"), dict):
            walk(schema["items"], where)

    for (method, path), (body, _status, _response) in ROUTES.items():
        if body is not None:
            walk(body.get("multipart", body), (method, path))
    for key, params in QUERY_PARAMS.items():
        for name, schema, _required in params:
            walk(schema, (key, name))
