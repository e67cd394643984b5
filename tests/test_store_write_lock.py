"""Slow file work happens outside the store's write lock.

Transactions take the write lock when they begin (BEGIN IMMEDIATE), and the job runner, the
training workers and other requests wait for it at most busy_timeout (15 s). Making and writing a
large model's weights, or copying its folder, takes longer than that, so it must be done before
the transaction opens. Each test looks, from another connection, whether the lock is free while
that work is under way."""

import sqlite3

import pytest

from cllm_app.fsutil import FileSteps
from cllm_app.services import models as models_service


def _write_lock_is_free(studio) -> bool:
    other = sqlite3.connect(studio.root.db_path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:  # "database is locked"
        return False
    finally:
        other.close()


@pytest.fixture
def probe_during_init_weights(studio, monkeypatch):
    seen = []
    real = models_service.init_weights

    def init_weights(*args, **kwargs):
        seen.append(_write_lock_is_free(studio))
        return real(*args, **kwargs)

    monkeypatch.setattr(models_service, "init_weights", init_weights)
    return seen


def test_creating_a_model_makes_its_weights_outside_the_write_lock(studio, probe_during_init_weights):
    studio.models.create("big", n_layer=1, n_embd=32, n_head=2, block_size=32)
    assert probe_during_init_weights == [True]


def test_reshaping_a_model_makes_its_weights_outside_the_write_lock(studio, probe_during_init_weights):
    studio.models.create("big", n_layer=1, n_embd=32, n_head=2, block_size=32)
    probe_during_init_weights.clear()
    studio.models.configure("big", n_embd=64)
    assert probe_during_init_weights == [True]
    assert studio.models.show("big")["n_embd"] == 64


def test_duplicating_a_model_copies_its_folder_outside_the_write_lock(studio, monkeypatch):
    studio.models.create("big", n_layer=1, n_embd=32, n_head=2, block_size=32)
    seen = []
    real = FileSteps.copytree

    def copytree(self, src, dst):
        seen.append(_write_lock_is_free(studio))
        return real(self, src, dst)

    monkeypatch.setattr(FileSteps, "copytree", copytree)
    copy = studio.models.duplicate("big", "big copy")
    assert seen == [True]
    assert copy["model_name"] == "big copy" and (studio.root.model_dir("big copy") / "model.safetensors").is_file()
