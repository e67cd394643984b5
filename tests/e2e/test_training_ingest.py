"""The Training tab's data tools in a real browser: structured files and archives through the
file input with their token counts, the ingest job's report, search, import from another
model through the dropdown, clear with confirmation, then training on what was added."""

import json
import zipfile

import pytest
from e2e_support import (
    TINY_SETTINGS,
    TINY_SHAPE,
    eventually,
    open_training,
    queue_row,
    sample_text,
)
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_formats_import_search_clear_and_train(page, app, tmp_path):
    app.create("Donor", **TINY_SHAPE)
    donated = sample_text(6000, seed=21)
    app.upload("Donor", {"donated.txt": donated.encode()})
    app.create("Learner", **TINY_SHAPE)
    open_training(page, app, "Learner")

    records = tmp_path / "records.jsonl"
    records.write_text("\n".join(json.dumps({"id": i, "text": sample_text(500, seed=30 + i)}) for i in range(4)))
    table = tmp_path / "table.csv"
    table.write_text("id,content\n" + "\n".join(f'{i},"{sample_text(300, seed=40 + i)}"' for i in range(3)))
    bundle = tmp_path / "bundle.zip"
    with zipfile.ZipFile(bundle, "w") as zf:
        zf.writestr("inner/chapter.md", "# Chapter\n\n" + sample_text(2000, seed=50))
        zf.writestr("inner/broken.bin", b"\x00\x01\x02\x03")
    latin = tmp_path / "latin.txt"
    latin.write_bytes(("Café crème, déjà vu, à bientôt. " * 40).encode("cp1252"))
    page.get_by_test_id("queue-file-input").set_input_files([str(records), str(table), str(bundle), str(latin)])
    expect(page.get_by_test_id("upload-summary")).to_contain_text("Added 4 files")
    expect(page.get_by_test_id("upload-refused").locator('li[data-origin="broken.bin"]')).to_contain_text(
        "binary")
    jsonl_tokens = len("\n\n".join(sample_text(500, seed=30 + i) for i in range(4)).encode())
    expect(queue_row(page, "records.jsonl").get_by_test_id("queue-tokens")).to_have_text(f"{jsonl_tokens:,}")
    latin_tokens = len(("Café crème, déjà vu, à bientôt. " * 40).encode("utf-8"))
    expect(queue_row(page, "latin.txt").get_by_test_id("queue-tokens")).to_have_text(f"{latin_tokens:,}")
    expect(queue_row(page, "chapter.md")).to_be_visible()
    expect(page.get_by_test_id("ingest-progress")).to_be_hidden()
    expect(page.get_by_test_id("queue-stats")).to_contain_text("file: 4 items")

    queue_row(page, "latin.txt").get_by_test_id("queue-preview-button").click()
    expect(page.get_by_test_id("queue-preview-text")).to_contain_text("Café crème, déjà vu")

    # Import the other model's queue through the dropdown.
    page.get_by_test_id("import-source").select_option("Donor")
    page.get_by_test_id("import-button").click()
    expect(page.get_by_test_id("upload-summary")).to_contain_text("Imported 1 file (6,000 tokens).")
    expect(queue_row(page, "donated.txt").get_by_test_id("queue-imported")).to_have_text("from Donor")
    expect(page.get_by_test_id("queue-summary")).to_contain_text("5 items")
    assert app.api("GET", "/api/models/Donor/queue")[1]["total"] == 1  # copied, not moved

    # Search narrows the table; clearing the search brings everything back.
    page.get_by_test_id("queue-search").fill("chapter")
    expect(page.locator('#panel-training [data-testid="queue-table"] tbody tr')).to_have_count(1)
    expect(queue_row(page, "chapter.md")).to_be_visible()
    page.get_by_test_id("queue-search").fill("")
    expect(page.locator('#panel-training [data-testid="queue-table"] tbody tr')).to_have_count(5)

    # Then train on it: Start runs to the target and the items show the epoch that used them.
    panel = page.locator("#panel-training")
    for field, value in {**TINY_SETTINGS, "target_epochs": 1}.items():
        panel.get_by_label(field, exact=True).fill(str(value))
    page.get_by_test_id("training-start").click()
    eventually(lambda: app.api("GET", "/api/models/Learner")[1]["epochs_trained"] == 1, timeout=120)
    used = eventually(lambda: [i for i in app.api("GET", "/api/models/Learner/queue")[1]["items"]
                               if i["epochs_used"] != "[]"], timeout=30)
    assert len(used) >= 4

    # Clear asks first; Cancel keeps everything, Clear empties the queue.
    page.get_by_test_id("queue-clear").click()
    page.get_by_test_id("dialog-cancel").click()
    expect(page.get_by_test_id("queue-summary")).to_contain_text("5 items")
    page.get_by_test_id("queue-clear").click()
    page.get_by_test_id("dialog-confirm").click()
    expect(page.get_by_test_id("queue-summary")).to_have_text("0 items · 0 tokens")
    assert app.api("GET", "/api/models/Learner/queue")[1]["total"] == 0
    assert app.api("GET", "/api/models/Donor/queue")[1]["total"] == 1


def test_import_chosen_items_from_another_model(page, app):
    app.create("Donor", **TINY_SHAPE)
    app.upload("Donor", {"keep.txt": sample_text(1500, seed=61).encode(),
                         "take.txt": sample_text(1700, seed=62).encode(),
                         "also.txt": sample_text(1900, seed=63).encode()})
    app.create("Learner", **TINY_SHAPE)
    open_training(page, app, "Learner")
    page.get_by_test_id("import-source").select_option("Donor")

    # Ticking nothing imports nothing, and says so.
    page.get_by_test_id("import-choose").click()
    expect(page.get_by_test_id("import-choice")).to_have_count(3)
    page.get_by_test_id("dialog-confirm").click()
    expect(page.get_by_test_id("upload-result")).to_contain_text("nothing was imported")
    assert app.api("GET", "/api/models/Learner/queue")[1]["total"] == 0

    page.get_by_test_id("import-choose").click()
    page.locator('[data-testid="import-choice"][data-origin="take.txt"]').check()
    page.locator('[data-testid="import-choice"][data-origin="also.txt"]').check()
    page.get_by_test_id("dialog-confirm").click()
    expect(page.get_by_test_id("upload-summary")).to_contain_text("Imported 2 files")
    expect(queue_row(page, "take.txt").get_by_test_id("queue-imported")).to_have_text("from Donor")
    expect(queue_row(page, "also.txt")).to_be_visible()
    origins = sorted(i["origin"] for i in app.api("GET", "/api/models/Learner/queue")[1]["items"])
    assert [o.rsplit("/", 1)[-1] for o in origins] == ["also.txt", "take.txt"]
    assert app.api("GET", "/api/models/Donor/queue")[1]["total"] == 3  # copied, not moved
