"""A data root on a small disk that fills up: a checkpoint, an ingest, a rename, a duplicate, an
export and a crawl each fail with the one disk-full message, leave what was there whole, and
leave no temporary files; once space is back the model loads, trains and generates as before."""

import functools
import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from crawl_site import WORDS, CrawlSite
from disk_support import leftovers, small_disk

from cllm_app.api import create_app
from cllm_app.errors import DiskFull
from cllm_app.jobs.crawl import run_crawl
from cllm_app.jobs.runner import JobRunner
from cllm_app.jobs.train import run_training
from cllm_app.jobs.worker import run_here
from cllm_app.services import models as models_service
from cllm_app.services.studio import Studio
from cllm_app.store import Job
from tests.conftest import HOST, SECRET, snapshot, wait_until

# ~70k parameters: a checkpoint (weights and both AdamW moments) of about 0.8 MB.
SHAPE = {"n_layer": 2, "n_head": 2, "n_embd": 48, "block_size": 32}
SETTINGS = {"batch_size": 2, "sequence_length": 32, "target_epochs": 50, "checkpoint_interval": 1000,
            "eval_interval": 1000, "warmup_steps": 2}
SLACK = 256 * 1024  # room left for the store's own small writes, far less than a checkpoint


def words(n: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n))


@pytest.fixture
def disk(tmp_path, monkeypatch):
    with small_disk(tmp_path / "disk") as d:
        monkeypatch.setenv("CLLM_HOME", str(d.path / "home"))
        yield d


@pytest.fixture
def studio(disk):
    s = Studio(disk.path / "home")
    yield s
    s.close()


def _model(studio, name="m"):
    studio.models.create(name, **SHAPE)
    studio.queue.add_stream(name, io.BytesIO(words(3000).encode()), "story.txt")


def _train(studio, name, steps):
    job = studio.training.start(name, SETTINGS)
    studio.jobs.start(job["id"], os.getpid())
    state = run_here(studio, job["id"], functools.partial(run_training, max_steps=steps))
    return state, studio.jobs.get(job["id"])


def _talks(studio, name):
    text = "".join(studio.streams.write_here(name, "the river", {"max_new_tokens": 8, "seed": 1}))
    assert len(text) > 0


def _cllm(*args, home):
    env = {**os.environ, "CLLM_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "cllm_app", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def _refused(p):
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the disk is full: "), p.stderr
    assert "free some space and try again" in lines[0]
    return lines[0]


def test_a_checkpoint_on_a_full_disk_fails_plainly_and_training_goes_on_once_there_is_room(studio, disk):
    _model(studio)
    state, _ = _train(studio, "m", 2)
    assert state == "stopped"
    before = snapshot(disk.path / "home" / "models")
    disk.fill(leave=SLACK)
    state, job = _train(studio, "m", 2)
    assert state == "failed" and job["state"] == "failed"
    assert job["error"].startswith("the disk is full: the checkpoint of step 4 needs ")
    assert "free some space and try again" in job["error"] and "Traceback" not in job["error"]
    disk.make_room()
    assert leftovers(disk.path / "home") == []
    assert snapshot(disk.path / "home" / "models") == before  # checkpoint 2 and its weights, untouched
    assert studio.models.show("m")["steps_trained"] == 2
    _talks(studio, "m")
    state, job = _train(studio, "m", 2)  # goes on from step 2, the last checkpoint
    assert state == "stopped", job["error"]
    assert studio.models.show("m")["steps_trained"] == 4
    _talks(studio, "m")


def test_a_training_job_in_its_own_process_ends_failed_with_the_message(studio, disk):
    # The window's way: the runner starts a worker process, which meets the full disk.
    _model(studio)
    disk.fill(leave=SLACK)
    job = studio.training.start("m", {**SETTINGS, "checkpoint_interval": 2})
    runner = JobRunner(studio).start()
    try:
        wait_until(lambda: studio.jobs.get(job["id"])["state"] not in ("queued", "running"), 120, "the job to end")
    finally:
        runner.shutdown()
    final = studio.jobs.get(job["id"])
    assert final["state"] == "failed", final
    assert final["error"].startswith("the disk is full: the checkpoint of step 2 needs ") and "\n" not in final["error"]
    disk.make_room()
    assert leftovers(disk.path / "home") == []
    assert studio.models.show("m")["steps_trained"] == 0
    _talks(studio, "m")


def test_an_ingest_on_a_full_disk_fails_plainly_and_keeps_the_queue(studio, disk, tmp_path):
    _model(studio)
    big = tmp_path / "big.txt"  # outside the small disk
    big.write_text(words(300_000, seed=2))
    queue_before = snapshot(disk.path / "home" / "models" / "m" / "queue")
    disk.fill(leave=SLACK)
    line = _refused(_cllm("data", "add", "m", str(big), home=disk.path / "home"))
    assert f"adding {big} to the queue of 'm'" in line
    job = Job.select().where(Job.kind == "ingest").get()
    assert job.state == "failed" and job.error == line[len("error: "):]
    disk.make_room()
    assert leftovers(disk.path / "home") == []
    assert snapshot(disk.path / "home" / "models" / "m" / "queue") == queue_before
    assert studio.queue.list("m")["total"] == 1
    assert _train(studio, "m", 1)[0] == "stopped"
    _talks(studio, "m")
    assert studio.queue.add_files("m", [str(big)])["added"] == 1  # with room, the same file goes in


def _client(studio):
    app = create_app(studio, SECRET, allowed_hosts={HOST})
    app.config["SERVER_NAME"] = HOST
    c = app.test_client()
    c.environ_base.update(HTTP_X_CLLM_TOKEN=SECRET)
    return c


def test_rename_and_duplicate_on_a_full_disk_answer_507_and_change_nothing(studio, disk):
    _model(studio)
    client = _client(studio)
    before = snapshot(disk.path / "home")
    disk.fill(leave=0)
    for r in (client.post("/api/models/m/rename", json={"model_name": "renamed"}),
              client.post("/api/models/m/duplicate", json={"model_name": "copy"})):
        assert r.status_code == 507, r.get_json()
        error = r.get_json()["error"]
        assert error["code"] == "disk_full" and error["message"].startswith("the disk is full: ")
    assert "copying 'm' as 'copy' needs " in error["message"]
    # The app still starts on a full disk, and a change nothing above foresaw is refused the same way.
    home = disk.path / "home"
    assert [m["model_name"] for m in json.loads(_cllm("models", "list", "--json", home=home).stdout)["models"]] == ["m"]
    assert "`cllm models delete` found no room in " in _refused(_cllm("models", "delete", "m", "--yes", home=home))
    r = client.post("/api/models", json={"model_name": "new", **SHAPE})
    assert r.status_code == 507 and r.get_json()["error"]["message"].startswith("the disk is full: creating 'new' needs ")
    disk.make_room()
    assert snapshot(disk.path / "home") == before and leftovers(disk.path / "home") == []
    assert [m["model_name"] for m in studio.models.list()] == ["m"]
    _talks(studio, "m")
    assert client.post("/api/models/m/rename", json={"model_name": "renamed"}).status_code == 200


def test_a_duplicate_that_runs_out_of_space_while_copying_takes_its_copy_back(studio, disk, monkeypatch):
    _model(studio)
    before = snapshot(disk.path / "home")
    disk.fill(leave=SLACK)
    # Another program may take the space between the check and the copy: the copy then fails itself.
    monkeypatch.setattr(models_service, "free_bytes", lambda path: 1 << 40)
    with pytest.raises(DiskFull, match="^the disk is full: copying 'm' as 'm-copy' needs "):
        studio.models.duplicate("m")
    disk.make_room()
    assert snapshot(disk.path / "home") == before and leftovers(disk.path / "home") == []
    assert [m["model_name"] for m in studio.models.list()] == ["m"]
    assert studio.models.duplicate("m")["model_name"] == "m-copy"


def test_an_export_to_a_full_disk_fails_plainly_and_leaves_no_half_export(studio, disk, tmp_path, monkeypatch):
    _model(studio)
    studio.close()
    with small_disk(tmp_path / "usb", size="1m") as usb:
        usb.fill(leave=64 * 1024)
        line = _refused(_cllm("export", "m", str(usb.path / "out"), "--format", "hf", home=disk.path / "home"))
        assert "exporting 'm' needs " in line and str(usb.path / "out") in line
        assert not (usb.path / "out").exists()
        # Beaten to the space after the check: the half-written folder goes again.
        monkeypatch.setattr(models_service, "free_bytes", lambda path: 1 << 40)
        s = Studio(disk.path / "home")
        try:
            with pytest.raises(DiskFull, match="^the disk is full: exporting 'm'"):
                s.exports.export("m", "hf", str(usb.path / "out"))
            assert not (usb.path / "out").exists() and leftovers(usb.path) == []
            usb.make_room()
            assert (Path(s.exports.export("m", "hf", str(usb.path / "out"))["path"]) / "model.safetensors").exists()
        finally:
            s.close()


class _BigPageSite(CrawlSite):
    """The test site, plus one page of plain text far larger than the room left on the disk."""

    def pages(self):
        p = super().pages()
        p["/big.txt"] = (200, {"Content-Type": "text/plain; charset=utf-8"}, words(150_000, seed=3).encode())
        return p


def test_a_crawl_on_a_full_disk_fails_plainly_and_keeps_its_frontier(studio, disk):
    _model(studio)
    with _BigPageSite(slow_seconds=0.1) as site:
        c = studio.crawls.start("m", {"start_urls": [site.url("/big.txt")], "rate": 0, "max_depth": 0,
                                             "timeout": 5}, foreground=True)
        queue_before = studio.queue.list("m")["total"]
        disk.fill(leave=SLACK)
        assert run_crawl(studio, c["job_id"]) == "failed"
        job, crawl = studio.jobs.get(c["job_id"]), studio.crawls.get(c["id"])
        assert job["state"] == "failed"
        assert job["error"].startswith(f"the disk is full: adding {site.url('/big.txt')} to the queue of 'm'")
        assert crawl["state"] == "failed" and crawl["message"].startswith(job["error"])
        assert crawl["queued"] == 1 and crawl["fetched"] == 0 and crawl["resumable"]  # the frontier, whole
        assert [u["url"] for u in studio.crawls.urls(c["id"], status="queued")["urls"]] == [site.url("/big.txt")]
        disk.make_room()
        assert leftovers(disk.path / "home") == [] and studio.queue.list("m")["total"] == queue_before
        c = studio.crawls.resume(c["id"], foreground=True)
        assert run_crawl(studio, c["job_id"]) == "done"
        assert studio.crawls.get(c["id"])["fetched"] == 1
    assert studio.queue.list("m")["total"] == queue_before + 1
    _talks(studio, "m")
