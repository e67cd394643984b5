"""The model selection is one shared choice across the five tabs, kept across reloads."""

import pytest
from e2e_support import eventually, open_tab, panel_select
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

TABS = ("training", "crawler", "llm", "research")


def test_selection_is_shared_and_kept(page, app):
    for name in ("alpha", "beta", "gamma"):
        app.create(name)
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")

    page.click('#panel-models tr[data-model="beta"]')
    expect(page.get_by_test_id("details-name")).to_have_text("beta")
    for tab in TABS:
        open_tab(page, tab)
        expect(panel_select(page, tab)).to_have_value("beta")
        expect(page.locator(f'#panel-{tab} [data-testid="summary-name"]')).to_have_text("beta")

    open_tab(page, "llm")
    panel_select(page, "llm").select_option("gamma")
    expect(page.locator('#panel-llm [data-testid="summary-name"]')).to_have_text("gamma")
    open_tab(page, "models")
    expect(panel_select(page, "models")).to_have_value("gamma")
    expect(page.locator('#panel-models tr[data-model="gamma"]')).to_have_attribute(
        "aria-selected", "true"
    )
    expect(page.locator('#panel-models tr[data-model="beta"]')).to_have_attribute(
        "aria-selected", "false"
    )
    expect(page.get_by_test_id("details-name")).to_have_text("gamma")
    eventually(lambda: app.api("GET", "/api/settings")[1]["selected_model"] == "gamma")

    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    expect(page.locator("#panel-models")).to_be_visible()
    expect(page.get_by_test_id("details-name")).to_have_text("gamma")
    for tab in ("models", *TABS):
        expect(panel_select(page, tab)).to_have_value("gamma")


def test_tabs_keyboard_and_remembered(page):
    models_tab = page.locator('[role="tab"][data-tab="models"]')
    models_tab.focus()
    page.keyboard.press("ArrowRight")
    expect(page.locator('[role="tab"][data-tab="training"]')).to_have_attribute(
        "aria-selected", "true"
    )
    expect(page.locator("#panel-training")).to_be_visible()
    expect(page.locator("#panel-models")).to_be_hidden()
    page.keyboard.press("End")
    expect(page.locator('[role="tab"][data-tab="research"]')).to_be_focused()
    page.keyboard.press("ArrowRight")  # wraps around
    expect(page.locator('[role="tab"][data-tab="models"]')).to_have_attribute(
        "aria-selected", "true"
    )
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#panel-research")).to_be_visible()
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    expect(page.locator("#panel-research")).to_be_visible()
    expect(page.locator('[role="tab"][data-tab="research"]')).to_have_attribute(
        "aria-selected", "true"
    )
