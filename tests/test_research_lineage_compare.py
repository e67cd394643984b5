"""Lineage edges (duplicates, data imports, trashed sources, grown layers) and the Compare table."""

import json

import pytest
from research_support import SHAPE, make_model

from cllm_app.errors import InvalidInput, NotFound
from cllm_app.store import LossPoint, ModelEvent


def _by_name(g):
    return {n["model_name"]: n for n in g["nodes"]}


def test_duplicate_import_and_grown_layers(studio):
    make_model(studio, "root")
    studio.models.duplicate("root", "child")
    studio.models.duplicate("child", "grandchild")
    studio.models.create("other", **SHAPE)
    other, root = studio.models.get("other"), studio.models.get("root")
    # the data issue writes these events; any of the documented keys names the source
    ModelEvent.create(model=other, kind="data_imported", detail=json.dumps({"from_model_id": root.id, "items": 3}))
    ModelEvent.create(model=other, kind="data_imported", detail=json.dumps({"source_model": "grandchild"}))
    studio.models.configure("child", n_layer=3)
    g = studio.research.lineage()
    nodes = _by_name(g)
    ids = {n["id"]: n["model_name"] for n in g["nodes"]}
    edges = {(e["kind"], ids[e["from"]], ids[e["to"]]) for e in g["edges"]}
    assert edges == {
        ("duplicated", "root", "child"),
        ("duplicated", "child", "grandchild"),
        ("data_imported", "root", "other"),
        ("data_imported", "grandchild", "other"),
    }
    assert [nodes[n]["depth"] for n in ("root", "child", "grandchild", "other")] == [0, 1, 2, 0]
    assert nodes["child"]["layers_grown"][0]["from"] == 2 and nodes["child"]["layers_grown"][0]["to"] == 3


def test_a_trashed_source_stays_marked_deleted(studio):
    make_model(studio, "src")
    studio.models.duplicate("src", "copy")
    studio.models.delete("src", confirm=True)
    g = studio.research.lineage()
    nodes = _by_name(g)
    assert nodes["src"]["deleted"] is True and nodes["copy"]["deleted"] is False
    assert [(e["from"], e["to"]) for e in g["edges"]] == [(nodes["src"]["id"], nodes["copy"]["id"])]
    studio.models.empty_trash(confirm=True)
    assert [n["model_name"] for n in studio.research.lineage()["nodes"]] == ["copy"]
    assert studio.research.lineage()["edges"] == []


def test_compare_table_and_series(studio):
    make_model(studio, "a", docs=3)
    studio.models.duplicate("a", "b")
    a = studio.models.get("a")
    a.steps_trained, a.tokens_trained, a.epochs_trained = 4, 4 * 64, 1
    a.save()
    for step, train, val in [(1, 5.0, None), (2, 4.0, 4.5), (3, 3.5, None), (4, 3.0, 3.9)]:
        LossPoint.create(model=a, step=step, epoch=step / 4, train_loss=train, val_loss=val)
    out = studio.research.compare(["a", "b", "A"])  # the same model twice counts once
    assert [m["model_name"] for m in out["models"]] == ["a", "b"]
    ma, mb = out["models"]
    assert ma["best_val_loss"] == 3.9 and ma["best_val_step"] == 4
    assert ma["queue"]["items"] == 3 and ma["queue"]["tokens"] > 0
    assert (ma["n_layer"], ma["n_head"], ma["n_embd"], ma["block_size"], ma["vocab_size"]) == (2, 2, 16, 16, 257)
    assert ma["tokens_trained"] == 256 and ma["epochs_trained"] == 1
    assert [p["tokens"] for p in ma["points"]] == [64, 128, 192, 256]
    assert [p["val_loss"] for p in ma["points"]] == [None, 4.5, None, 3.9]
    assert mb["lineage"]["parent"] == "a" and mb["points"] == []  # copied before a trained
    assert ma["lineage"] == {"parent": None, "parent_deleted": False, "imports": [], "layers_grown": []}


def test_compare_refusals(studio):
    with pytest.raises(InvalidInput):
        studio.research.compare([])
    with pytest.raises(NotFound):
        studio.research.compare(["ghost"])
