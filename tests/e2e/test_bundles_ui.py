"""Training bundles from the Models tab (issue 13): Bundle… writes the folder, Import bundle…
brings its training back, and the details show the new epochs without a reload."""

import json

import pytest
from e2e_support import TINY_SETTINGS, TINY_SHAPE, open_tab, sample_text
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_bundle_then_import_from_the_models_tab(page, app, tmp_path):
    app.create("Travel", **TINY_SHAPE)
    app.upload("Travel", {"t.txt": sample_text(4_000, seed=8).encode()})
    job = app.api("POST", "/api/models/Travel/train", {**TINY_SETTINGS, "target_epochs": 1}, expect_status=202)[1]
    assert app.wait_job(job["id"], timeout=120)["state"] == "done"
    app.api("PATCH", "/api/models/Travel", {"target_epochs": 2}, expect_status=200)
    app.api("PUT", "/api/settings", {"selected_model": "Travel"}, expect_status=200)
    page.reload()
    open_tab(page, "models")
    expect(page.get_by_test_id("details-epochs")).to_contain_text("1 trained of 2 target")

    folder = tmp_path / "travel-bundle"
    page.get_by_test_id("bundle-button").click()
    page.get_by_test_id("dialog-input").fill(str(folder))
    page.get_by_test_id("dialog-confirm").click()
    expect(page.locator(".toast").last).to_contain_text(f"Wrote the training bundle of Travel to {folder}")
    assert (folder / "launch.sh").is_file() and (folder / "bundle.json").is_file()

    # Importing before it trained says so, and changes nothing
    page.get_by_test_id("import-bundle-button").click()
    page.get_by_test_id("dialog-input").fill(str(folder))
    page.get_by_test_id("dialog-confirm").click()
    expect(page.locator(".toast").last).to_contain_text("run its launch.sh first")

    # as if launch.sh had run: one more epoch's checkpoint and its history
    from cllm_app.engine.checkpoint import load_latest, save_checkpoint

    ck = load_latest(folder / "checkpoints")
    save_checkpoint(folder / "checkpoints", ck.step + 2, ck.tensors, {**ck.meta, "epoch": 2, "batch_in_epoch": 0})
    lines = [{"step": ck.step + i, "epoch": 1 + i / 2, "train_loss": 2.0 - i / 10, "learning_rate": 1e-3,
              "tokens_per_sec": 1000.0, "time": "2026-12-07T10:00:00+00:00"} for i in (1, 2)]
    (folder / "history.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (folder / "runs.jsonl").write_text(json.dumps({"ended_at": ck.step + 2, "processes": 4, "device": "cuda"}) + "\n")

    page.get_by_test_id("import-bundle-button").click()
    page.get_by_test_id("dialog-input").fill(str(folder))
    page.get_by_test_id("dialog-confirm").click()
    expect(page.locator(".toast").last).to_contain_text(f"steps {ck.step} to {ck.step + 2} imported (4 processes, cuda)")
    expect(page.get_by_test_id("details-epochs")).to_contain_text("2 trained of 2 target")
    expect(page.get_by_test_id("lineage-events")).to_contain_text(
        f"Steps {ck.step} to {ck.step + 2} trained outside the app (4 processes, cuda)")
