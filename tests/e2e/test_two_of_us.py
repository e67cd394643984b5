"""Two of us at once: the window open in Chromium while the CLI, in processes of its own,
renames the model the window shows, adds training data to it, trains it and deletes it. Each
change shows in the window within 2 s of the command's end, without a reload (the store's
change feed, GET /api/events); every deadline is counted from when the CLI process exits."""

import os
import subprocess
import sys

import pytest
from e2e_support import TINY_SHAPE, open_tab, sample_text
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

WITHIN_MS = 2_000


def cllm(app, *args) -> str:
    """Run `cllm ARGS` against the app's data root, as a person in a terminal would; returns
    when the process has exited."""
    done = subprocess.run(
        [sys.executable, "-m", "cllm_app", *args],
        env={**os.environ, "CLLM_HOME": str(app.home)},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def test_the_cli_renames_adds_data_trains_and_deletes_while_the_window_watches(page, app, tmp_path):
    app.create("Solo", **TINY_SHAPE)
    app.api("PUT", "/api/settings", {"selected_model": "Solo"}, expect_status=200)
    page.reload()
    body = page.locator("body")
    expect(body).to_have_attribute("data-ready", "1")
    expect(body).to_have_attribute("data-events", "open")
    open_tab(page, "models")
    expect(page.get_by_test_id("details-name")).to_have_text("Solo")

    # A rename: the list, the details and the selection follow the model.
    cllm(app, "models", "rename", "Solo", "Duo")
    expect(page.locator('#panel-models tr[data-model="Duo"]')).to_have_attribute(
        "aria-selected", "true", timeout=WITHIN_MS
    )
    expect(page.get_by_test_id("details-name")).to_have_text("Duo", timeout=WITHIN_MS)
    expect(page.locator('#panel-models tr[data-model="Solo"]')).to_have_count(0)

    # Training data added from the terminal: the Training tab's counts.
    open_tab(page, "training")
    info_queue = page.get_by_test_id("info-queue")
    expect(info_queue).to_have_text("0 items · 0 tokens")
    text = tmp_path / "story.txt"
    text.write_text(sample_text(6_000, seed=3))
    cllm(app, "data", "add", "Duo", str(text))
    tokens = app.api("GET", "/api/models/Duo", expect_status=200)[1]["queue"]["tokens"]
    expect(info_queue).to_have_text(f"1 item · {tokens:,} tokens", timeout=WITHIN_MS)
    expect(page.get_by_test_id("queue-summary")).to_have_text(f"1 item · {tokens:,} tokens", timeout=WITHIN_MS)
    expect(page.locator('#panel-training [data-testid="queue-table"] tr[data-origin="story.txt"]')).to_be_visible(
        timeout=WITHIN_MS
    )

    # A short training run from the terminal: epochs, and the run card shows the job done.
    cllm(app, "models", "set", "Duo", "--batch-size", "2", "--sequence-length", "16",
         "--eval-interval", "5", "--checkpoint-interval", "5")
    cllm(app, "train", "Duo", "--epochs", "1")
    expect(page.get_by_test_id("info-epochs")).to_have_text("1 trained of 1 target", timeout=WITHIN_MS)
    expect(page.get_by_test_id("job-state")).to_have_attribute("data-state", "done", timeout=WITHIN_MS)
    job = app.api("GET", "/api/jobs?model_name=Duo", expect_status=200)[1]["jobs"][0]
    assert job["kind"] == "train" and job["state"] == "done"
    # The CLI trained in its own process: the window's runner never started a worker for it.
    assert not (app.home / "logs" / f"job-{job['id']}.log").exists()

    # Deleted from the terminal: gone from the list, waiting in the trash.
    open_tab(page, "models")
    cllm(app, "models", "delete", "Duo", "--yes")
    expect(page.locator('#panel-models tr[data-model="Duo"]')).to_have_count(0, timeout=WITHIN_MS)
    expect(page.locator('[data-trash-name="Duo"]')).to_be_visible(timeout=WITHIN_MS)
    expect(page.get_by_test_id("details")).not_to_contain_text("Duo")


def test_a_setting_changed_by_the_cli_shows_beside_unsaved_edits(page, app):
    """The person has typed a batch_size and not saved it; meanwhile the CLI sets target_epochs.
    The form shows the CLI's target_epochs and keeps the typed batch_size, and Save sends only
    the person's edit, so neither change undoes the other."""
    created = app.create("Both", **TINY_SHAPE)
    app.api("PUT", "/api/settings", {"selected_model": "Both"}, expect_status=200)
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-events", "open")
    open_tab(page, "training")
    panel = page.locator("#panel-training")
    expect(panel.get_by_test_id("summary-name")).to_have_text("Both")
    batch = page.get_by_test_id("training-batch_size")
    expect(batch).to_have_value(str(created["batch_size"]))  # the form has loaded: typing now is kept
    batch.fill("3")

    cllm(app, "models", "set", "Both", "--target-epochs", "4")
    expect(page.get_by_test_id("training-target_epochs")).to_have_value("4", timeout=WITHIN_MS)
    expect(page.get_by_test_id("info-epochs")).to_have_text("0 trained of 4 target")
    expect(batch).to_have_value("3")
    page.get_by_test_id("training-save").click()
    # Save disables itself as it sends; the toast says the server has answered.
    expect(page.get_by_test_id("toast").filter(has_text="Saved the training settings of Both")).to_be_visible()
    model = app.api("GET", "/api/models/Both", expect_status=200)[1]
    assert (model["batch_size"], model["target_epochs"]) == (3, 4)


def test_a_crawl_from_the_cli_shows_in_the_crawler_tab(page, app):
    """The Crawler tab shows the model's last crawl; `cllm crawl` runs another one: the card
    moves to it and shows its final counts, and the summary the crawl's pages in the queue."""
    from crawl_site import CrawlSite

    app.create("Web", **TINY_SHAPE)
    app.api("PUT", "/api/settings", {"selected_model": "Web"}, expect_status=200)
    with CrawlSite(slow_seconds=0.2) as site:
        first = app.api("POST", "/api/models/Web/crawls",
                        {"start_urls": [site.url("/")], "max_pages": 1, "rate": 0, "timeout": 2}, expect_status=202)[1]
        app.wait_job(first["job_id"])
        page.reload()
        expect(page.locator("body")).to_have_attribute("data-events", "open")
        open_tab(page, "crawler")
        status = page.get_by_test_id("crawl-status")
        expect(status).to_have_attribute("data-crawl-id", str(first["id"]))
        expect(status.get_by_test_id("crawl-state")).to_have_attribute("data-state", "done")

        cllm(app, "crawl", "Web", site.url("/"), "--max-pages", "4", "--depth", "1", "--rate", "0", "--timeout", "2")
        crawls = app.api("GET", "/api/models/Web/crawls", expect_status=200)[1]["crawls"]
        second = crawls[0]
        assert second["id"] != first["id"] and second["state"] == "done"
        expect(status).to_have_attribute("data-crawl-id", str(second["id"]), timeout=WITHIN_MS)
        expect(status.get_by_test_id("crawl-state")).to_have_attribute("data-state", "done", timeout=WITHIN_MS)
        expect(page.get_by_test_id("crawl-count-fetched")).to_have_text(f"{second['fetched']:,}", timeout=WITHIN_MS)
        expect(page.get_by_test_id("crawl-history-item")).to_have_count(2, timeout=WITHIN_MS)
        queue = app.api("GET", "/api/models/Web", expect_status=200)[1]["queue"]
        expect(page.locator('#panel-crawler [data-testid="model-summary"]')).to_contain_text(
            f"{queue['items']} items · {queue['tokens']:,} tokens", timeout=WITHIN_MS)


def test_a_change_from_elsewhere_never_writes_into_the_field_being_typed_in(page, app):
    """A change event redraws the Training form; the field with the caret keeps what is in it
    (a value set under the caret mid-keystroke joined the next key: '8' then '2' read '82')."""
    app.create("Typist", **TINY_SHAPE)
    app.api("PUT", "/api/settings", {"selected_model": "Typist"}, expect_status=200)
    page.reload()
    body = page.locator("body")
    expect(body).to_have_attribute("data-ready", "1")
    expect(body).to_have_attribute("data-events", "open")
    open_tab(page, "training")
    panel = page.locator("#panel-training")
    batch = panel.get_by_label("batch_size", exact=True)
    expect(batch).to_have_value("8")
    # The moment inside a keystroke: the caret in the field, its text changed, no input event yet.
    batch.evaluate("el => { el.focus(); el.value = '5'; }")
    app.api("PATCH", "/api/models/Typist", {"eval_interval": 7}, expect_status=200)
    expect(panel.get_by_label("eval_interval", exact=True)).to_have_value("7")  # the form was redrawn
    expect(batch).to_have_value("5")
