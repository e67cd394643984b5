"""The UI's stylesheets: index.html links every file in static/css and nothing else, base.css
first and then one stylesheet per tab in the tab bar's order, named like the tab's module in
static/js/tabs/."""

from html.parser import HTMLParser
from pathlib import Path

STATIC = Path(__file__).resolve().parent.parent / "cllm_app" / "static"
CSS = STATIC / "css"
PREFIX = "/static/css/"


class _Index(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sheets: list[str] = []
        self.tabs: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "link" and a.get("rel") == "stylesheet":
            self.sheets.append(a["href"])
        if a.get("role") == "tab" and a.get("data-tab"):
            self.tabs.append(a["data-tab"])


def _index() -> _Index:
    parsed = _Index()
    parsed.feed((STATIC / "index.html").read_text(encoding="utf-8"))
    return parsed


def _linked() -> list[str]:
    """The names of the stylesheets index.html links from static/css, in order (the theme,
    /themes/current.css, is served by the app and is not a file here)."""
    return [href[len(PREFIX):] for href in _index().sheets if href.startswith(PREFIX)]


def test_every_linked_stylesheet_exists():
    linked = _linked()
    assert linked, "index.html links no stylesheet from /static/css/"
    assert len(linked) == len(set(linked)), f"a stylesheet is linked twice: {linked}"
    missing = [name for name in linked if not (CSS / name).is_file()]
    assert not missing, f"index.html links stylesheets that are not in {CSS}: {missing}"


def test_every_stylesheet_is_linked():
    on_disk = sorted(p.name for p in CSS.glob("*.css"))
    unlinked = sorted(set(on_disk) - set(_linked()))
    assert not unlinked, f"stylesheets in {CSS} that index.html does not link: {unlinked}"


def test_each_tab_module_has_its_stylesheet():
    modules = sorted(p.stem for p in (STATIC / "js" / "tabs").glob("*.js"))
    assert {"models", "training", "crawler", "llm", "research"} <= set(modules)
    missing = [name for name in modules if not (CSS / f"{name}.css").is_file()]
    assert not missing, f"tab modules without a stylesheet of the same name in {CSS}: {missing}"


def test_base_first_then_the_tabs_in_tab_order():
    index = _index()
    assert index.sheets[0] == "/themes/current.css", "the theme's variables come before the layout"
    assert _linked() == ["base.css"] + [f"{tab}.css" for tab in index.tabs]
