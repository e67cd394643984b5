"""The Engine choice beside Start (issue 13): pick PyTorch and its device in the Training tab,
Start, and the run says which engine it runs on; the choice is the model's, remembered, and
follows a change made elsewhere (the CLI) without a reload."""

import pytest
from e2e_support import TINY_SETTINGS, TINY_SHAPE, open_tab, open_training, sample_text
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_pick_pytorch_start_and_the_run_names_its_engine(page, app):
    app.create("Torchy", **TINY_SHAPE)
    app.upload("Torchy", {"t.txt": sample_text(6_000, seed=3).encode()})
    app.api("PATCH", "/api/models/Torchy", {**TINY_SETTINGS, "target_epochs": 2}, expect_status=200)
    open_training(page, app, "Torchy")
    engine = page.get_by_test_id("engine-select")
    device = page.get_by_test_id("engine-device")
    expect(engine).to_have_value("builtin")
    expect(device).to_be_hidden()
    # PyTorch is found in a process of its own: the option reads "PyTorch" once it answered
    expect(engine.locator('option[value="torch"]')).to_have_text("PyTorch", timeout=60_000)
    engine.select_option("torch")
    expect(device).to_be_visible()
    expect(page.get_by_test_id("engine-note")).to_contain_text("PyTorch 2.")
    device.select_option("cpu")
    expect(device).to_have_value("cpu")

    def saved():
        model = app.api("GET", "/api/models/Torchy", expect_status=200)[1]
        return model["engine"], model["device"], model["nproc"]

    from e2e_support import eventually

    eventually(lambda: saved() == ("torch", "cpu", 1))
    page.get_by_test_id("training-start").click()
    expect(page.get_by_test_id("job-engine")).to_have_text("Engine: PyTorch · cpu · fp32", timeout=60_000)
    expect(page.get_by_test_id("job-progress")).to_have_attribute("data-state", "done", timeout=120_000)
    expect(engine).to_be_enabled()

    # changed elsewhere (as `cllm models set Torchy --engine builtin` would): the window follows
    app.api("PATCH", "/api/models/Torchy", {"engine": "builtin"}, expect_status=200)
    expect(engine).to_have_value("builtin")
    expect(device).to_be_hidden()
    page.reload()
    open_tab(page, "training")
    expect(page.get_by_test_id("engine-select")).to_have_value("builtin")


def test_a_refused_engine_setting_says_why(page, app):
    app.create("Split", **TINY_SHAPE)
    app.api("PATCH", "/api/models/Split", {"engine": "torch", "batch_size": 3}, expect_status=200)
    app.upload("Split", {"s.txt": sample_text(3_000, seed=4).encode()})
    open_training(page, app, "Split")
    nproc = page.get_by_test_id("engine-nproc")
    expect(nproc).to_be_visible()
    nproc.fill("2")
    nproc.dispatch_event("change")
    expect(page.get_by_test_id("engine-nproc")).to_have_value("2")
    page.get_by_test_id("training-start").click()
    expect(page.get_by_test_id("run-error")).to_contain_text("batch_size 3 does not split evenly over 2 processes")
