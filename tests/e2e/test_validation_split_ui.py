"""The validation split in the Training tab: each queue item says what of it trains and what
validates, "Hold out" marks an item as validation, a changed split setting redraws the table,
and the chart says why it has no validation line."""

import pytest
from e2e_support import TINY_SHAPE, open_training, queue_row, sample_text
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_the_queue_shows_the_split_and_hold_out_marks_an_item(page, app, tmp_path):
    app.create("Splitter", **TINY_SHAPE)
    open_training(page, app, "Splitter")
    alpha, beta = tmp_path / "alpha.txt", tmp_path / "beta.txt"
    alpha.write_text(sample_text(3000, seed=1))
    beta.write_text(sample_text(2000, seed=2))
    page.get_by_test_id("queue-file-input").set_input_files([str(alpha), str(beta)])
    for origin in ("alpha.txt", "beta.txt"):
        cell = queue_row(page, origin).get_by_test_id("queue-split")
        expect(cell).to_have_attribute("data-role", "both")
        expect(cell).to_have_text("training · 10% validation")
    summary = page.get_by_test_id("queue-split-summary")
    expect(summary).to_contain_text("Validation (auto): the last 10% of each document's tokens")
    expect(summary).to_contain_text("4,500 tokens train, 500 tokens validate")
    expect(page.get_by_test_id("chart-val-note")).to_contain_text("No validation line yet")

    queue_row(page, "beta.txt").get_by_test_id("queue-holdout").click()
    beta_cell = queue_row(page, "beta.txt").get_by_test_id("queue-split")
    expect(beta_cell).to_have_attribute("data-role", "validation")
    expect(beta_cell).to_have_text("validation (marked)")
    expect(queue_row(page, "beta.txt").get_by_test_id("queue-holdout")).to_have_text("Train on it")
    expect(summary).to_contain_text("2,700 tokens train, 2,300 tokens validate")

    # The split setting changed elsewhere (the API here): the table follows the store.
    app.api("PATCH", "/api/models/Splitter", {"validation_split": "marked"}, expect_status=200)
    expect(queue_row(page, "alpha.txt").get_by_test_id("queue-split")).to_have_attribute("data-role", "training")
    expect(summary).to_contain_text("3,000 tokens train, 2,000 tokens validate")

    # Nothing marked in "marked" mode: nothing is held out, and the chart says so.
    queue_row(page, "beta.txt").get_by_test_id("queue-holdout").click()
    expect(beta_cell).to_have_attribute("data-role", "training")
    expect(page.get_by_test_id("chart-val-note")).to_contain_text("No validation line: nothing is held out")
