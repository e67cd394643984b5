"""The model listing, which the window polls while a model trains: the same few queries however
many models there are, and a folder's size walked again only when its files have changed,
never at the cost of the truth (checkpoints, queue adds and writes in progress show at once)."""

import os

import numpy as np
import pytest

from cllm_app.engine.checkpoint import save_checkpoint
from cllm_app.fsutil import FolderSizes, dir_size
from cllm_app.store import Job

SMALL = {"n_layer": 1, "n_head": 1, "n_embd": 8, "block_size": 8}


@pytest.fixture
def queries(studio, monkeypatch):
    """The SQL the store is sent, statement by statement."""
    sent = []
    real = studio.database.execute_sql

    def execute_sql(sql, params=None, *args, **kwargs):
        sent.append(sql)
        return real(sql, params, *args, **kwargs)

    monkeypatch.setattr(studio.database, "execute_sql", execute_sql)
    return sent


@pytest.fixture
def scans(studio, monkeypatch):
    """The folders under models/ that are listed (os.walk lists with os.scandir too)."""
    listed = []
    real = os.scandir
    models_dir = str(studio.root.models_dir)

    def scandir(path="."):
        if not isinstance(path, int) and os.fspath(path).startswith(models_dir):  # rmtree scans by fd
            listed.append(os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    return listed


def age(folder) -> None:
    """Date every folder under `folder` a minute back, as if its last change were long past
    (a folder changed just now is walked again anyway: it may change again within its mtime's tick)."""
    past = os.stat(folder).st_mtime_ns - 60_000_000_000
    for path, _dirs, _files in os.walk(folder):
        os.utime(path, ns=(past, past))


def add_models(studio, start: int, stop: int) -> None:
    """Models with everything the listing shows: a queue, a source they were copied from, a job."""
    for i in range(start, stop):
        if i % 2:
            studio.models.duplicate(f"m{i - 1:02d}", f"m{i:02d}")
        else:
            studio.models.create(f"m{i:02d}", **SMALL)
        studio.queue.add_text(f"m{i:02d}", f"text number {i}", origin=f"t{i}", source_kind="file")
        Job.create(kind="train", model=studio.models.get(f"m{i:02d}"), state="queued")


def truth(studio) -> dict:
    return {p.name: dir_size(p) for p in studio.root.models_dir.iterdir() if not p.name.startswith(".")}


def sizes(studio) -> dict:
    return {m["model_name"]: m["disk_bytes"] for m in studio.models.list()}


def test_listing_sends_the_same_few_queries_for_3_models_and_for_30(studio, queries):
    add_models(studio, 0, 3)
    queries.clear()
    listed = studio.models.list()
    with_3 = len(queries)
    assert len(listed) == 3 and all(m["busy"] and m["queue"]["items"] for m in listed)
    assert listed[1]["duplicated_from"] == "m00"

    add_models(studio, 3, 30)
    queries.clear()
    listed = studio.models.list(sort="size", order="desc")
    assert len(listed) == 30
    assert len(queries) == with_3 <= 3, queries


def test_the_api_listing_sends_as_many_queries_for_30_models_as_for_3(studio, client, queries):
    add_models(studio, 0, 3)
    queries.clear()
    assert len(client.get("/api/models").get_json()["models"]) == 3
    with_3 = len(queries)
    add_models(studio, 3, 30)
    queries.clear()
    assert len(client.get("/api/models").get_json()["models"]) == 30
    assert len(queries) == with_3


def test_one_model_is_summed_up_in_the_same_queries_whatever_it_holds(studio, queries):
    add_models(studio, 0, 2)
    queries.clear()
    studio.models.describe(studio.models.get("m00"), detail=False)
    plain = len(queries)
    queries.clear()
    copy = studio.models.describe(studio.models.get("m01"), detail=False)
    assert copy["duplicated_from"] == "m00" and copy["busy"]["kind"] == "train"
    assert len(queries) == plain + 1  # a copy's source is looked up by name


def test_listing_again_walks_no_folder_that_has_not_changed(studio, scans):
    for i in range(5):
        studio.models.create(f"m{i}", **SMALL)
    age(studio.root.models_dir)
    studio.models.list()  # the first listing of a process measures every folder
    scans.clear()
    listed = sizes(studio)
    assert scans == []
    assert listed == truth(studio)


def test_sizes_follow_checkpoints_queue_adds_and_writes_in_progress(studio, scans):
    for name in ("a", "b"):
        studio.models.create(name, **SMALL)
    folder = studio.root.model_dir("a")
    age(studio.root.models_dir)
    assert sizes(studio) == truth(studio)

    for step in range(1, 5):  # the fourth checkpoint removes the first, as training does
        save_checkpoint(folder / "checkpoints", step, {"w": np.zeros(100 * step, np.float32)}, {"step": step})
        scans.clear()
        listed = sizes(studio)
        assert scans and all(p.startswith(str(folder)) for p in scans)  # b was not walked
        assert listed == truth(studio)
    assert len(list((folder / "checkpoints").iterdir())) == 3

    studio.queue.add_text("a", "some text to train on " * 50, origin="t", source_kind="file")
    assert sizes(studio) == truth(studio)

    # A write in progress grows a temporary file without changing its folder: it is stat'ed anew.
    tmp = folder / "queue" / ".ingest-in-progress"
    tmp.write_bytes(b"x" * 10)
    age(studio.root.models_dir)
    assert sizes(studio) == truth(studio)
    with open(tmp, "ab") as f:
        f.write(b"y" * 5000)
    scans.clear()
    listed = sizes(studio)
    assert scans == []
    assert listed == truth(studio)
    tmp.unlink()
    assert sizes(studio) == truth(studio)

    studio.models.rename("a", "c")
    assert sizes(studio) == truth(studio)


def test_folder_sizes_count_what_dir_size_counts(tmp_path):
    (tmp_path / "sub" / ".hidden").mkdir(parents=True)
    (tmp_path / "f").write_bytes(b"1" * 10)
    (tmp_path / "sub" / "g").write_bytes(b"2" * 20)
    (tmp_path / "sub" / ".hidden" / "h").write_bytes(b"3" * 30)
    (tmp_path / "link-to-folder").symlink_to(tmp_path / "sub")  # neither followed nor counted
    (tmp_path / "link-to-file").symlink_to(tmp_path / "f")  # the link itself is counted
    (tmp_path / "broken-link").symlink_to(tmp_path / "nowhere")
    age(tmp_path)
    cache = FolderSizes()
    assert cache.size(tmp_path) == cache.size(tmp_path) == dir_size(tmp_path)
    assert cache.measured == 1
    assert cache.size(tmp_path / "missing") == dir_size(tmp_path / "missing") == 0


def test_an_unchanged_store_is_listed_again_without_a_query(studio, queries):
    add_models(studio, 0, 3)
    first = studio.models.list()
    queries.clear()
    assert studio.models.list() == first
    assert queries == []


def test_a_commit_by_another_connection_shows_in_the_very_next_listing(studio):
    import sqlite3

    add_models(studio, 0, 3)
    assert {m["epochs_trained"] for m in studio.models.list()} == {0}
    # Another process (a worker, the CLI) commits; no event, no poke: the next listing sees it.
    other = sqlite3.connect(studio.root.db_path)
    other.execute("UPDATE models SET epochs_trained = 7 WHERE model_name = 'm01'")
    other.commit()
    other.close()
    assert {m["model_name"]: m["epochs_trained"] for m in studio.models.list()}["m01"] == 7
    # This process's own writes, from any thread, too.
    studio.models.configure("m02", target_epochs=9)
    assert {m["model_name"]: m["target_epochs"] for m in studio.models.list()}["m02"] == 9


def test_a_job_whose_process_died_frees_its_model_in_the_next_listing_without_a_commit(studio):
    import subprocess
    import sys

    from cllm_app.procs import process_start
    from tests.conftest import wait_until

    studio.models.create("held", **SMALL)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        job = Job.create(kind="train", model=studio.models.get("held"), state="running",
                         pid=proc.pid, pid_started=process_start(proc.pid))
        assert studio.models.list()[0]["busy"] == {"job_id": job.id, "kind": "train", "state": "running"}
        assert studio.models.list()[0]["busy"] is not None  # the cached listing, its process alive
    finally:
        proc.kill()
        proc.wait()
    wait_until(lambda: studio.models.list()[0]["busy"] is None, what="the dead job's model freed")
    assert Job.get_by_id(job.id).state == "interrupted"


def test_the_encoded_listing_is_reused_until_the_store_or_a_folder_changes(studio, client, monkeypatch):
    import json

    from cllm_app.services import models as models_module

    add_models(studio, 0, 3)
    encoded = []
    real_dumps = json.dumps
    monkeypatch.setattr(models_module.json, "dumps", lambda *a, **kw: encoded.append(1) or real_dumps(*a, **kw))
    first = client.get("/api/models").get_json()
    assert client.get("/api/models").get_json() == first and len(encoded) == 1
    assert first["models"] == studio.models.list()  # the encoded body is the listing itself
    # Another order is another body; the first order's is then made again.
    assert [m["model_name"] for m in client.get("/api/models?order=desc").get_json()["models"]] == ["m02", "m01", "m00"]
    # A commit shows at once.
    studio.models.configure("m01", target_epochs=5)
    listed = {m["model_name"]: m for m in client.get("/api/models").get_json()["models"]}
    assert listed["m01"]["target_epochs"] == 5
    # So does a file added to a model's folder with no commit at all (a size is the file system's).
    before = listed["m02"]["disk_bytes"]
    (studio.root.model_dir("m02") / "exports" / "note.txt").write_bytes(b"x" * 1000)
    assert {m["model_name"]: m["disk_bytes"] for m in client.get("/api/models").get_json()["models"]}["m02"] == before + 1000


def test_listings_that_arrive_together_after_a_commit_read_the_store_once(studio, queries):
    import threading

    add_models(studio, 0, 3)
    studio.models.list()
    studio.models.configure("m00", target_epochs=3)
    queries.clear()
    start = threading.Barrier(4)
    results = []

    def listing():
        start.wait()
        results.append(studio.models.list())

    threads = [threading.Thread(target=listing) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(r == results[0] for r in results)
    assert {m["model_name"]: m["target_epochs"] for m in results[0]}["m00"] == 3
    assert sum(sql.lstrip().upper().startswith("SELECT") for sql in queries) == 3  # one reading, not four
