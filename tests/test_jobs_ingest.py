"""Ingest as a background job: progress and a per-file report in the job, stop between files,
uploads staged and cleaned up, and an ingest running beside the same model's training."""

import io

from data_files import write_all_formats

from cllm_app.jobs.ingest import run_ingest
from cllm_app.jobs.runner import JobRunner
from tests.conftest import wait_until

SMALL = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16}


def _wait(predicate, timeout=60.0, what="condition"):
    wait_until(predicate, timeout, what)


def test_ingest_job_reports_progress_and_each_file(studio, tmp_path):
    studio.models.create("m", **SMALL)
    write_all_formats(tmp_path / "docs")
    (tmp_path / "docs" / "blob.bin").write_bytes(b"\x00\x01\x02" * 10)
    job = studio.ingest.start("m", [str(tmp_path / "docs")])
    assert job["kind"] == "ingest" and job["state"] == "queued" and studio.models.show("m")["busy"]
    seen = []
    real_report = studio.jobs.report
    studio.jobs.report = lambda job_id, **kw: (seen.append(dict(kw["detail"])), real_report(job_id, **kw))
    assert run_ingest(studio, job["id"]) == "done"
    final = studio.jobs.get(job["id"])
    d = final["detail"]
    assert final["state"] == "done" and final["progress"] == 1.0
    assert d["files_total"] == d["files_done"] == 8 and d["added"] == 7 and d["refused"] == 1
    assert d["bytes_done"] == d["bytes_total"] == sum(p.stat().st_size for p in (tmp_path / "docs").iterdir())
    assert d["tokens"] == studio.queue.list("m")["tokens"] > 0
    assert {r["outcome"] for r in d["report"]} == {"added", "refused"}
    assert final["message"].startswith("7 added (") and "1 refused" in final["message"]
    assert seen[0]["files_done"] == 0 and seen[-1]["files_done"] == 8  # it reported as it went


def test_a_stopped_ingest_keeps_what_it_added(studio, tmp_path):
    studio.models.create("m", **SMALL)
    for i in range(3):
        (tmp_path / f"{i}.txt").write_text(f"file {i}")
    job = studio.ingest.start("m", [str(tmp_path / f"{i}.txt") for i in range(3)])
    studio.jobs.start(job["id"], 1)
    calls = []
    real = studio.jobs.stop_requested

    def stop_after_first(job_id):
        calls.append(job_id)
        if len(calls) == 2:
            studio.jobs.stop(job_id)
        return real(job_id)

    studio.jobs.stop_requested = stop_after_first
    assert run_ingest(studio, job["id"]) == "stopped"
    final = studio.jobs.get(job["id"])
    assert final["state"] == "stopped" and final["detail"]["files_done"] == 1 and final["detail"]["stopped"]
    assert [e["origin"] for e in studio.queue.list("m")["items"]] == [str((tmp_path / "0.txt").resolve())]


def test_uploads_are_staged_then_removed(studio):
    studio.models.create("m", **SMALL)
    job = studio.ingest.start_upload("m", [("../../evil name?.txt", io.BytesIO(b"uploaded text")),
                                     ("data.jsonl", io.BytesIO(b'{"text": "a record"}\n'))])
    staging = job["params"]["staging"]
    assert staging.startswith(str(studio.queue.staging_dir)) and len(job["params"]["paths"]) == 2
    assert all(p.startswith(staging) for p in job["params"]["paths"])
    run_ingest(studio, job["id"])
    origins = [e["origin"] for e in studio.queue.list("m")["items"]]
    assert origins == ["evil name?.txt", "data.jsonl"]
    assert not (studio.queue.staging_dir / staging).exists()


def test_import_job_copies_between_models(studio):
    studio.models.create("a", **SMALL)
    studio.models.create("b", **SMALL)
    studio.queue.add_text("a", "shared knowledge", origin="k.txt", source_kind="file")
    job = studio.ingest.start_import("b", "a")
    assert job["params"]["import_from"] == studio.models.show("a")["id"]
    studio.models.rename("a", "renamed")  # the job follows the model by id
    assert run_ingest(studio, job["id"]) == "done"
    assert studio.queue.list("b")["items"][0]["imported_from"] == "renamed"


def test_ingest_runs_beside_training_of_the_same_model(studio, tmp_path):
    studio.models.create("busy", n_layer=1, n_head=2, n_embd=32, block_size=32)
    studio.queue.add_text("busy", "The training text of this model. " * 400, origin="t.txt", source_kind="file")
    studio.queue.add_text("busy", "Another document to learn from. " * 200, origin="u.txt", source_kind="file")
    train = studio.training.start("busy", {"target_epochs": 1000, "batch_size": 2, "sequence_length": 32,
                                            "eval_interval": 1000, "checkpoint_interval": 1000})
    (tmp_path / "more.txt").write_text("more data while it trains")
    ingest = studio.ingest.start("busy", [str(tmp_path / "more.txt")])
    runner = JobRunner(studio)
    try:
        runner.tick()
        assert set(runner.procs) == {train["id"], ingest["id"]}  # both started, one per lane
        _wait(lambda: studio.jobs.get(ingest["id"])["state"] == "done", what="the ingest to finish")
        _wait(lambda: studio.jobs.get(train["id"])["detail"].get("step"), what="training steps")
        assert studio.jobs.get(train["id"])["state"] == "running"
        assert studio.queue.list("busy")["total"] == 3
    finally:
        studio.jobs.stop(train["id"])
        for proc in runner.procs.values():
            proc.wait(timeout=60)
    assert studio.jobs.get(train["id"])["state"] in ("stopped", "done")


def _staged(studio, name="m"):
    studio.models.create(name, **SMALL)
    job = studio.ingest.start_upload(name, [("notes.txt", io.BytesIO(b"an uploaded text " * 100))])
    folder = studio.queue.staging_dir / job["params"]["staging"]
    assert folder.is_dir() and any(folder.iterdir())
    return job, folder


def test_staged_uploads_go_when_the_ingest_is_cancelled_before_it_starts(studio):
    job, folder = _staged(studio)
    assert studio.jobs.stop(job["id"])["state"] == "cancelled"
    assert not folder.exists() and list(studio.queue.staging_dir.iterdir()) == []


def test_staged_uploads_go_when_the_ingest_fails(studio, monkeypatch):
    from cllm_app.jobs.worker import run_job
    from cllm_app.services.queue import Queue

    job, folder = _staged(studio)

    def broken(*_args, **_kwargs):
        raise RuntimeError("a bug in the ingest")

    monkeypatch.setattr(Queue, "ingest", broken)
    assert run_job(job["id"]) == 1  # the worker's own Studio, as the runner starts it
    assert studio.jobs.get(job["id"])["state"] == "failed"
    assert not folder.exists()


def test_staged_uploads_go_when_the_ingest_is_interrupted(studio):
    import subprocess
    import sys

    job, folder = _staged(studio)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    studio.jobs.start(job["id"], gone.pid)  # its worker started, then died without a word
    assert studio.jobs.recover_orphans() == 1
    assert studio.jobs.get(job["id"])["state"] == "interrupted"
    assert not folder.exists()


def test_staged_uploads_go_when_the_ingest_is_done_and_other_folders_stay(studio):
    job, folder = _staged(studio)
    elsewhere = studio.root.path / "models" / "not-staging"
    elsewhere.mkdir(parents=True)
    assert run_ingest(studio, job["id"]) == "done"
    assert not folder.exists()
    from cllm_app.services.ingest import discard_staging

    discard_staging(studio.root.path, str(elsewhere))  # a folder outside staging/ is never removed
    assert elsewhere.is_dir()
