"""A model's queue: files of every format in with their origin; bad files refused with the reason
and nothing lost; search, paging, preview, remove, clear, statistics; older queues still train."""

import io
import shutil
import sqlite3

import numpy as np
import pytest
import zstandard
from data_files import write_all_formats, write_zip

from cllm_app.data import limits
from cllm_app.errors import ConfirmationRequired, Conflict, InvalidInput, NotFound
from cllm_app.services.queue import FileRefused

SMALL = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16}


@pytest.fixture
def model(studio):
    studio.models.create("reader", **SMALL)
    return "reader"


def outcomes(report) -> dict:
    return {r["origin"].rsplit("/", 1)[-1]: (r["outcome"], r["reason"]) for r in report["report"]}


def test_add_files_keeps_origin_counts_tokens_and_stores_compressed(studio, model, tmp_path):
    a = tmp_path / "a.txt"
    a.write_text("hello world\n", encoding="utf-8")
    b = tmp_path / "b.md"
    b.write_bytes("\ufeffné — ünïcode\r\nline".encode())  # a BOM (dropped) and CRLF (made \n)
    report = studio.queue.add_files(model, [str(a), str(b)])
    assert [r["origin"] for r in report["report"]] == [str(a.resolve()), str(b.resolve())]
    assert report["added"] == 2 and report["files_done"] == report["files_total"] == 2
    stored_b = "né — ünïcode\nline".encode()
    assert [r["token_count"] for r in report["report"]] == [12, len(stored_b)]
    assert report["tokens"] == 12 + len(stored_b) and report["bytes_done"] == a.stat().st_size + b.stat().st_size
    listing = studio.queue.list(model)
    assert listing["tokens"] == report["tokens"] and listing["total"] == 2
    assert studio.models.show(model)["queue"] == {"items": 2, "tokens": report["tokens"]}
    entry = studio.queue.preview(model, report["report"][1]["entry_id"])
    assert entry["text"] == "né — ünïcode\nline" and entry["token_fingerprint"] == "byte"
    folder = studio.root.model_dir(model) / "queue"
    data_path = folder / (entry["content_hash"][:24] + ".txt.zst")
    assert zstandard.ZstdDecompressor().decompressobj().decompress(data_path.read_bytes()) == stored_b
    cache = folder / "tokens" / "byte" / (entry["content_hash"][:24] + ".u8")
    assert cache.read_bytes() == stored_b
    assert not list(folder.rglob(".ingest-*"))  # no temporary file left


def test_duplicates_are_normalized_reported_and_not_added_twice(studio, model, tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "copy.txt"
    a.write_bytes(b"same text\nagain\n")
    b.write_bytes(b"same text\r\nagain\r\n")  # the same text with Windows line ends
    first = studio.queue.add_files(model, [str(a)])
    second = studio.queue.add_files(model, [str(b)])
    assert first["added"] == 1 and second["added"] == 0 and second["duplicates"] == 1
    assert second["report"][0]["entry_id"] == first["report"][0]["entry_id"]
    assert "already in the queue" in second["report"][0]["reason"]
    assert studio.queue.list(model)["total"] == 1


@pytest.mark.parametrize(
    "content, outcome, reason",
    [
        (b"", "empty", "empty"),
        (b"   \n\t  \n", "empty", "white space"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "refused", "PNG image"),
        (b"\x00\x01\x02\x03 binary", "refused", "binary"),
        (b"ends mid character \xe2\x82", "refused", "middle of a UTF-8 character"),
    ],
)
def test_bad_files_are_reported_and_the_rest_lands(studio, model, tmp_path, content, outcome, reason):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content)
    good = tmp_path / "good.txt"
    good.write_text("fine")
    report = studio.queue.add_files(model, [str(bad), str(good)])
    got = outcomes(report)
    assert got["bad.txt"][0] == outcome and reason in got["bad.txt"][1]
    assert got["good.txt"] == ("added", None)  # the good file in the same pick still lands
    folder = studio.root.model_dir(model) / "queue"
    assert not list(folder.rglob(".ingest-*"))


def test_limits_per_file_and_per_ingest(studio, model, tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_FILE_BYTES", 1000)
    big = tmp_path / "big.txt"
    big.write_text("x" * 5000)
    report = studio.queue.add_files(model, [str(big), str(tmp_path / "missing.txt")])
    got = outcomes(report)
    assert "larger than" in got["big.txt"][1] and "does not exist" in got["missing.txt"][1]
    monkeypatch.setattr(limits, "MAX_FILE_BYTES", 10**9)
    monkeypatch.setattr(limits, "MAX_INGEST_BYTES", 3000)
    (tmp_path / "one.txt").write_text("1" * 2000)
    (tmp_path / "two.txt").write_text("2" * 2000)
    got = outcomes(studio.queue.add_files(model, [str(tmp_path / "one.txt"), str(tmp_path / "two.txt")]))
    assert got["one.txt"][0] == "added" and "limit of" in got["two.txt"][1]
    with pytest.raises(InvalidInput):
        studio.queue.add_files(model, "not a list")


def test_every_format_from_a_folder_and_a_zip_with_a_bad_member(studio, model, tmp_path):
    expected = write_all_formats(tmp_path / "corpus" / "nested" / "deeper")
    write_zip(tmp_path / "corpus" / "pack.zip", {
        "good.txt": b"a text inside an archive",
        "bad.bin": b"\x00\x01\x02\x03\x04",
        "docs/readme.md": b"# readme in zip",
    })
    report = studio.queue.add_files(model, [str(tmp_path / "corpus")])
    got = outcomes(report)
    for name in expected:
        assert got[name] == ("added", None), (name, got[name])
    assert got["good.txt"][0] == "added" and got["readme.md"][0] == "added"
    assert got["bad.bin"][0] == "refused" and "binary" in got["bad.bin"][1]
    texts = {e["origin"].rsplit("/", 1)[-1]: studio.queue.preview(model, e["id"])["text"]
             for e in studio.queue.list(model)["items"]}
    for name, phrase in expected.items():
        assert phrase in texts[name], name
    assert texts["plain.txt"] == "Plain text, line one.\nLine two.\n"
    titles = {e["origin"].rsplit("/", 1)[-1]: e["title"] for e in studio.queue.list(model)["items"]}
    assert titles["page.html"] == "The Page Title" and titles["paper.pdf"] == "A Small Paper"
    origins = [e["origin"] for e in studio.queue.list(model)["items"]]
    assert any(o.endswith("pack.zip!/docs/readme.md") for o in origins)


def test_json_and_csv_choices_reach_the_readers(studio, model, tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text('{"q": "question one", "a": "answer one is longer"}\n')
    report = studio.queue.add_files(model, [str(f)], text_field="q")
    assert studio.queue.preview(model, report["report"][0]["entry_id"])["text"] == "question one"
    c = tmp_path / "t.csv"
    c.write_text("a,b\nx,long cell\n")
    report = studio.queue.add_files(model, [str(c)], csv_column="a")
    assert studio.queue.preview(model, report["report"][0]["entry_id"])["text"] == "x"
    with pytest.raises(InvalidInput):
        studio.queue.add_files(model, [str(c)], csv_column=["a"])


def test_add_text_for_the_crawler(studio, model):
    r = studio.queue.add_text(model, "A crawled page.", origin="http://x.test/a", source_kind="crawl", title="A")
    assert r["added"]["source_kind"] == "crawl" and r["added"]["title"] == "A"
    again = studio.queue.add_text(model, "A crawled page.", origin="http://x.test/b", source_kind="crawl")
    assert again["duplicate"]["id"] == r["added"]["id"]
    with pytest.raises(FileRefused):
        studio.queue.add_text(model, "  ", origin="http://x.test/c", source_kind="crawl")


def test_list_search_paging_and_stats(studio, model):
    for i in range(7):
        studio.queue.add_text(model, f"text number {i}", origin=f"file_{i}.txt", source_kind="file")
    studio.queue.add_text(model, "a page", origin="http://site.test/100%", source_kind="crawl", title="Special Page")
    page = studio.queue.list(model, offset=2, limit=3)
    assert [e["origin"] for e in page["items"]] == ["file_2.txt", "file_3.txt", "file_4.txt"]
    assert page["total"] == 8 and page["queue"]["items"] == 8
    assert [e["origin"] for e in studio.queue.list(model, search="special")["items"]] == ["http://site.test/100%"]
    assert studio.queue.list(model, search="100%")["total"] == 1
    assert studio.queue.list(model, search="_")["total"] == 7  # a literal underscore, not a wildcard
    assert studio.queue.list(model, source_kind="crawl")["total"] == 1
    with pytest.raises(InvalidInput):
        studio.queue.list(model, limit=0)
    stats = studio.queue.stats(model)
    assert stats["items"] == 8 and stats["tokens"] == sum(len(f"text number {i}") for i in range(7)) + 6
    assert {s["source_kind"]: s["items"] for s in stats["by_source"]} == {"crawl": 1, "file": 7}


def test_preview_limits_and_unknown_items(studio, model):
    added = studio.queue.add_text(model, "x" * 5000, origin="long.txt", source_kind="file")["added"]
    p = studio.queue.preview(model, added["id"], max_chars=100)
    assert p["text"] == "x" * 100 and p["truncated"] is True
    with pytest.raises(NotFound):
        studio.queue.preview(model, 999)


def test_remove_remove_many_and_clear(studio, model, tmp_path):
    ids = [studio.queue.add_text(model, f"text {i}", origin=f"{i}.txt", source_kind="file")["added"]["id"]
           for i in range(4)]
    studio.queue.remove(model, ids[0])
    with pytest.raises(NotFound):
        studio.queue.remove(model, ids[0])
    with pytest.raises(NotFound):
        studio.queue.remove_many(model, [ids[1], 999])  # all or none
    assert studio.queue.list(model)["total"] == 3
    studio.queue.remove_many(model, [ids[1], ids[2]])
    assert [e["id"] for e in studio.queue.list(model)["items"]] == [ids[3]]
    with pytest.raises(ConfirmationRequired):
        studio.queue.clear(model)
    assert studio.queue.list(model)["total"] == 1
    job = studio.jobs.submit("ingest", model, {"paths": ["x"]})
    with pytest.raises(Conflict):
        studio.queue.clear(model, confirm=True)
    studio.jobs.stop(job["id"])
    assert studio.queue.clear(model, confirm=True)["removed"] == 1
    folder = studio.root.model_dir(model) / "queue"
    assert studio.queue.list(model)["total"] == 0 and [p for p in folder.rglob("*") if p.is_file()] == []


def test_queue_follows_rename_and_duplicate(studio, model):
    studio.queue.add_stream(model, io.BytesIO(b"text to keep"), "note.txt")
    studio.models.rename(model, "renamed")
    assert studio.queue.list("renamed")["tokens"] == 12
    studio.models.duplicate("renamed", "twin")
    item = studio.queue.list("twin")["items"][0]
    assert studio.queue.preview("twin", item["id"])["text"] == "text to keep"


def test_raw_entries_of_older_versions_still_train(studio, model, home):
    """A queue written before compression (raw UTF-8 `<hash24>.txt`, no token cache) is read as it is."""
    folder = studio.root.model_dir(model) / "queue"
    raw = b"an old entry, stored raw"
    (folder / "0123456789abcdef01234567.txt").write_bytes(raw)
    con = sqlite3.connect(home / "cllm.db")
    con.execute(
        "INSERT INTO queue_entries (model_id, source_kind, origin, data_path, content_hash, byte_count, token_count, "
        "status, epochs_used, added_at) VALUES (1, 'file', 'old.txt', '0123456789abcdef01234567.txt', "
        "'0123456789abcdef01234567ffff', ?, ?, 'ready', '[]', '2026-01-01 00:00:00')", (len(raw), len(raw)))
    con.commit()
    con.close()
    docs = studio.queue.documents(studio.models.get(model))
    assert len(docs) == 1 and bytes(np.asarray(docs[0][2])) == raw
    assert studio.queue.preview(model, docs[0][0])["text"] == raw.decode()


def test_a_missing_token_cache_is_rebuilt(studio, model):
    added = studio.queue.add_text(model, "rebuild me", origin="r.txt", source_kind="file")["added"]
    tokens = studio.root.model_dir(model) / "queue" / "tokens"
    shutil.rmtree(tokens)
    docs = studio.queue.documents(studio.models.get(model))
    assert bytes(np.asarray(docs[0][2])) == b"rebuild me" and docs[0][0] == added["id"]
    assert (tokens / "byte" / (added["content_hash"][:24] + ".u8")).read_bytes() == b"rebuild me"
