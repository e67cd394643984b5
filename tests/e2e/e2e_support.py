"""Helpers the browser tests share (the fixtures are in conftest.py)."""

from __future__ import annotations

import random
import time
from pathlib import Path

from playwright.sync_api import Page, expect

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"


# ---- helpers the tests share ------------------------------------------------------------------


def eventually(check, timeout: float = 10.0, interval: float = 0.1):
    """Wait until check() is truthy (for effects the page sends to the server on its own time)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout}s: {check}")
        time.sleep(interval)


def open_tab(page: Page, name: str) -> None:
    page.click(f'[role="tab"][data-tab="{name}"]')
    expect(page.locator(f"#panel-{name}")).to_be_visible()


def panel_select(page: Page, name: str):
    return page.locator(f'#panel-{name} [data-testid="model-select"]')


def create_in_ui(page: Page, name: str, **shape) -> None:
    """Create a model through the Models tab form and wait until it is selected."""
    open_tab(page, "models")
    field = page.get_by_test_id("create-name")
    expect(field).not_to_have_value("")
    field.fill(name)
    for key, value in shape.items():
        page.get_by_test_id(f"create-{key}").fill(str(value))
    button = page.get_by_test_id("create-button")
    expect(button).to_be_enabled()
    button.click()
    expect(page.get_by_test_id("details-name")).to_have_text(name)
    expect(page.locator(f'#panel-models tr[data-model="{name}"]')).to_have_attribute(
        "aria-selected", "true"
    )


WORDS = (
    "the a of and to in is was that for on with as by at from his her they we it this which "
    "river morning light garden window letter voice winter city road house friend evening story "
    "quiet bright slow early old small green warm distant open heavy gentle sudden "
    "walked said found kept turned wrote carried waited watched remembered opened followed"
).split()


def sample_text(n_bytes: int, seed: int = 0) -> str:
    """About n_bytes of plain English-looking sentences (the same for the same seed)."""
    rng = random.Random(seed)
    sentences = []
    size = 0
    while size < n_bytes:
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 14))]
        sentence = " ".join(words).capitalize() + rng.choice([".", ".", ".", "?", "!"])
        sentences.append(sentence)
        size += len(sentence) + 1
    return " ".join(sentences)[:n_bytes]


TINY_SHAPE = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16}
TINY_SETTINGS = {
    "batch_size": 2,
    "sequence_length": 16,
    "eval_interval": 5,
    "checkpoint_interval": 5,
}


def queue_row(page, origin: str):
    """The Training tab's queue-table row of the item that came from `origin`."""
    return page.locator(f'#panel-training [data-testid="queue-table"] tr[data-origin="{origin}"]')


def open_training(page, app, name: str) -> None:
    """Select `name` (through the API, as a remembered selection) and show its Training tab."""
    app.api("PUT", "/api/settings", {"selected_model": name}, expect_status=200)
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    open_tab(page, "training")
    expect(page.locator('#panel-training [data-testid="summary-name"]')).to_have_text(name)


_LIGHT_ONLY = 'async () => ({ themes: [{ name: "light", builtin: true }], current: "light" })'
_BRIDGE_DEFAULTS = {"list_themes": _LIGHT_ONLY, "use_theme": _LIGHT_ONLY, "import_theme": "async () => null",
                    "pick_files": "async () => []", "pick_folder": "async () => null"}


def fake_desktop_bridge(**methods: str) -> str:
    """An init script that plays the desktop window's bridge in a browser, as pywebview does it:
    an empty `window.pywebview.api` first, then the methods and the `pywebviewready` event. Each
    keyword is a method's JavaScript source, in place of a default that does nothing."""
    api = ",\n      ".join(f"{name}: {source}" for name, source in {**_BRIDGE_DEFAULTS, **methods}.items())
    return f"""
(() => {{
  window.pywebview = {{ api: {{}} }};
  setTimeout(() => {{
    window.pywebview.api = {{
      {api},
    }};
    window.dispatchEvent(new Event("pywebviewready"));
  }}, 50);
}})();
"""
