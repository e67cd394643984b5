"""A model's queue: text files in with their origin; bad files refused with the reason, nothing lost."""

import io

import pytest

from cllm_app.errors import NotFound
from cllm_app.services import queue as queue_module

SMALL = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16}


@pytest.fixture
def model(studio):
    studio.models.create("reader", **SMALL)
    return "reader"


def test_add_files_keeps_origin_and_counts_tokens(studio, model, tmp_path):
    a = tmp_path / "a.txt"
    a.write_text("hello world\n", encoding="utf-8")
    b = tmp_path / "b.md"
    b.write_bytes("\ufeffné — ünïcode".encode())  # with a BOM, which is dropped
    result = studio.queue.add_files(model, [str(a), str(b)])
    assert [e["origin"] for e in result["added"]] == [str(a.resolve()), str(b.resolve())]
    assert result["added"][0]["token_count"] == 12
    assert result["added"][1]["byte_count"] == len("né — ünïcode".encode())
    listing = studio.queue.list(model)
    assert listing["tokens"] == 12 + len("né — ünïcode".encode()) and len(listing["items"]) == 2
    assert studio.models.show(model)["queue"] == {"items": 2, "tokens": listing["tokens"]}
    preview = studio.queue.preview(model, result["added"][1]["id"])
    assert preview["text"] == "né — ünïcode"
    stored = studio.root.model_dir(model) / "queue" / result["added"][0]["content_hash"][:24]
    assert stored.with_suffix(".txt").read_bytes() == b"hello world\n"


def test_duplicates_are_reported_not_added_twice(studio, model, tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "copy.txt"
    a.write_text("same text")
    b.write_text("same text")
    first = studio.queue.add_files(model, [str(a)])
    second = studio.queue.add_files(model, [str(b)])
    assert len(first["added"]) == 1 and second["added"] == [] and len(second["duplicates"]) == 1
    assert len(studio.queue.list(model)["items"]) == 1


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "empty"),
        (b"   \n\t  \n", "white space"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        ("caf\u00e9".encode("latin-1") + b" au lait", "not UTF-8"),
        (b"ends mid character \xe2\x82", "middle of a UTF-8 character"),
    ],
)
def test_bad_files_are_refused_with_the_reason(studio, model, tmp_path, content, reason):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content)
    good = tmp_path / "good.txt"
    good.write_text("fine")
    result = studio.queue.add_files(model, [str(bad), str(good)])
    assert [r["origin"] for r in result["refused"]] == [str(bad)]
    assert reason in result["refused"][0]["reason"]
    assert len(result["added"]) == 1  # the good file in the same pick still lands
    leftovers = [p.name for p in (studio.root.model_dir(model) / "queue").iterdir()]
    assert len(leftovers) == 1 and leftovers[0].endswith(".txt")  # no temporary file left


def test_huge_missing_and_folder_are_refused(studio, model, tmp_path, monkeypatch):
    monkeypatch.setattr(queue_module, "MAX_FILE_BYTES", 1000)
    big = tmp_path / "big.txt"
    big.write_text("x" * 5000)
    result = studio.queue.add_files(model, [str(big), str(tmp_path / "missing.txt"), str(tmp_path)])
    reasons = [r["reason"] for r in result["refused"]]
    assert "larger than" in reasons[0] and "cannot be read" in reasons[1] and "folder" in reasons[2]
    assert studio.queue.list(model)["items"] == []


def test_remove_and_unknown_items(studio, model):
    added = studio.queue.add_stream(model, io.BytesIO(b"some text"), "pasted")["added"]
    studio.queue.remove(model, added["id"])
    assert studio.queue.list(model)["items"] == []
    assert list((studio.root.model_dir(model) / "queue").iterdir()) == []
    with pytest.raises(NotFound):
        studio.queue.remove(model, added["id"])


def test_queue_follows_rename_and_duplicate(studio, model):
    studio.queue.add_stream(model, io.BytesIO(b"text to keep"), "note.txt")
    studio.models.rename(model, "renamed")
    assert studio.queue.list("renamed")["tokens"] == 12
    studio.models.duplicate("renamed", "twin")
    item = studio.queue.list("twin")["items"][0]
    assert studio.queue.preview("twin", item["id"])["text"] == "text to keep"


def test_upload_and_paths_over_the_api(studio, model, tmp_path):
    from cllm_app.api import create_app

    app = create_app(studio, "s", allowed_hosts={"127.0.0.1:1"})
    app.config["SERVER_NAME"] = "127.0.0.1:1"
    c = app.test_client()
    h = {"X-CLLM-Token": "s"}
    r = c.post(
        f"/api/models/{model}/queue/upload",
        data={"files": [(io.BytesIO(b"uploaded text"), "up.txt"), (io.BytesIO(b"\x00\x01"), "blob.bin")]},
        headers=h,
    )
    body = r.get_json()
    assert r.status_code == 200 and [e["origin"] for e in body["added"]] == ["up.txt"]
    assert body["refused"][0]["origin"] == "blob.bin"
    assert c.post(f"/api/models/{model}/queue/upload", data={}, headers=h).status_code == 400
    f = tmp_path / "p.txt"
    f.write_text("by path")
    r = c.post(f"/api/models/{model}/queue/files", json={"paths": [str(f)]}, headers=h)
    assert len(r.get_json()["added"]) == 1
    assert c.post(f"/api/models/{model}/queue/files", json={"paths": "nope"}, headers=h).status_code == 400
    items = c.get(f"/api/models/{model}/queue", headers=h).get_json()["items"]
    assert len(items) == 2
    assert c.delete(f"/api/models/{model}/queue/{items[0]['id']}", headers=h).status_code == 200
    assert c.get(f"/api/models/{model}/queue/999", headers=h).status_code == 404
