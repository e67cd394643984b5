"""Where PyTorch cannot be imported (issue 13): the app starts and trains on the built-in
engine; the Engine choice says PyTorch is not available and how to get it; a model set to
PyTorch fails its run with that plain message, and the built-in engine still trains it."""

import pytest
from e2e_support import TINY_SETTINGS, TINY_SHAPE, open_training, sample_text
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


@pytest.fixture
def app_env(tmp_path) -> dict:
    # A `torch` first on the path that cannot be imported, as on a machine without PyTorch.
    stub = tmp_path / "no-torch" / "torch"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError(\"No module named 'torch'\")\n")
    return {"PYTHONPATH": str(stub.parent)}


def test_without_pytorch_the_choice_says_so_and_the_built_in_engine_trains(page, app):
    app.create("Plain", **TINY_SHAPE)
    app.upload("Plain", {"p.txt": sample_text(4_000, seed=6).encode()})
    app.api("PATCH", "/api/models/Plain", {**TINY_SETTINGS, "target_epochs": 1, "engine": "torch"}, expect_status=200)
    open_training(page, app, "Plain")
    expect(page.get_by_test_id("engine-select").locator('option[value="torch"]')).to_have_text(
        "PyTorch (not available here)", timeout=60_000)
    note = page.get_by_test_id("engine-note")
    expect(note).to_contain_text("No module named 'torch'")
    expect(note).to_contain_text("pip install 'cllm-studio[torch]'")

    page.get_by_test_id("training-start").click()
    progress = page.get_by_test_id("job-progress")
    expect(progress).to_have_attribute("data-state", "failed", timeout=60_000)
    expect(progress).to_contain_text("The PyTorch engine needs PyTorch")
    expect(progress).to_contain_text("pip install 'cllm-studio[torch]'")

    page.get_by_test_id("engine-select").select_option("builtin")
    expect(page.get_by_test_id("engine-device")).to_be_hidden()
    page.get_by_test_id("training-start").click()  # it never trained: Start, not Continue
    expect(progress).to_have_attribute("data-state", "done", timeout=120_000)
