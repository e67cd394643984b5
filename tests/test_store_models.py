"""The model lifecycle's rules, against a real store and real files in a temporary data root."""

import json

import numpy as np
import pytest

from cllm_app.engine.config import GPTConfig
from cllm_app.engine.weights import load_weights
from cllm_app.errors import ConfirmationRequired, Conflict, InvalidInput, NotFound
from cllm_app.store import Job, LanguageModel, LossPoint, QueueEntry
from tests.gpt_reference import logits

SMALL = dict(n_layer=2, n_head=2, n_embd=16, block_size=16)


def _mark_trained(name: str, epochs: int = 1) -> None:
    LanguageModel.update(epochs_trained=epochs, steps_trained=10).where(LanguageModel.model_name == name).execute()


def test_create_default_names_and_files(studio):
    a = studio.models.create(**SMALL)
    b = studio.models.create(**SMALL)
    assert (a["model_name"], b["model_name"]) == ("model_1", "model_2")
    folder = studio.root.model_dir("model_1")
    assert GPTConfig.load(folder / "config.json") == GPTConfig(vocab_size=257, **SMALL)
    weights = load_weights(folder / "model.safetensors")
    assert sum(v.size for v in weights.values()) == a["n_params"]
    for sub in ("checkpoints", "queue", "exports"):
        assert (folder / sub).is_dir()
    assert a["epochs_trained"] == 0 and a["target_epochs"] == 1
    assert a["lineage"]["events"][0]["kind"] == "created"


def test_default_name_takes_lowest_free_number(studio):
    for _ in range(3):
        studio.models.create(**SMALL)
    studio.models.delete("model_2", confirm=True)
    assert studio.models.default_name() == "model_2"


def test_names_are_unique_without_regard_to_case(studio):
    studio.models.create("Alpha", **SMALL)
    with pytest.raises(Conflict) as e:
        studio.models.create("aLPHA", **SMALL)
    assert e.value.code == "name_taken"
    assert [m["model_name"] for m in studio.models.list()] == ["Alpha"]
    assert sorted(p.name for p in studio.root.models_dir.iterdir()) == ["Alpha"]


@pytest.mark.parametrize(
    "fields, code",
    [
        (dict(n_head=3, n_embd=16), "invalid_n_embd"),
        (dict(n_layer=0), "invalid_n_layer"),
        (dict(n_layer="four"), "invalid_n_layer"),
        (dict(n_layer=True), "invalid_n_layer"),
        (dict(n_layer=2.5), "invalid_n_layer"),
        (dict(block_size=10**6), "invalid_block_size"),
        (dict(n_layer=64, n_embd=4096, n_head=64), "too_large"),
        (dict(learning_rate=0), "invalid_learning_rate"),
        (dict(learning_rate=float("nan")), "invalid_learning_rate"),
        (dict(sequence_length=64, block_size=32), "invalid_sequence_length"),
        (dict(colour="red"), "unknown_field"),
    ],
)
def test_bad_shapes_are_refused_and_nothing_is_created(studio, fields, code):
    with pytest.raises(InvalidInput) as e:
        studio.models.create("x", **fields)
    assert e.value.code == code
    assert LanguageModel.select().count() == 0
    assert list(studio.root.models_dir.iterdir()) == []


def test_a_stray_folder_is_not_overwritten(studio):
    stray = studio.root.model_dir("taken")
    stray.mkdir()
    (stray / "mine.txt").write_text("keep me")
    with pytest.raises(Conflict) as e:
        studio.models.create("taken", **SMALL)
    assert e.value.code == "folder_exists"
    assert (stray / "mine.txt").read_text() == "keep me"


def test_list_sorts(studio):
    studio.models.create("b", n_layer=1, n_head=2, n_embd=16, block_size=16)
    studio.models.create("a", n_layer=3, n_head=2, n_embd=16, block_size=16)
    studio.models.create("C", n_layer=2, n_head=2, n_embd=16, block_size=16)
    names = lambda **kw: [m["model_name"] for m in studio.models.list(**kw)]  # noqa: E731
    assert names(sort="name") == ["a", "b", "C"]
    assert names(sort="name", order="desc") == ["C", "b", "a"]
    assert names(sort="created") == ["b", "a", "C"]
    assert names(sort="size") == ["b", "C", "a"]
    studio.models.configure("b", batch_size=4)
    assert names(sort="updated", order="desc")[0] == "b"
    with pytest.raises(InvalidInput):
        studio.models.list(sort="colour")


def test_show_unknown_model(studio):
    with pytest.raises(NotFound):
        studio.models.show("nope")


def test_rename_moves_everything_and_leaves_no_trace(studio, home):
    import sqlite3

    m = studio.models.create("zebra_old", **SMALL)
    row = LanguageModel.get_by_id(m["id"])
    QueueEntry.create(model=row, source_kind="file", origin="/data/a.txt", content_hash="h", token_count=5)
    LossPoint.create(model=row, step=1, epoch=0.1, train_loss=5.0)
    from cllm_app.services import settings

    settings.put("selected_model_id", row.id)
    weights_before = (studio.root.model_dir("zebra_old") / "model.safetensors").read_bytes()

    renamed = studio.models.rename("zebra_old", "okapi")

    assert renamed["model_name"] == "okapi" and renamed["id"] == m["id"]
    assert renamed["queue"] == {"items": 1, "tokens": 5}
    assert LossPoint.select().where(LossPoint.model == row.id).count() == 1
    assert (studio.root.model_dir("okapi") / "model.safetensors").read_bytes() == weights_before
    assert settings.selected_model() == "okapi"
    # no file, folder or row anywhere in the data root mentions the old name
    for path in home.rglob("*"):
        assert "zebra_old" not in path.name
        if path.is_file() and not path.name.startswith("cllm.db"):
            assert b"zebra_old" not in path.read_bytes(), path
    dump = "\n".join(sqlite3.connect(home / "cllm.db").iterdump())
    assert "zebra_old" not in dump
    with pytest.raises(NotFound):
        studio.models.show("zebra_old")


def test_rename_case_only_and_refusals(studio):
    studio.models.create("alpha", **SMALL)
    studio.models.create("beta", **SMALL)
    assert studio.models.rename("alpha", "ALPHA")["model_name"] == "ALPHA"
    assert studio.root.model_dir("ALPHA").is_dir()
    with pytest.raises(Conflict):
        studio.models.rename("ALPHA", "Beta")
    with pytest.raises(InvalidInput):
        studio.models.rename("ALPHA", "bad/name")
    with pytest.raises(NotFound):
        studio.models.rename("gamma", "delta")
    assert studio.models.rename("ALPHA", "ALPHA")["model_name"] == "ALPHA"


def test_busy_model_refuses_rename_delete_and_layer_change(studio):
    studio.models.create("busy", **SMALL)
    studio.jobs.submit("train", "busy", state="running")  # held by this process, which is alive
    for action in (
        lambda: studio.models.rename("busy", "other"),
        lambda: studio.models.delete("busy", confirm=True),
        lambda: studio.models.configure("busy", n_layer=3),
    ):
        with pytest.raises(Conflict) as e:
            action()
        assert e.value.code == "model_busy"
        assert "train job" in e.value.message
    assert studio.models.show("busy")["n_layer"] == 2
    # settings that do not touch files are still allowed
    assert studio.models.configure("busy", target_epochs=3)["target_epochs"] == 3
    Job.update(state="done").execute()
    assert studio.models.rename("busy", "free")["model_name"] == "free"


def test_duplicate_copies_weights_queue_history_and_records_lineage(studio):
    m = studio.models.create("src", **SMALL)
    row = LanguageModel.get_by_id(m["id"])
    QueueEntry.create(model=row, source_kind="crawl", origin="http://example.test/", content_hash="h", token_count=7)
    LossPoint.create(model=row, step=1, epoch=0.5, train_loss=4.0)
    _mark_trained("src")
    copy = studio.models.duplicate("src")
    assert copy["model_name"] == "src-copy"
    assert copy["duplicated_from"] == "src"
    assert copy["queue"] == {"items": 1, "tokens": 7}
    assert copy["epochs_trained"] == 1
    assert QueueEntry.get(QueueEntry.model == copy["id"]).origin == "http://example.test/"
    assert LossPoint.select().where(LossPoint.model == copy["id"]).count() == 1
    a = (studio.root.model_dir("src") / "model.safetensors").read_bytes()
    b = (studio.root.model_dir("src-copy") / "model.safetensors").read_bytes()
    assert a == b
    assert studio.models.show("src")["lineage"]["duplicates"] == ["src-copy"]
    assert studio.models.duplicate("src", "named copy")["model_name"] == "named copy"
    assert studio.models.duplicate("src")["model_name"] == "src-copy-2"


def test_delete_needs_confirmation_then_trash_and_restore(studio):
    studio.models.create("gone", **SMALL)
    with pytest.raises(ConfirmationRequired):
        studio.models.delete("gone")
    weights = (studio.root.model_dir("gone") / "model.safetensors").read_bytes()
    entry = studio.models.delete("gone", confirm=True)
    assert not studio.root.model_dir("gone").exists()
    assert [t["model_name"] for t in studio.models.trash()] == ["gone"]
    assert studio.models.list() == []
    restored = studio.models.restore(entry["id"])
    assert restored["model_name"] == "gone"
    assert (studio.root.model_dir("gone") / "model.safetensors").read_bytes() == weights
    assert studio.models.trash() == []


def test_restore_when_the_name_was_taken_again(studio):
    studio.models.create("twin", **SMALL)
    studio.models.delete("twin", confirm=True)
    studio.models.create("TWIN", **SMALL)
    with pytest.raises(Conflict) as e:
        studio.models.restore("twin")
    assert e.value.code == "name_taken"
    assert studio.models.restore("twin", "twin-old")["model_name"] == "twin-old"
    with pytest.raises(NotFound):
        studio.models.restore("twin")


def test_empty_trash_removes_files_and_rows(studio):
    a = studio.models.create("a", **SMALL)
    studio.models.delete("a", confirm=True)
    with pytest.raises(ConfirmationRequired):
        studio.models.empty_trash()
    assert studio.models.empty_trash(confirm=True) == 1
    assert list(studio.root.trash_dir.iterdir()) == []
    assert LanguageModel.get_or_none(LanguageModel.id == a["id"]) is None


def test_layers_are_added_never_removed(studio):
    studio.models.create("grow", **SMALL)
    before = load_weights(studio.root.model_dir("grow") / "model.safetensors")
    with pytest.raises(InvalidInput) as e:
        studio.models.configure("grow", n_layer=1)
    assert e.value.code == "layer_reduction"
    m = studio.models.configure("grow", n_layer=4)
    assert m["n_layer"] == 4
    assert GPTConfig.load(studio.root.model_dir("grow") / "config.json").n_layer == 4
    assert m["lineage"]["events"][-1] == {
        "kind": "layers_grown",
        "at": m["lineage"]["events"][-1]["at"],
        "detail": {"from": 2, "to": 4, "trained": False},
    }
    after = load_weights(studio.root.model_dir("grow") / "model.safetensors")
    assert all(np.array_equal(after[k], v) for k, v in before.items())  # old blocks untouched


def test_growing_a_trained_model_keeps_what_it_computes(studio):
    studio.models.create("grown", **SMALL)
    _mark_trained("grown")
    path = studio.root.model_dir("grown") / "model.safetensors"
    before = load_weights(path)
    # make the old blocks non-trivial, as training would
    rng = np.random.default_rng(0)
    perturbed = {k: v + rng.normal(0, 0.05, v.shape).astype(np.float32) for k, v in before.items()}
    from cllm_app.engine.weights import save_weights

    save_weights(path, perturbed)
    tokens = np.array([1, 5, 200, 7, 7, 42, 0, 256])
    expected = logits(perturbed, 2, 2, tokens)
    studio.models.configure("grown", n_layer=5)
    after = load_weights(path)
    assert len([k for k in after if k.endswith("ln_1.weight")]) == 5
    for k, v in perturbed.items():
        assert np.array_equal(after[k], v), k
    np.testing.assert_array_equal(logits(after, 5, 2, tokens), expected)


def test_shape_is_locked_once_trained_but_not_before(studio):
    studio.models.create("shape", **SMALL)
    m = studio.models.configure("shape", n_embd=32, n_head=4, block_size=8)
    assert (m["n_embd"], m["n_head"], m["block_size"]) == (32, 4, 8)
    assert m["sequence_length"] == 8  # clamped to the smaller block_size
    assert load_weights(studio.root.model_dir("shape") / "model.safetensors")["wpe.weight"].shape == (8, 32)
    _mark_trained("shape")
    with pytest.raises(InvalidInput) as e:
        studio.models.configure("shape", n_embd=64)
    assert e.value.code == "shape_locked"
    assert "layers can still be added" in e.value.message


def test_target_epochs_never_below_epochs_trained(studio):
    studio.models.create("ep", **SMALL)
    _mark_trained("ep", epochs=3)
    with pytest.raises(InvalidInput) as e:
        studio.models.configure("ep", target_epochs=2)
    assert "epochs_trained (3)" in e.value.message
    assert studio.models.configure("ep", target_epochs=5)["target_epochs"] == 5


def test_training_settings_are_remembered(studio):
    studio.models.create("cfg", **SMALL)
    studio.models.configure("cfg", batch_size=4, learning_rate=1e-3, sequence_length=16, grad_accum=2)
    m = studio.models.show("cfg")
    assert (m["batch_size"], m["learning_rate"], m["sequence_length"], m["grad_accum"]) == (4, 1e-3, 16, 2)
    assert json.loads(json.dumps(m))  # JSON-ready
