"""The Training tab's training-data queue: add by file input, by drag and drop and by the
desktop dialog; token counts; preview; remove; refused files with their reasons; an empty
queue refuses Start in plain words."""

import pytest
from e2e_support import (
    TINY_SHAPE,
    eventually,
    fake_desktop_bridge,
    open_tab,
    open_training,
    queue_row,
    sample_text,
)
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

DROP_FILE = """async ([name, text]) => {
  const dt = new DataTransfer();
  dt.items.add(new File([text], name, { type: "text/plain" }));
  const fire = (type, target) => target.dispatchEvent(
    new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
  fire("dragenter", document.body);
  fire("dragover", document.body);
  const overlay = document.querySelector('[data-testid="drop-overlay"]');
  const shown = !overlay.hidden && overlay.textContent.includes("Drop text files");
  fire("drop", overlay);
  return shown;
}"""


def test_add_preview_remove_and_refused_files(page, app, tmp_path):
    app.create("Reader", **TINY_SHAPE)
    open_training(page, app, "Reader")
    expect(page.get_by_test_id("queue-summary")).to_have_text("0 items · 0 tokens")

    alpha = tmp_path / "alpha.txt"
    beta = tmp_path / "beta.txt"
    alpha.write_text("Alpha begins here. " + sample_text(3000, seed=1))
    beta.write_text(sample_text(2000, seed=2))
    page.get_by_test_id("queue-file-input").set_input_files([str(alpha), str(beta)])
    expect(page.get_by_test_id("upload-summary")).to_have_text("Added 2 files (5,019 tokens).")
    expect(queue_row(page, "alpha.txt").get_by_test_id("queue-tokens")).to_have_text("3,019")
    expect(queue_row(page, "beta.txt").get_by_test_id("queue-tokens")).to_have_text("2,000")

    # Drag and drop anywhere on the window while the tab is open: an overlay, then the upload.
    assert page.evaluate(
        DROP_FILE, ["gamma.txt", "Gamma was dropped. " + sample_text(1000, seed=3)]
    )
    expect(queue_row(page, "gamma.txt").get_by_test_id("queue-tokens")).to_have_text("1,019")
    expect(page.get_by_test_id("drop-overlay")).to_be_hidden()
    expect(page.get_by_test_id("queue-summary")).to_have_text("3 items · 6,038 tokens")
    expect(page.get_by_test_id("info-queue")).to_have_text("3 items · 6,038 tokens")
    queue = app.api("GET", "/api/models/Reader/queue", expect_status=200)[1]
    assert sorted(i["origin"] for i in queue["items"]) == ["alpha.txt", "beta.txt", "gamma.txt"]

    # A binary file and an empty one are refused, each with its reason; a duplicate is named.
    binary = tmp_path / "picture.bin"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    page.get_by_test_id("queue-file-input").set_input_files([str(binary), str(empty), str(alpha)])
    refused = page.get_by_test_id("upload-refused")
    expect(refused.locator('li[data-origin="picture.bin"]')).to_have_text(
        "picture.bin was not added: it is a PNG image, not text."
    )
    expect(refused.locator('li[data-origin="empty.txt"]')).to_have_text(
        "empty.txt was not added: it is empty."
    )
    expect(page.get_by_test_id("upload-summary")).to_contain_text(
        "1 file was already in the queue: alpha.txt"
    )
    assert len(app.api("GET", "/api/models/Reader/queue")[1]["items"]) == 3

    # Preview shows the start of the text.
    queue_row(page, "alpha.txt").get_by_test_id("queue-preview-button").click()
    expect(page.get_by_test_id("queue-preview-text")).to_contain_text("Alpha begins here.")
    page.get_by_test_id("queue-preview-close").click()
    expect(page.get_by_test_id("queue-preview")).to_be_hidden()

    # Remove asks first; Cancel keeps the item, Remove takes it out.
    queue_row(page, "beta.txt").get_by_test_id("queue-remove").click()
    page.get_by_test_id("dialog-cancel").click()
    expect(queue_row(page, "beta.txt")).to_be_visible()
    queue_row(page, "beta.txt").get_by_test_id("queue-remove").click()
    page.get_by_test_id("dialog-confirm").click()
    expect(queue_row(page, "beta.txt")).to_have_count(0)
    expect(page.get_by_test_id("queue-summary")).to_have_text("2 items · 4,038 tokens")
    items = app.api("GET", "/api/models/Reader/queue", expect_status=200)[1]["items"]
    assert sorted(i["origin"] for i in items) == ["alpha.txt", "gamma.txt"]

    # The loss chart shows its markers only once there are points: nothing yet.
    expect(page.get_by_test_id("chart-empty")).to_have_text("No training yet")
    expect(page.get_by_test_id("loss-chart")).to_have_attribute("data-points", "0")


def test_start_with_an_empty_queue_says_what_to_do(page, app):
    app.create("Hungry", **TINY_SHAPE)
    open_training(page, app, "Hungry")
    start = page.get_by_test_id("training-start")
    expect(start).to_be_enabled()
    expect(page.get_by_test_id("training-continue")).to_be_disabled()
    expect(page.get_by_test_id("training-stop")).to_be_disabled()
    expect(page.get_by_test_id("run-hint")).to_contain_text("queue is empty")
    start.click()
    expect(page.get_by_test_id("run-error")).to_contain_text(
        "There is nothing to train on yet: the training-data queue is empty."
    )
    assert app.api("GET", "/api/jobs")[1]["jobs"] == []
    # ETA and durations read like "3 min 20 s".
    durations = page.evaluate(
        """async () => {
          const { formatDuration } = await import('/static/js/components/job-progress.js');
          return [45, 200, 7260, 180].map(formatDuration);
        }"""
    )
    assert durations == ["45 s", "3 min 20 s", "2 h 1 min", "3 min"]


FAKE_PICKER = fake_desktop_bridge(
    pick_files="async () => { window.__picked = (window.__picked || 0) + 1; return window.__paths; }")


def test_desktop_window_adds_files_by_path(context, app, tmp_path):
    """Inside the desktop window the native dialog gives paths, sent to /queue/files."""
    app.create("Desk", **TINY_SHAPE)
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\n\n" + sample_text(1500, seed=4))
    context.add_init_script(FAKE_PICKER + f"window.__paths = [{str(notes)!r}];")
    page = context.new_page()
    page.goto(app.url)
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    open_tab(page, "training")
    expect(page.locator('#panel-training [data-testid="summary-name"]')).to_have_text("Desk")
    page.get_by_test_id("queue-add").click()
    expect(queue_row(page, "notes.md")).to_be_visible()
    assert page.evaluate("window.__picked") == 1
    items = eventually(lambda: app.api("GET", "/api/models/Desk/queue")[1]["items"])
    assert [i["origin"] for i in items] == [str(notes.resolve())]
