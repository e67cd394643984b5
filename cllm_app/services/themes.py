"""Themes: CSS files of custom properties in the data root's themes/ folder.

Light and dark ship inside the package and are copied in on first start (never
over a file the person has edited); any other `NAME.css` there is a theme too.
"""

import re
from importlib import resources
from pathlib import Path

from cllm_app.errors import InvalidInput, NotFound
from cllm_app.fsutil import atomic_write_bytes
from cllm_app.services import settings

BUILTIN = ("light", "dark")
DEFAULT_THEME = "light"
_THEME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
MAX_THEME_BYTES = 256 * 1024


def builtin_css(name: str) -> bytes:
    return resources.files("cllm_app").joinpath("static", "themes", f"{name}.css").read_bytes()


class Themes:
    def __init__(self, themes_dir: Path):
        self.dir = themes_dir

    def install_builtins(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        for name in BUILTIN:
            path = self.dir / f"{name}.css"
            if not path.exists():
                atomic_write_bytes(path, builtin_css(name))

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.dir.glob("*.css") if _THEME_NAME.match(p.stem))

    def current(self) -> str:
        name = settings.get("theme", DEFAULT_THEME)
        return name if name in self.names() else DEFAULT_THEME

    def listing(self) -> dict:
        return {
            "themes": [{"name": n, "builtin": n in BUILTIN} for n in self.names()],
            "current": self.current(),
        }

    def use(self, name) -> dict:
        if not isinstance(name, str) or name not in self.names():
            raise NotFound(f"there is no theme named '{name}' in {self.dir}", code="theme_not_found")
        settings.put("theme", name)
        return self.listing()

    def css_path(self, name: str) -> Path:
        """The file of theme `name`; `current` is the theme in use, so the page's first
        paint already has the remembered look."""
        if name == "current":
            name = self.current()
        if not _THEME_NAME.match(name) or not (self.dir / f"{name}.css").is_file():
            raise NotFound(f"there is no theme named '{name}'", code="theme_not_found")
        return self.dir / f"{name}.css"

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
        if not isinstance(css, str) or not css.strip():
            raise InvalidInput("the theme's CSS is empty", code="invalid_theme")
        data = css.encode("utf-8")
        if len(data) > MAX_THEME_BYTES:
            raise InvalidInput(f"a theme file can be at most {MAX_THEME_BYTES // 1024} KB", code="invalid_theme")
        if "</" in css:
            raise InvalidInput("a theme is CSS only; it cannot contain markup", code="invalid_theme")
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
