"""Themes: switching is remembered; a theme file can be imported; the console API works."""

import pytest
from e2e_support import eventually
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

BG = "getComputedStyle(document.body).backgroundColor"


def wait_for_bg(page, color: str) -> None:
    page.wait_for_function(f"c => {BG} === c", arg=color)


def test_switch_to_dark_and_it_is_remembered(page, app):
    picker = page.get_by_test_id("theme-select")
    expect(picker).to_be_enabled()
    expect(picker).to_have_value("light")
    light_bg = page.evaluate(BG)
    assert light_bg == "rgb(246, 247, 249)"  # --bg of light.css

    picker.select_option("dark")
    wait_for_bg(page, "rgb(20, 23, 29)")  # --bg of dark.css
    expect(page.locator("#theme-css")).to_have_attribute("href", "/themes/dark.css")
    eventually(lambda: app.api("GET", "/api/themes")[1]["current"] == "dark")
    panel_color = page.evaluate(
        "getComputedStyle(document.querySelector('.app-header')).backgroundColor"
    )
    assert panel_color == "rgb(28, 32, 41)"  # --panel of dark.css

    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    wait_for_bg(page, "rgb(20, 23, 29)")
    expect(page.get_by_test_id("theme-select")).to_have_value("dark")

    # A fresh window (no local memory of the choice) gets it from the server too.
    fresh = page.context.browser.new_context()
    try:
        other = fresh.new_page()
        other.goto(app.url)
        expect(other.locator("body")).to_have_attribute("data-ready", "1")
        wait_for_bg(other, "rgb(20, 23, 29)")
    finally:
        fresh.close()


def test_import_theme_file_and_console_api(page, app, tmp_path):
    dark = (app.home / "themes" / "dark.css").read_text()
    ocean = tmp_path / "ocean.css"
    ocean.write_text(dark.replace("--bg: #14171d;", "--bg: #203040;"))

    expect(page.get_by_test_id("theme-select")).to_be_enabled()
    with page.expect_file_chooser() as chooser:
        page.get_by_test_id("import-theme").click()
    chooser.value.set_files(str(ocean))
    wait_for_bg(page, "rgb(32, 48, 64)")
    expect(page.get_by_test_id("theme-select")).to_have_value("ocean")
    assert (app.home / "themes" / "ocean.css").read_text() == ocean.read_text()
    eventually(lambda: app.api("GET", "/api/themes")[1]["current"] == "ocean")

    # The console API documented in bridge.js.
    listing = page.evaluate("() => window.cllmStudio.themes.list()")
    assert {t["name"] for t in listing["themes"]} == {"dark", "light", "ocean"}
    css = dark.replace("--bg: #14171d;", "--bg: #402030;")
    page.evaluate("css => window.cllmStudio.themes.add('plum', css)", css)
    page.evaluate("() => window.cllmStudio.themes.use('plum')")
    wait_for_bg(page, "rgb(64, 32, 48)")
    expect(page.get_by_test_id("theme-select")).to_have_value("plum")
    # A refusal (a built-in name) comes back as an error with the server's message.
    message = page.evaluate(
        "() => window.cllmStudio.themes.add('light', 'x')"
        ".then(() => 'saved', e => e.code + ': ' + e.message)"
    )
    assert message.startswith("invalid_theme_name: 'light' is a built-in theme")


FAKE_PYWEBVIEW = """
(() => {
  // What pywebview does in the window: an empty api first, then the methods and an event.
  window.pywebview = { api: {} };
  const calls = (window.__bridgeCalls = []);
  const listing = (current) => ({
    themes: [{ name: "dark", builtin: true }, { name: "light", builtin: true }], current,
  });
  setTimeout(() => {
    window.pywebview.api = {
      list_themes: async () => { calls.push("list_themes"); return listing("light"); },
      use_theme: async (name) => {
        calls.push("use_theme:" + name);
        return name === "nope"
          ? { error: { code: "theme_not_found", message: "there is no theme named 'nope'" } }
          : listing(name);
      },
      import_theme: async () => { calls.push("import_theme"); return null; },
      pick_files: async () => { calls.push("pick_files"); return ["/tmp/a.txt"]; },
    };
    window.dispatchEvent(new Event("pywebviewready"));
  }, 100);
})();
"""


def test_desktop_bridge_is_used_inside_the_window(context, app):
    context.add_init_script(FAKE_PYWEBVIEW)
    page = context.new_page()
    page.goto(app.url)
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    picker = page.get_by_test_id("theme-select")
    expect(picker).to_be_enabled()
    page.get_by_test_id("theme-select").select_option("dark")
    wait_for_bg(page, "rgb(20, 23, 29)")
    page.get_by_test_id("import-theme").click()  # the native dialog, cancelled: nothing changes
    page.wait_for_function("window.__bridgeCalls.includes('import_theme')")
    calls = page.evaluate("window.__bridgeCalls")
    assert calls[0] == "list_themes" and "use_theme:dark" in calls
    # The theme went through the bridge, not HTTP (the fake bridge does not tell the server).
    assert app.api("GET", "/api/themes")[1]["current"] == "light"
    expect(picker).to_have_value("dark")
    # A refusal from the desktop side arrives as a rejected promise with its code and message.
    refusal = page.evaluate(
        "() => window.cllmStudio.themes.use('nope').then(() => 'ok', e => e.code + ': ' + e.message)"
    )
    assert refusal == "theme_not_found: there is no theme named 'nope'"
    expect(picker).to_have_value("dark")


def test_console_api_refuses_hostile_css_and_a_bad_file_does_not_stop_the_app(context, app):
    (app.home / "themes" / "evil.css").write_text("body { background: url(http://evil.example/x.png) }")
    page = context.new_page()
    page.goto(app.url)
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    picker = page.get_by_test_id("theme-select")
    expect(picker).to_be_enabled()
    assert sorted(picker.locator("option").all_text_contents()) == ["Dark", "Light"]
    expect(page.get_by_test_id("toast").filter(has_text="evil.css was skipped")).to_contain_text("url(")
    message = page.evaluate(
        "() => window.cllmStudio.themes.add('mine', '@import url(http://evil.example/x.css);')"
        ".then(() => 'saved', e => e.code + ': ' + e.message)"
    )
    assert message.startswith("invalid_theme: the theme 'mine' was not saved: line 1: url(")
    assert not (app.home / "themes" / "mine.css").exists()


ACCENT = "getComputedStyle(document.querySelector('[data-testid=\"create-button\"]')).backgroundColor"


@pytest.mark.parametrize("css", ["--accent: #c00;", ":root { --accent: #c00; }"])
def test_a_theme_of_one_variable_changes_that_and_keeps_the_rest(page, app, css):
    """Issue 12, 4: a theme is overrides on its base. The console's one-line theme colours the
    accent and leaves every other variable the base's; it survives a reload."""
    expect(page.get_by_test_id("theme-select")).to_be_enabled()
    page.evaluate("css => window.cllmStudio.themes.add('mine', css)", css)
    page.evaluate("() => window.cllmStudio.themes.use('mine')")
    page.wait_for_function(f"() => {ACCENT} === 'rgb(204, 0, 0)'")
    assert page.evaluate(BG) == "rgb(246, 247, 249)"  # light's --bg, from the base
    assert page.evaluate("getComputedStyle(document.querySelector('.app-header')).backgroundColor") == "rgb(255, 255, 255)"
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    page.wait_for_function(f"() => {ACCENT} === 'rgb(204, 0, 0)'")
    wait_for_bg(page, "rgb(246, 247, 249)")
    expect(page.get_by_test_id("theme-select")).to_have_value("mine")

    # On the dark base: dark's background, the theme's accent.
    page.evaluate("() => window.cllmStudio.themes.add('night', '--theme-base: dark; --accent: #c00;')")
    page.evaluate("() => window.cllmStudio.themes.use('night')")
    wait_for_bg(page, "rgb(20, 23, 29)")
    assert page.evaluate(ACCENT) == "rgb(204, 0, 0)"


def test_unknown_variables_are_refused_by_name_and_a_theme_that_will_not_load_falls_back(page, app):
    expect(page.get_by_test_id("theme-select")).to_be_enabled()
    message = page.evaluate(
        "() => window.cllmStudio.themes.add('typo', '--acent: #c00; --bg: #000;')"
        ".then(() => 'saved', e => e.code + ': ' + e.message)"
    )
    assert message == ("invalid_theme: the theme 'typo' was not saved: it sets a variable the app does not "
                       "have: --acent (a theme sets the variables of themes/light.css)")
    assert not (app.home / "themes" / "typo.css").exists()

    # The window remembers a theme whose file is gone: it gets the light theme, never no styles.
    page.evaluate("() => localStorage.setItem('cllm-theme', 'gone')")
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    wait_for_bg(page, "rgb(246, 247, 249)")
    expect(page.get_by_test_id("theme-select")).to_have_value("light")
