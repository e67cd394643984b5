"""The Training tab's settings form: saved with PATCH, kept across reloads, refusals shown."""

import pytest
from e2e_support import open_tab, panel_select
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

FIELDS = (
    "batch_size",
    "sequence_length",
    "learning_rate",
    "target_epochs",
    "grad_accum",
    "eval_interval",
    "checkpoint_interval",
    "warmup_steps",
    "weight_decay",
    "seed",
    "validation_split",
    "validation_share",
    "minutes",
    "stop_at_loss",
    "early_stop_patience",
    "early_stop_min_delta",
    "use_weights",
)
CHOICES = ("validation_split", "use_weights")  # a <select>; the others are number fields


def test_training_settings_save_reload_and_refusal(page, app):
    app.create("Trainee", block_size=128)
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    open_tab(page, "training")
    expect(panel_select(page, "training")).to_have_value("Trainee")
    panel = page.locator("#panel-training")
    for field in FIELDS:  # labelled with their real names
        expect(panel.get_by_label(field, exact=True)).to_be_visible()
    # The form is the server's declaration of the settings (training_settings.py), field for field.
    # The engine's settings are the Engine choice beside Start, not fields of the form.
    _, declared = app.api("GET", "/api/training-settings", expect_status=200)
    form = [s for s in declared["settings"] if s["group"] == "training"]
    assert [s["name"] for s in form] == list(FIELDS)
    assert [s["name"] for s in declared["settings"] if s["group"] == "engine"] == ["engine", "device", "nproc"]
    expect(panel.get_by_test_id("engine-select")).to_have_value("builtin")
    inputs = panel.locator(".settings-grid input, .settings-grid select")
    assert inputs.evaluate_all("els => els.map((e) => e.name)") == list(FIELDS)
    for s in form:
        field = panel.get_by_label(s["name"], exact=True)
        if s["name"] in CHOICES:
            assert field.locator("option").all_inner_texts() == s["enum"]
            expect(panel.locator(f"#training-{s['name']}-help")).to_have_text(s["help"])
            continue
        top = 128 if s["name"] == "sequence_length" else s["maximum"]  # no longer than the model's block_size
        assert float(field.get_attribute("max")) == top
        expect(panel.locator(f"#training-{s['name']}-help")).to_have_text(s["help"])
    expect(panel).to_contain_text("live")  # says what the tab will hold

    _, before = app.api("GET", "/api/models/Trainee", expect_status=200)
    expect(panel.get_by_label("batch_size", exact=True)).to_have_value(str(before["batch_size"]))
    save = page.get_by_test_id("training-save")
    expect(save).to_be_disabled()

    panel.get_by_label("batch_size", exact=True).fill("16")
    panel.get_by_label("learning_rate", exact=True).fill("0.001")
    panel.get_by_label("validation_split", exact=True).select_option("documents")
    save.click()
    expect(
        page.get_by_test_id("toast").filter(has_text="Saved the training settings of Trainee")
    ).to_be_visible()
    expect(save).to_be_disabled()
    _, after = app.api("GET", "/api/models/Trainee", expect_status=200)
    assert after["batch_size"] == 16
    assert after["learning_rate"] == pytest.approx(0.001)
    assert after["validation_split"] == "documents"
    assert after["sequence_length"] == before["sequence_length"]

    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    expect(page.locator("#panel-training")).to_be_visible()  # the open tab is remembered
    expect(panel.get_by_label("batch_size", exact=True)).to_have_value("16")
    expect(panel.get_by_label("learning_rate", exact=True)).to_have_value("0.001")

    panel.get_by_label("sequence_length", exact=True).fill("256")
    save.click()
    error = page.get_by_test_id("training-error")
    expect(error).to_have_text("sequence_length (256) cannot exceed the model's block_size (128)")
    assert app.api("GET", "/api/models/Trainee")[1]["sequence_length"] == before["sequence_length"]
