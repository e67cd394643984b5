"""The queue over HTTP: uploads and paths become ingest jobs; import, list, stats, preview,
remove, clear, and the refusals of each."""

import io

import pytest

from cllm_app.api import create_app
from cllm_app.jobs.ingest import run_ingest

SMALL = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16}
H = {"X-CLLM-Token": "s"}


@pytest.fixture
def client(studio):
    studio.models.create("m", **SMALL)
    studio.models.create("other", **SMALL)
    app = create_app(studio, "s", allowed_hosts={"127.0.0.1:1"})
    app.config["SERVER_NAME"] = "127.0.0.1:1"
    return app.test_client()


def test_upload_and_paths_become_ingest_jobs(studio, client, tmp_path):
    r = client.post("/api/models/m/queue/upload", headers=H, data={
        "files": [(io.BytesIO(b"uploaded text"), "up.txt"), (io.BytesIO(b"\x00\x01"), "blob.bin")]})
    assert r.status_code == 202 and r.get_json()["kind"] == "ingest"
    run_ingest(studio, r.get_json()["id"])
    report = client.get(f"/api/jobs/{r.get_json()['id']}", headers=H).get_json()["detail"]
    assert [(x["origin"], x["outcome"]) for x in report["report"]] == [("up.txt", "added"), ("blob.bin", "refused")]
    assert client.post("/api/models/m/queue/upload", data={}, headers=H).get_json()["error"]["code"] == "no_files"
    f = tmp_path / "p.csv"
    f.write_text("a,b\nx,longer cell\n")
    r = client.post("/api/models/m/queue/files", json={"paths": [str(f)], "csv_column": "a"}, headers=H)
    assert r.status_code == 202
    run_ingest(studio, r.get_json()["id"])
    items = client.get("/api/models/m/queue", headers=H).get_json()["items"]
    assert client.get(f"/api/models/m/queue/{items[1]['id']}", headers=H).get_json()["text"] == "x"
    for body, code in [({"paths": "nope"}, "invalid_paths"), ({"paths": []}, "invalid_paths"),
                       ({"paths": ["x"], "text_field": ["a"]}, "invalid_text_field"),
                       ({"paths": ["x"], "surprise": 1}, None)]:
        r = client.post("/api/models/m/queue/files", json=body, headers=H)
        assert r.status_code == 400 and (code is None or r.get_json()["error"]["code"] == code)
    assert client.post("/api/models/nobody/queue/files", json={"paths": ["x"]}, headers=H).status_code == 404


def test_list_stats_preview_remove_clear(studio, client):
    for i in range(5):
        studio.queue.add_text("m", f"text {i} " * 10, origin=f"doc_{i}.txt", source_kind="file")
    page = client.get("/api/models/m/queue?offset=1&limit=2&search=doc", headers=H).get_json()
    assert [e["origin"] for e in page["items"]] == ["doc_1.txt", "doc_2.txt"] and page["total"] == 5
    assert client.get("/api/models/m/queue?limit=0", headers=H).status_code == 400
    assert client.get("/api/models/m/queue?limit=x", headers=H).status_code == 400
    stats = client.get("/api/models/m/queue/stats", headers=H).get_json()
    assert stats["items"] == 5 and stats["by_source"][0]["source_kind"] == "file"
    first = page["items"][0]["id"]
    p = client.get(f"/api/models/m/queue/{first}?max_chars=4", headers=H).get_json()
    assert p["text"] == "text" and p["truncated"] is True
    assert client.get(f"/api/models/m/queue/{first}?max_chars=x", headers=H).status_code == 400
    r = client.post("/api/models/m/queue/remove", json={"entry_ids": [first, 9999]}, headers=H)
    assert r.status_code == 404 and client.get("/api/models/m/queue", headers=H).get_json()["total"] == 5
    r = client.post("/api/models/m/queue/remove", json={"entry_ids": [first]}, headers=H)
    assert r.status_code == 200 and r.get_json()["removed"][0]["id"] == first
    assert client.post("/api/models/m/queue/remove", json={"entry_ids": "all"}, headers=H).status_code == 400
    r = client.delete("/api/models/m/queue", json={}, headers=H)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "confirmation_required"
    r = client.delete("/api/models/m/queue", json={"confirm": True}, headers=H)
    assert r.get_json() == {"model_name": "m", "removed": 4}
    assert client.delete("/api/models/m/queue/1", headers=H).status_code == 404


def test_import_over_http(studio, client):
    studio.queue.add_text("other", "other's text", origin="o.txt", source_kind="file")
    r = client.post("/api/models/m/queue/import", json={"from": "other"}, headers=H)
    assert r.status_code == 202
    run_ingest(studio, r.get_json()["id"])
    assert client.get("/api/models/m/queue", headers=H).get_json()["items"][0]["imported_from"] == "other"
    r = client.post("/api/models/m/queue/import", json={"from": "m"}, headers=H)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "self_import"
    r = client.post("/api/models/m/queue/import", json={"from": "other", "entry_ids": [12345]}, headers=H)
    assert r.status_code == 404
    assert client.post("/api/models/m/queue/import", json={"from": "nobody"}, headers=H).status_code == 404
    assert client.post("/api/models/m/queue/import", json={}, headers=H).status_code == 400
