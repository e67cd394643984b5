"""Schema versions: an older data root is upgraded in place, keeping its data and a backup."""

import sqlite3

import pytest

from cllm_app.services.studio import Studio
from cllm_app.store.migrations import SCHEMA_VERSION, V1_SQL

V1_MODEL = (
    "INSERT INTO models (model_name, name_key, created_at, updated_at, vocab_size, n_layer, n_head, "
    "n_embd, block_size, tokenizer, batch_size, sequence_length, learning_rate, target_epochs, "
    "grad_accum, eval_interval, checkpoint_interval, warmup_steps, weight_decay, seed, epochs_trained, "
    "steps_trained, tokens_trained) VALUES ('Old One', 'old one', '2026-01-01 00:00:00', "
    "'2026-01-01 00:00:00', 257, 2, 2, 16, 16, 'byte', 8, 16, 0.0003, 4, 1, 100, 100, 100, 0.1, 1, 2, 50, 4096)"
)


def _make_v1_root(home):
    """A data root as the first release wrote it: schema 1, one trained model, its folder."""
    home.mkdir(parents=True)
    con = sqlite3.connect(home / "cllm.db")
    for statement in V1_SQL:
        con.execute(statement)
    con.execute(V1_MODEL)
    con.execute(
        "INSERT INTO loss_history (model_id, step, epoch, train_loss, created_at) "
        "VALUES (1, 50, 2.0, 3.5, '2026-01-01 00:00:00')"
    )
    con.execute("PRAGMA user_version = 1")
    con.commit()
    con.close()
    from cllm_app.engine.config import GPTConfig
    from cllm_app.engine.weights import init_weights, save_weights

    folder = home / "models" / "Old One"
    for sub in ("checkpoints", "queue", "exports"):
        (folder / sub).mkdir(parents=True)
    cfg = GPTConfig(n_layer=2, n_head=2, n_embd=16, block_size=16)
    cfg.save(folder / "config.json")
    save_weights(folder / "model.safetensors", init_weights(cfg))


def test_v1_data_root_is_upgraded_and_keeps_its_models(home):
    _make_v1_root(home)
    studio = Studio(home)
    con = sqlite3.connect(home / "cllm.db")
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert (home / "cllm.db.v1.bak").exists()
    m = studio.models.show("old one")
    assert (m["model_name"], m["epochs_trained"], m["target_epochs"], m["tokens_trained"]) == ("Old One", 2, 4, 4096)
    # it trained before validation_split came, split by whole documents: it keeps that split
    assert m["validation_split"] == "documents" and m["validation_share"] == 0.1
    assert studio.models.create("new", n_layer=1, n_head=2, n_embd=16, block_size=16)["validation_split"] == "auto"
    # the upgraded schema works: trash and the name rule that ignores trashed models
    studio.models.delete("Old One", confirm=True)
    studio.models.create("OLD ONE", n_layer=1, n_head=2, n_embd=16, block_size=16)
    assert [t["model_name"] for t in studio.models.trash()] == ["Old One"]
    studio.close()


def test_upgrading_twice_is_a_no_op(home):
    _make_v1_root(home)
    Studio(home).close()
    Studio(home).close()
    assert sqlite3.connect(home / "cllm.db").execute("SELECT COUNT(*) FROM models").fetchone()[0] == 1


def test_a_newer_schema_is_refused_with_a_plain_message(home):
    home.mkdir(parents=True)
    con = sqlite3.connect(home / "cllm.db")
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.commit()
    con.close()
    with pytest.raises(RuntimeError, match="newer CLLM Studio"):
        Studio(home)


def test_fresh_root_has_wal_and_foreign_keys(studio, home):
    con = sqlite3.connect(home / "cllm.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert studio.database.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1


def test_transactions_take_the_write_lock_at_once(studio):
    """A read-then-write transaction must not fail when a worker process wrote in between."""
    from cllm_app.store import db

    seen = []
    studio.database.connection().set_trace_callback(seen.append)
    with db.atomic():
        pass
    studio.database.connection().set_trace_callback(None)
    assert "BEGIN IMMEDIATE" in seen
