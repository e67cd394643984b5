"""Themes: CSS files of custom properties in the data root's themes/ folder.

Light and dark ship inside the package and are copied in on first start (never
over a file the person has edited); any other `NAME.css` there is a theme too.
Every theme is checked (services/theme_css.py) on each way in: saved through the
API or the desktop bridge, and read from the folder, where a file that fails the
check is skipped (logged, and named in the listing) and never served.

A custom theme is a set of overrides on a built-in base: `--theme-base: dark;` names
it (light when it does not), and the page gets the base's variables followed by the
theme's, so a theme that sets one colour changes that colour and leaves the rest of
the look as it was. It may set only the app's own variables (those of the built-in
themes and the ones the stylesheets read); any other name is refused, by name.
"""

import functools
import logging
import re
from importlib import resources
from pathlib import Path

from cllm_app.errors import InvalidInput, NotFound
from cllm_app.fsutil import atomic_write_bytes
from cllm_app.services import settings, theme_css

log = logging.getLogger(__name__)

BUILTIN = ("light", "dark")
DEFAULT_THEME = "light"
BASE_PROPERTY = "--theme-base"  # which built-in theme a custom theme sits on
_VAR_USE = re.compile(r"var\(\s*(--[A-Za-z0-9_-]+)")
_THEME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
MAX_THEME_BYTES = 256 * 1024


def builtin_css(name: str) -> bytes:
    return resources.files("cllm_app").joinpath("static", "themes", f"{name}.css").read_bytes()


@functools.cache
def known_variables() -> frozenset[str]:
    """The variables a theme may set: the built-in themes' and those the stylesheets read."""
    names = set()
    for name in BUILTIN:
        names.update(theme_css.declared(builtin_css(name).decode("utf-8")))
    for sheet in resources.files("cllm_app").joinpath("static", "css").iterdir():
        if sheet.name.endswith(".css"):
            names.update(_VAR_USE.findall(sheet.read_text(encoding="utf-8")))
    return frozenset(n for n in names if not n.startswith("--_"))  # --_*: the stylesheets' own


def base_of(css: str) -> str:
    """The built-in theme a (checked) custom theme sits on."""
    return theme_css.declared(css).get(BASE_PROPERTY, DEFAULT_THEME)


def _unknown_or_invalid(css: str) -> str | None:
    values = theme_css.declared(css)
    unknown = sorted(n for n in values if n not in known_variables() and n != BASE_PROPERTY)
    if unknown:
        return (f"{'it sets variables' if len(unknown) > 1 else 'it sets a variable'} the app does not have: "
                f"{', '.join(unknown)} (a theme sets the variables of themes/light.css)")
    empty = sorted(n for n, v in values.items() if not v)
    if empty:
        return f"{', '.join(empty)} {'have' if len(empty) > 1 else 'has'} no value"
    base = values.get(BASE_PROPERTY)
    if base is not None and base not in BUILTIN:
        return f"{BASE_PROPERTY} must be {' or '.join(BUILTIN)}, not '{base}'"
    return None


def _problem(data: bytes) -> str | None:
    """Why these bytes are not a theme, or None when they are one."""
    if len(data) > MAX_THEME_BYTES:
        return f"a theme file can be at most {MAX_THEME_BYTES // 1024} KB"
    try:
        css = data.decode("utf-8")
    except UnicodeDecodeError:
        return "it is not UTF-8 text"
    if not css.strip():
        return "the theme's CSS is empty"
    try:
        theme_css.check(css)
    except InvalidInput as e:
        return e.message
    return _unknown_or_invalid(css)


class Themes:
    def __init__(self, themes_dir: Path):
        self.dir = themes_dir
        # path -> ((mtime_ns, size), problem or None): a file is checked once per version
        self._checked: dict[Path, tuple[tuple[int, int], str | None]] = {}

    def install_builtins(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        for name in BUILTIN:
            path = self.dir / f"{name}.css"
            if not path.exists():
                atomic_write_bytes(path, builtin_css(name))

    def _files(self) -> list[Path]:
        return sorted(p for p in self.dir.glob("*.css") if _THEME_NAME.match(p.stem) and p.stem != "current")

    def _problem_of(self, path: Path) -> str | None:
        try:
            st = path.stat()
        except OSError as e:
            return f"cannot read it: {e.strerror}"
        version = (st.st_mtime_ns, st.st_size)
        known = self._checked.get(path)
        if known and known[0] == version:
            return known[1]
        try:
            problem = _problem(path.read_bytes())
        except OSError as e:
            problem = f"cannot read it: {e.strerror}"
        if problem:
            log.warning("theme file %s skipped: %s", path, problem)
        self._checked[path] = (version, problem)
        return problem

    def skipped(self) -> list[dict]:
        """The files in themes/ that are not themes, and why (built-ins fall back to their own copy)."""
        return [{"name": p.stem, "file": str(p), "message": problem}
                for p in self._files() if (problem := self._problem_of(p))]

    def names(self) -> list[str]:
        good = {p.stem for p in self._files() if not self._problem_of(p)}
        return sorted(good | set(BUILTIN))

    def current(self) -> str:
        name = settings.get("theme", DEFAULT_THEME)
        return name if name in self.names() else DEFAULT_THEME

    def listing(self) -> dict:
        return {
            "themes": [{"name": n, "builtin": n in BUILTIN} for n in self.names()],
            "current": self.current(),
            "skipped": self.skipped(),
        }

    def use(self, name) -> dict:
        if not isinstance(name, str) or name not in self.names():
            raise NotFound(f"there is no theme named '{name}' in {self.dir}", code="theme_not_found")
        settings.put("theme", name)
        return self.listing()

    def css(self, name: str) -> bytes:
        """The stylesheet of theme `name`, checked as it is read (so what is served is what was
        checked); `current` is the theme in use, so the page's first paint already has the
        remembered look. A built-in whose file fails the check is served from the package."""
        if name == "current":
            name = self.current()
        path = self.dir / f"{name}.css"
        if _THEME_NAME.match(name) and name != "current":
            try:
                data = path.read_bytes()
            except OSError:
                data = None
            if data is not None and _problem(data) is None:
                css = theme_css.as_stylesheet(data.decode("utf-8"))
                if name in BUILTIN:
                    return css.encode("utf-8")
                base = base_of(css)
                return (self.css(base).decode("utf-8")
                        + f"\n/* {name}: overrides on {base} */\n" + css).encode("utf-8")
        if name in BUILTIN:
            return builtin_css(name)
        raise NotFound(f"there is no theme named '{name}'", code="theme_not_found")

    def add(self, name, css) -> dict:
        """Save a custom theme. Built-in names are kept so the app always has a working look."""
        if not isinstance(name, str) or not _THEME_NAME.match(name):
            raise InvalidInput(
                "a theme name is 1 to 40 letters, digits, '-' or '_', starting with a letter or digit",
                code="invalid_theme_name",
            )
        if name in BUILTIN:
            raise InvalidInput(f"'{name}' is a built-in theme; choose another name", code="invalid_theme_name")
        if name == "current":
            raise InvalidInput("'current' names the theme in use; choose another name", code="invalid_theme_name")
        if not isinstance(css, str):
            raise InvalidInput("the theme's CSS must be text", code="invalid_theme")
        data = css.encode("utf-8", errors="replace")
        problem = _problem(data)
        if problem:
            raise InvalidInput(f"the theme '{name}' was not saved: {problem}", code="invalid_theme")
        atomic_write_bytes(self.dir / f"{name}.css", data)
        return self.listing()

    def add_file(self, path) -> dict:
        path = Path(path)
        try:
            css = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{path.name} is not UTF-8 text", code="invalid_theme") from None
        except OSError as e:
            raise InvalidInput(f"cannot read {path}: {e.strerror}", code="invalid_theme") from None
        return self.add(path.stem, css)
