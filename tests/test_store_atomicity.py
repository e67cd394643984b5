"""Multi-step changes are all or nothing: a failure injected at any step leaves everything as it was."""

import os
import sqlite3

import pytest

from cllm_app.services.failpoints import InjectedFailure, armed
from cllm_app.store import LanguageModel, LossPoint, QueueEntry
from tests.conftest import snapshot

SMALL = dict(n_layer=2, n_head=2, n_embd=16, block_size=16)


def _state(home):
    rows = "\n".join(sqlite3.connect(home / "cllm.db").iterdump())
    return snapshot(home), rows


@pytest.fixture
def populated(studio):
    m = studio.models.create("first", **SMALL)
    row = LanguageModel.get_by_id(m["id"])
    QueueEntry.create(model=row, source_kind="file", origin="/x.txt", content_hash="h", token_count=3)
    LossPoint.create(model=row, step=1, epoch=0.1, train_loss=5.0)
    LanguageModel.update(steps_trained=1).where(LanguageModel.id == row.id).execute()
    studio.models.create("second", **SMALL)
    studio.models.delete("second", confirm=True)
    return studio


ACTIONS = {
    "rename": (lambda s: s.models.rename("first", "renamed"), ["rename.row", "rename.folder", "rename.commit"]),
    "rename-case": (lambda s: s.models.rename("first", "FIRST"), ["rename.row", "rename.hop", "rename.folder", "rename.commit"]),
    "create": (lambda s: s.models.create("third", **SMALL), ["create.files", "create.commit"]),
    "duplicate": (lambda s: s.models.duplicate("first"), ["duplicate.rows", "duplicate.files", "duplicate.commit"]),
    "delete": (lambda s: s.models.delete("first", confirm=True), ["delete.row", "delete.commit"]),
    "restore": (lambda s: s.models.restore("second"), ["restore.row", "restore.commit"]),
    "grow": (lambda s: s.models.configure("first", n_layer=4), ["configure.weights", "configure.commit"]),
}


@pytest.mark.parametrize(
    "action, point", [(a, p) for a, (_, points) in ACTIONS.items() for p in points]
)
def test_injected_failure_at_each_step_changes_nothing(populated, home, action, point):
    run, _ = ACTIONS[action]
    before = _state(home)
    with armed(point), pytest.raises(InjectedFailure):
        run(populated)
    after = _state(home)
    assert after[0] == before[0], "files differ after a failed " + action
    assert after[1] == before[1], "rows differ after a failed " + action
    run(populated)  # and the same action then succeeds


@pytest.mark.parametrize("action", ["rename", "duplicate", "delete", "restore", "create"])
def test_a_failing_disk_move_changes_nothing(populated, home, monkeypatch, action):
    """The operating system refusing a move (a locked folder, a full disk) rolls everything back."""
    run, _ = ACTIONS[action]
    before = _state(home)
    real_replace = os.replace
    failed = []

    def flaky_replace(src, dst):
        if not failed and os.path.isdir(src):
            failed.append(src)
            raise PermissionError(13, "Permission denied", str(src))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(PermissionError):
        run(populated)
    monkeypatch.setattr(os, "replace", real_replace)
    assert _state(home) == before
