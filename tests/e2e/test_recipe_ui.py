"""The recipe chooser in the Training tab: Suggest shows what it would train for the minutes in
the form and why; Apply sets it on the model, and the tab shows the new shape."""

import pytest
from e2e_support import TINY_SHAPE, open_training, sample_text
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_suggest_then_apply_a_recipe(page, app, tmp_path):
    app.create("Chef", **TINY_SHAPE)
    text = tmp_path / "book.txt"
    text.write_text(sample_text(40_000, seed=9))
    open_training(page, app, "Chef")
    page.get_by_test_id("queue-file-input").set_input_files([str(text)])
    expect(page.get_by_test_id("info-queue")).to_contain_text("1 item")
    panel = page.locator("#panel-training")
    panel.get_by_label("minutes", exact=True).fill("3")
    page.get_by_test_id("recipe-suggest").click()
    expect(page.get_by_test_id("recipe-summary")).to_have_text("For 3 minutes:", timeout=60_000)
    expect(page.get_by_test_id("recipe-why")).to_contain_text("tokens/s")
    page.get_by_test_id("recipe-apply").click()
    expect(page.get_by_test_id("toast").filter(has_text="Applied the recipe for 3 minutes to Chef")).to_be_visible()
    model = app.api("GET", "/api/models/Chef", expect_status=200)[1]
    assert model["minutes"] == 3 and model["n_layer"] >= 2  # a chosen shape, not the tiny one
    expect(page.get_by_test_id("info-n_layer")).to_have_text(str(model["n_layer"]))
    expect(panel.get_by_label("learning_rate", exact=True)).to_have_value(str(model["learning_rate"]))
    expect(page.get_by_test_id("budget-hint")).to_contain_text("for 3 minutes")
