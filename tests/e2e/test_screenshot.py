"""A screenshot of the Models tab with three models, one selected.

Always saved to tests/artifacts/models-tab.png; with CLLM_SCREENSHOTS=1 also to
docs/screenshot-models.png (the picture in the README).
"""

import os
import shutil

import pytest
from e2e_support import ARTIFACTS, REPO
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_models_tab_screenshot(page, app):
    app.create("tiny-shakespeare", n_layer=4, n_head=4, n_embd=128, block_size=128)
    app.create("poetry-6L", n_layer=6, n_head=8, n_embd=256, block_size=256)
    app.create("notes-mini", n_layer=2, n_head=2, n_embd=64, block_size=64)
    app.api(
        "POST",
        "/api/models/tiny-shakespeare/duplicate",
        {"model_name": "tiny-shakespeare-v2"},
        expect_status=201,
    )
    app.api("PATCH", "/api/models/tiny-shakespeare-v2", {"n_layer": 6}, expect_status=200)
    app.api("PUT", "/api/settings", {"selected_model": "tiny-shakespeare-v2"}, expect_status=200)
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    expect(page.get_by_test_id("details-name")).to_have_text("tiny-shakespeare-v2")
    expect(page.get_by_test_id("create-name")).to_have_value("model_1")
    expect(page.get_by_test_id("lineage-events")).to_contain_text("Layers grown")
    page.evaluate("document.activeElement && document.activeElement.blur()")

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / "models-tab.png"
    page.screenshot(path=str(target))
    assert target.stat().st_size > 10_000
    if os.environ.get("CLLM_SCREENSHOTS") == "1":
        docs = REPO / "docs" / "screenshot-models.png"
        docs.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(target, docs)
