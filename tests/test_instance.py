"""One app per data root: a second `cllm serve` (or window) on the same data root refuses and
names the first; once the first is gone (even killed with SIGKILL) the next one starts. The
CLI's own jobs run beside the open app without its runner ever starting them."""

import os
import re
import signal
import subprocess
import sys

import pytest
import requests

from cllm_app.instance import AlreadyOpen, InstanceLock
from cllm_app.jobs.runner import JobRunner

URL_LINE = re.compile(r"serving at (http://127\.0\.0\.1:\d+)/#token=(\S+)")


def serve(home) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cllm_app", "serve", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "CLLM_HOME": str(home)})


def started(proc) -> str:
    line = proc.stdout.readline()
    match = URL_LINE.search(line)
    assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
    return match.group(1)


def stop(proc) -> None:
    if proc.poll() is None:
        proc.terminate()
    proc.wait(timeout=20)
    proc.stdout.close()
    proc.stderr.close()


def test_a_second_app_on_the_data_root_refuses_naming_the_first(home):
    first = serve(home)
    try:
        origin = started(first)
        second = serve(home)
        try:
            assert second.wait(timeout=60) == 2
            err = second.stderr.read()
            assert err.strip() == (
                f"error: CLLM Studio is already open on this data root (pid {first.pid}, {origin}); "
                "use that window, or close it first"
            )
            assert second.stdout.read() == ""  # it never printed a URL of its own
        finally:
            stop(second)
        assert first.poll() is None  # the first one is untouched and still answers
    finally:
        first.kill()  # no clean shutdown: the OS drops the lock all the same
        first.wait(timeout=20)
        first.stdout.close()
        first.stderr.close()
    third = serve(home)
    try:
        origin, token = URL_LINE.search(third.stdout.readline()).groups()
        assert requests.get(origin + "/api/models", headers={"X-CLLM-Token": token}, timeout=10).status_code == 200
    finally:
        stop(third)
        assert third.returncode in (0, -signal.SIGTERM)


def test_the_lock_is_held_until_released(tmp_path):
    a, b = InstanceLock(tmp_path), InstanceLock(tmp_path)
    a.acquire("http://127.0.0.1:1")
    with pytest.raises(AlreadyOpen, match=r"pid \d+, http://127\.0\.0\.1:1\)"):
        b.acquire("http://127.0.0.1:2")
    a.release()
    b.acquire("http://127.0.0.1:2")
    b.release()


def test_a_job_the_cli_runs_itself_is_never_started_by_the_runner(studio, tmp_path):
    studio.models.create("m", n_layer=1, n_head=2, n_embd=16, block_size=16)
    text = tmp_path / "t.txt"
    text.write_text("some words to train on " * 50)
    studio.queue.add_text("m", text.read_text(), origin="t.txt", source_kind="file")
    runner = JobRunner(studio)  # the open window's runner, not started: ticked by hand
    job = studio.training.start("m", {}, foreground=True)
    assert job["state"] == "running"
    runner.tick()
    assert runner.procs == {}
    assert not (studio.root.path / "logs" / f"job-{job['id']}.log").exists()


def test_two_starts_of_one_model_at_once_give_one_job(studio, monkeypatch):
    """The window's Start and the CLI's `cllm train` at the same moment: the check that no
    training job is active and the insert are one write transaction, so one wins and the other
    is refused. Each start waits (up to a second) after its check for the other to have checked
    too, which, were the two steps apart, would let both through."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from cllm_app.errors import Conflict

    studio.models.create("m", n_layer=1, n_head=2, n_embd=16, block_size=16)
    studio.queue.add_text("m", "some words to train on " * 50, origin="t.txt", source_kind="file")
    both_checked = threading.Barrier(2)
    check = studio.training.check_can_start

    def check_then_wait(*args):
        check(*args)
        try:
            both_checked.wait(timeout=1.0)
        except threading.BrokenBarrierError:
            pass  # the other start is held until this one has inserted: as it should be

    monkeypatch.setattr(studio.training, "check_can_start", check_then_wait)

    def start(foreground):
        try:
            return studio.training.start("m", {}, foreground=foreground)["id"]
        except Conflict as e:
            assert e.code == "already_training"
            return None

    with ThreadPoolExecutor(2) as pool:
        started = [j for j in pool.map(start, (False, True)) if j is not None]
    assert len(started) == 1
    assert [j["id"] for j in studio.jobs.list("m", active=True)] == started


def _job_from_another_process_meets(studio, monkeypatch, change, failpoint_name):
    """Run `change` (a rename or a delete) while a job for the model is submitted as another
    process would: without the in-process lock the two share here, only the store between them.
    The change, once it has looked for active jobs, waits (up to a second) for the submit to be
    done. Returns (whether the job was committed when the folder moved, the change's refusal)."""
    import contextlib
    import sqlite3
    import threading

    from cllm_app.errors import Conflict
    from cllm_app.services import jobs as jobs_module
    from cllm_app.services import models as models_module

    studio.models.create("m", n_layer=1, n_head=2, n_embd=16, block_size=16)
    monkeypatch.setattr(jobs_module, "changing", contextlib.nullcontext())
    submitted = threading.Event()
    checked = threading.Event()
    seen = {}
    real_check = models_module.ModelLifecycle.refuse_if_busy
    real_failpoint = models_module.failpoint

    def check_then_wait(self, row, action):
        real_check(self, row, action)
        checked.set()
        submitted.wait(timeout=1.0)  # where the checks and the move are apart, the job gets in here

    def at_failpoint(name):
        if name == failpoint_name:
            with contextlib.closing(sqlite3.connect(studio.root.db_path)) as other:
                seen["job_committed"] = other.execute("SELECT count(*) FROM jobs").fetchone()[0] > 0
        real_failpoint(name)

    monkeypatch.setattr(models_module.ModelLifecycle, "refuse_if_busy", check_then_wait)
    monkeypatch.setattr(models_module, "failpoint", at_failpoint)

    def submit():
        checked.wait(timeout=10)
        studio.jobs.submit("ingest", "m", {})
        submitted.set()

    other = threading.Thread(target=submit)
    other.start()
    refusal = None
    try:
        change()
    except Conflict as e:
        refusal = e.code
    other.join(timeout=30)
    return seen.get("job_committed"), refusal


def test_a_rename_never_moves_the_folder_of_a_model_another_process_has_just_queued_a_job_for(studio, monkeypatch):
    committed, refusal = _job_from_another_process_meets(
        studio, monkeypatch, lambda: studio.models.rename("m", "n"), "rename.folder")
    assert refusal is None and committed is False  # the job waited for the rename, and is the renamed model's
    assert studio.jobs.list("n")[0]["model_name"] == "n"


def test_a_delete_never_trashes_a_model_another_process_has_just_queued_a_job_for(studio, monkeypatch):
    committed, refusal = _job_from_another_process_meets(
        studio, monkeypatch, lambda: studio.models.delete("m", confirm=True), "delete.row")
    assert refusal is None and committed is False
