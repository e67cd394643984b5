"""The validation split as a person sees it: each queue item says how much of it trains and how
much validates, a marked item is held out whole, the Epochs column and continuous mode's count
of untrained tokens leave validation out, and a single document still validates."""

import io
import json

from cllm_app.jobs.train import run_training
from cllm_app.services.crawls import untrained_tokens
from cllm_app.store import LossPoint, QueueEntry

SMALL = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16}
SETTINGS = {"batch_size": 2, "sequence_length": 16, "eval_interval": 2, "checkpoint_interval": 50, "target_epochs": 1}
PROSE = b"The river ran past the mill and under the old stone bridge to the sea. "
CODE = b"def add(a, b):\n    return a + b\n\n"


def _queue(studio, name, files):
    studio.models.create(name, **SMALL)
    for filename, data in files:
        studio.queue.add_stream(name, io.BytesIO(data), filename)
    return {e["origin"]: e for e in studio.queue.list(name)["items"]}


def test_two_files_each_give_their_tail_and_both_are_trained_on(studio):
    # The issue: with two files the smaller became validation whole, yet said "used in epoch 1".
    items = _queue(studio, "m", [("prose.txt", PROSE * 40), ("code.py.txt", CODE * 20)])
    split = studio.queue.list("m")["split"]
    assert split["setting"] == "auto" and split["mode"] == "tail" and "last 10%" in split["description"]
    for e in items.values():
        assert e["validation_tokens"] == round(e["token_count"] * 0.1)
        assert e["train_tokens"] + e["validation_tokens"] == e["token_count"]
    assert split["train_tokens"] == sum(e["train_tokens"] for e in items.values())
    job = studio.training.start("m", SETTINGS, foreground=True)
    assert run_training(studio, job["id"]) == "done"
    used = {e["origin"]: json.loads(e["epochs_used"]) for e in studio.queue.list("m")["items"]}
    assert used == {"prose.txt": [1], "code.py.txt": [1]}
    assert studio.models.show("m")["validation_split"] == "tail"  # auto decided, and kept from now on
    assert untrained_tokens(studio.models.get("m").id) == 0


def test_a_marked_file_is_validation_whole_never_trained_and_not_counted_as_untrained(studio, client):
    items = _queue(studio, "m", [("prose.txt", PROSE * 40), ("held.txt", PROSE[::-1] * 10)])
    held = items["held.txt"]
    r = client.patch(f"/api/models/m/queue/{held['id']}", json={"holdout": True})
    assert r.status_code == 200 and r.get_json()["holdout"] is True
    client.patch("/api/models/m", json={"validation_split": "marked"})
    listed = {e["origin"]: e for e in studio.queue.list("m")["items"]}
    assert (listed["held.txt"]["train_tokens"], listed["held.txt"]["validation_tokens"]) == (0, held["token_count"])
    assert listed["prose.txt"]["validation_tokens"] == 0
    assert untrained_tokens(studio.models.get("m").id) == items["prose.txt"]["token_count"]
    job = studio.training.start("m", SETTINGS, foreground=True)
    assert run_training(studio, job["id"]) == "done"
    used = {e["origin"]: json.loads(e["epochs_used"]) for e in studio.queue.list("m")["items"]}
    assert used == {"prose.txt": [1], "held.txt": []}
    vals = [p.val_loss for p in LossPoint.select().where(LossPoint.val_loss.is_null(False))]
    assert vals  # the marked file is what it validated on


def test_marking_refuses_bad_input_and_changes_nothing(studio, client):
    items = _queue(studio, "m", [("a.txt", PROSE * 5)])
    entry = items["a.txt"]
    for body, status, code in (({"holdout": "yes"}, 400, "invalid_holdout"), ({}, 400, None),
                               ({"holdout": 1}, 400, "invalid_holdout")):
        r = client.patch(f"/api/models/m/queue/{entry['id']}", json=body)
        assert r.status_code == status and (code is None or r.get_json()["error"]["code"] == code), r.get_json()
    assert client.patch("/api/models/m/queue/99999", json={"holdout": True}).status_code == 404
    assert QueueEntry.get_by_id(entry["id"]).holdout is False


def test_a_single_document_queue_validates_on_its_tail(studio):
    items = _queue(studio, "one", [("only.txt", PROSE * 30)])
    assert items["only.txt"]["validation_tokens"] > 0
    job = studio.training.start("one", SETTINGS, foreground=True)
    assert run_training(studio, job["id"]) == "done"
    row = studio.models.get("one")
    assert LossPoint.select().where((LossPoint.model == row.id) & LossPoint.val_loss.is_null(False)).count() > 0
    assert studio.jobs.get(job["id"])["detail"]["validation"]["whole"] is True


def test_a_duplicate_keeps_the_marks(studio):
    items = _queue(studio, "m", [("a.txt", PROSE * 5), ("b.txt", CODE * 5)])
    studio.queue.mark("m", items["b.txt"]["id"], True)
    studio.models.duplicate("m", "copy")
    marks = {e["origin"]: e["holdout"] for e in studio.queue.list("copy")["items"]}
    assert marks == {"a.txt": False, "b.txt": True}
