"""The Research routes through Flask's test client: answers, jobs and every refusal as JSON."""

import io

from research_support import make_model


def _err(response, status, code=None):
    assert response.status_code == status, response.get_json()
    body = response.get_json()
    assert set(body) == {"error"} and body["error"]["message"]
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]


def test_evaluate_text_validation_and_job(client, studio):
    make_model(studio, "m")
    r = client.post("/api/models/m/evaluate", json={"source": "text", "text": "hello there"})
    assert r.status_code == 200 and r.get_json()["tokens"] == 11
    r = client.post("/api/models/m/evaluate", json={})  # the default: its own validation split
    assert r.status_code == 200 and r.get_json()["source"]["split"] == "validation"
    r = client.post("/api/models/m/evaluate", json={"source": "text", "text": "x" * 50, "run": "job"})
    assert r.status_code == 202 and r.get_json()["kind"] == "evaluate"


def test_evaluate_refusals(client, studio):
    make_model(studio, "m")
    _err(client.post("/api/models/ghost/evaluate", json={}), 404, "model_not_found")
    _err(client.post("/api/models/m/evaluate", json={"source": "text", "text": ""}), 400, "empty_text")
    _err(client.post("/api/models/m/evaluate", json={"max_tokens": "many"}), 400, "invalid_max_tokens")
    _err(client.post("/api/models/m/evaluate", json={"colour": "red"}), 400, "unknown_field")
    _err(client.post("/api/models/m/evaluate", data="not json", content_type="application/json"), 400)
    _err(client.post("/api/models/m/evaluate", json={"source": "queue", "from_model": "ghost"}), 404)


def test_evaluate_upload(client, studio):
    make_model(studio, "m")
    r = client.post("/api/models/m/evaluate/upload", data={"file": (io.BytesIO("naïve text".encode()), "t.txt")},
                    content_type="multipart/form-data")
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["source"]["origin"] == "t.txt" and r.get_json()["bytes"] == len("naïve text".encode())
    _err(client.post("/api/models/m/evaluate/upload", data={}, content_type="multipart/form-data"), 400, "no_file")
    _err(client.post("/api/models/m/evaluate/upload", data={"file": (io.BytesIO(b"\x00\x01\x02"), "x.bin")},
                     content_type="multipart/form-data"), 400, "binary_file")
    _err(client.post("/api/models/m/evaluate/upload", data={"file": (io.BytesIO(b"caf\xe9"), "latin1.txt")},
                     content_type="multipart/form-data"), 400, "not_utf8")


def test_compare_inspect_lineage(client, studio):
    make_model(studio, "a")
    client.post("/api/models/a/duplicate", json={"model_name": "b"})
    r = client.get("/api/research/compare?model_name=a&model_name=b")
    assert [m["model_name"] for m in r.get_json()["models"]] == ["a", "b"]
    _err(client.get("/api/research/compare"), 400, "no_models")
    r = client.post("/api/models/a/inspect", json={"prompt": "abc", "top_k": 3, "layer": 1, "head": 0})
    assert r.status_code == 200 and len(r.get_json()["top_k"]) == 3 and len(r.get_json()["attention"]) == 4
    _err(client.post("/api/models/a/inspect", json={"prompt": "abc", "layer": 9}), 400, "invalid_layer")
    _err(client.post("/api/models/a/inspect", json={}), 400, "empty_prompt")
    g = client.get("/api/research/lineage").get_json()
    assert [e["kind"] for e in g["edges"]] == ["duplicated"]


def test_notes_routes_and_refusals(client, studio):
    studio.models.create("m")
    r = client.post("/api/research/notes", json={"note_name": "ideas", "content": "# Ideas\n<b>x</b>"})
    assert r.status_code == 201 and r.get_json()["note_name"] == "ideas.md"
    assert "&lt;b&gt;" in client.get("/api/research/notes/ideas.md").get_json()["html"]
    assert client.put("/api/research/notes/ideas.md", json={"content": "new"}).get_json()["content"] == "new"
    assert client.put("/api/research/notes/ideas.md/models/m").get_json()["models"] == ["m"]
    assert [n["note_name"] for n in client.get("/api/research/notes?model_name=m").get_json()["notes"]] == ["ideas.md"]
    assert client.get("/api/research/notes?q=NEW").get_json()["notes"][0]["snippets"] == ["new"]
    assert client.delete("/api/research/notes/ideas.md/models/m").get_json()["models"] == []
    r = client.post("/api/research/notes/ideas.md/rename", json={"note_name": "later.md"})
    assert r.get_json()["note_name"] == "later.md"
    r = client.post("/api/research/notes/upload", data={"file": (io.BytesIO(b"imported"), "doc.txt")},
                    content_type="multipart/form-data")
    assert r.status_code == 201 and r.get_json()["note_name"] == "doc.txt"
    _err(client.post("/api/research/notes", json={"note_name": "../../x"}), 400, "invalid_note_name")
    _err(client.post("/api/research/notes", json={"note_name": "later"}), 409, "note_exists")
    _err(client.get("/api/research/notes/..%2F..%2Fcllm.db"), 404)
    _err(client.get("/api/research/notes/.hidden.md"), 400, "invalid_note_name")
    _err(client.get("/api/research/notes/missing.md"), 404, "note_not_found")
    _err(client.delete("/api/research/notes/later.md", json={}), 400, "confirmation_required")
    assert client.delete("/api/research/notes/later.md", json={"confirm": True}).status_code == 200
    _err(client.put("/api/research/notes/doc.txt/models/ghost"), 404, "model_not_found")
