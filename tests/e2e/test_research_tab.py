"""The Research tab in a real browser against the real app: evaluate a pasted text, compare two
models, inspect a prompt's heatmap, see a duplicate's edge in the lineage, and keep a note."""

import math

import pytest
from e2e_support import (
    ARTIFACTS,
    TINY_SETTINGS,
    TINY_SHAPE,
    eventually,
    open_tab,
    panel_select,
    sample_text,
)
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def _ready(page):
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")


def _view(page, name):
    open_tab(page, "research")
    page.get_by_test_id(f"research-view-{name}").click()
    expect(page.get_by_test_id(f"research-{name}")).to_be_visible()


def _shot(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"research-{name}.png"), full_page=True)


def test_evaluate_pasted_text_and_a_refusal(page, app):
    app.create("Evaluated", **TINY_SHAPE)
    _ready(page)
    _view(page, "evaluate")
    expect(panel_select(page, "research")).to_have_value("Evaluated")
    page.get_by_test_id("eval-run").click()  # its own validation split: the queue is empty
    expect(page.get_by_test_id("eval-error")).to_contain_text("queue of 'Evaluated' is empty")
    text = "Grüße — the quick brown fox. " * 3
    page.get_by_test_id("eval-source-text").check()
    page.get_by_test_id("eval-text").fill(text)
    page.get_by_test_id("eval-run").click()
    table = page.get_by_test_id("eval-table")
    expect(table).to_have_attribute("data-tokens", str(len(text.encode())))
    expect(page.get_by_test_id("eval-error")).to_have_text("")
    _, direct = app.api("POST", "/api/models/Evaluated/evaluate", {"source": "text", "text": text}, expect_status=200)
    assert float(table.get_attribute("data-loss")) == pytest.approx(direct["loss"], rel=1e-6)
    expect(page.get_by_test_id("eval-bits_per_byte")).to_have_text(f"{direct['bits_per_byte']:.4f}")
    # the same text as a background job: progress, then the result from the job's detail
    page.get_by_test_id("eval-as-job").check()
    page.get_by_test_id("eval-run").click()
    expect(page.get_by_test_id("eval-result")).to_contain_text("job #", timeout=60_000)
    assert float(table.get_attribute("data-loss")) == pytest.approx(direct["loss"], rel=1e-6)
    _shot(page, "evaluate")


def _train(app, name):
    app.upload(name, {"a.txt": sample_text(3000, 1).encode(), "b.txt": sample_text(2500, 2).encode(),
                      "c.txt": sample_text(2000, 3).encode()})
    app.api("POST", f"/api/models/{name}/train", {**TINY_SETTINGS, "target_epochs": 1}, expect_status=202)

    def done():
        jobs = app.api("GET", f"/api/jobs?model_name={name}")[1]["jobs"]
        return jobs and jobs[0]["state"] in ("done", "failed") and jobs[0]
    job = eventually(done, timeout=120)
    assert job["state"] == "done", job


def test_compare_two_models(page, app):
    app.create("Parent", **TINY_SHAPE)
    _train(app, "Parent")
    app.api("POST", "/api/models/Parent/duplicate", {"model_name": "Child"}, expect_status=201)
    _ready(page)
    _view(page, "compare")
    picks = page.get_by_test_id("compare-pick")
    expect(picks).to_have_count(2)
    for box in picks.all():
        box.check()
    page.get_by_test_id("compare-run").click()
    chart = page.get_by_test_id("compare-chart")
    expect(chart).to_have_attribute("data-series", "4")  # train and validation of each
    expect(chart.locator('path[data-model="Child"][data-series="val"]')).to_have_count(1)
    rows = page.get_by_test_id("compare-table").locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="Child").locator('[data-col="lineage"]')).to_have_text("copy of Parent")
    best = app.api("GET", "/api/research/compare?model_name=Parent")[1]["models"][0]["best_val_loss"]
    assert best is not None
    expect(rows.filter(has_text="Parent").first.locator('[data-col="best val loss"]')).to_contain_text(f"{best:.3f}"[:4])
    # The y-axis says as many decimals as its step needs ("5", "5.5"), not "5.000" (issue 12, 8).
    labels = chart.locator('[data-tick="y"]').all_text_contents()
    values = [float(t) for t in labels]
    step = min(b - a for a, b in zip(values, values[1:], strict=False))
    needed = max(0, -math.floor(math.log10(step) + 1e-9))
    assert all(len(t.partition(".")[2]) == needed for t in labels), labels
    page.get_by_test_id("compare-x-tokens").click()
    page.get_by_test_id("compare-log").check()
    expect(chart).to_have_attribute("data-series", "4")
    _shot(page, "compare")


def test_inspect_a_prompt_shows_the_heatmap(page, app):
    app.create("Looked", n_layer=2, n_head=2, n_embd=16, block_size=32)
    _ready(page)
    _view(page, "inspect")
    prompt = "hello world"
    page.get_by_test_id("inspect-prompt").fill(prompt)
    page.get_by_test_id("inspect-top-k").fill("5")
    page.get_by_test_id("inspect-layer").select_option("1")
    page.get_by_test_id("inspect-run").click()
    heatmap = page.get_by_test_id("inspect-heatmap")
    expect(heatmap).to_have_attribute("data-size", str(len(prompt) + 1))
    expect(heatmap).to_have_attribute("data-layer", "1")
    expect(page.get_by_test_id("inspect-topk").locator("li")).to_have_count(5)
    expect(page.get_by_test_id("inspect-surprisal").locator(".research-tok")).to_have_count(len(prompt) + 1)
    page.get_by_test_id("inspect-head").select_option("1")  # a new head asks again
    expect(heatmap).to_have_attribute("data-head", "1")
    box = heatmap.bounding_box()
    heatmap.hover(position={"x": box["width"] - 4, "y": box["height"] - 4})
    expect(page.get_by_test_id("inspect-readout")).to_contain_text("attends to")
    page.get_by_test_id("inspect-prompt").fill("")
    page.get_by_test_id("inspect-run").click()
    expect(page.get_by_test_id("inspect-error")).to_contain_text("prompt")
    _shot(page, "inspect")


def test_lineage_shows_a_duplicates_edge(page, app):
    app.create("Origin", **TINY_SHAPE)
    app.api("POST", "/api/models/Origin/duplicate", {"model_name": "Copy"}, expect_status=201)
    app.api("PATCH", "/api/models/Copy", {"n_layer": 2}, expect_status=200)
    _ready(page)
    _view(page, "lineage")
    graph = page.get_by_test_id("lineage-graph")
    expect(graph).to_have_attribute("data-nodes", "2")
    edge = graph.locator('[data-testid="lineage-edge"]')
    expect(edge).to_have_count(1)
    expect(edge).to_have_attribute("data-kind", "duplicated")
    expect(edge).to_have_attribute("data-from", "Origin")
    expect(edge).to_have_attribute("data-to", "Copy")
    expect(graph.locator('[data-model="Copy"] [data-testid="lineage-grown"]')).to_have_text("+1 layers")
    graph.locator('[data-model="Copy"]').click()
    expect(panel_select(page, "research")).to_have_value("Copy")
    app.api("DELETE", "/api/models/Origin", {"confirm": True}, expect_status=200)
    page.get_by_test_id("lineage-refresh").click()
    expect(graph.locator('[data-model="Origin"]')).to_have_attribute("data-deleted", "true")
    page.get_by_test_id("lineage-trash").uncheck()
    expect(graph).to_have_attribute("data-nodes", "1")
    _shot(page, "lineage")


def test_create_search_and_attach_a_note(page, app):
    app.create("Noted", **TINY_SHAPE)
    _ready(page)
    _view(page, "notes")
    page.get_by_test_id("notes-new").click()
    page.get_by_test_id("dialog-input").fill("Learning rate log")
    page.get_by_test_id("dialog-confirm").click()
    editor = page.get_by_test_id("note-editor")
    editor.fill("# LR sweep\n\nA rate of **3e-4** was stable; <b>raw html</b> stays text.")
    page.get_by_test_id("note-save").click()
    rendered = page.get_by_test_id("note-rendered")
    expect(rendered.locator("strong")).to_have_text("3e-4")
    expect(rendered).to_contain_text("<b>raw html</b>")
    assert (app.home / "research" / "Learning rate log.md").read_text().startswith("# LR sweep")
    page.get_by_test_id("notes-search").fill("STABLE")
    expect(page.get_by_test_id("note-item")).to_have_count(1)
    expect(page.get_by_test_id("note-snippet")).to_contain_text("was stable")
    page.get_by_test_id("notes-search").fill("nothing like this")
    expect(page.get_by_test_id("note-item")).to_have_count(0)
    page.get_by_test_id("note-attach").click()
    expect(page.get_by_test_id("note-models")).to_have_text("Attached to Noted")
    expect(page.get_by_test_id("model-note")).to_have_text("LR sweep")
    assert app.api("GET", "/api/research/notes?model_name=Noted")[1]["notes"][0]["note_name"] == "Learning rate log.md"
    page.get_by_test_id("notes-import-file").set_input_files(
        files=[{"name": "paper.md", "mimeType": "text/markdown", "buffer": b"# Imported paper\n\ntext"}])
    expect(page.get_by_test_id("note-title")).to_have_text("Imported paper")
    page.get_by_test_id("notes-search").fill("")
    expect(page.get_by_test_id("note-item")).to_have_count(2)
    _shot(page, "notes")
