"""What the page may ask the desktop for: `window.pywebview.api` in the app window.

The bridge calls the services directly (no Flask, no HTTP). Every method
returns plain JSON-able values; a refusal comes back as
`{"error": {"code", "message"}}` instead of an exception, because exceptions
do not cross into JavaScript in a useful form.

pywebview exposes every public attribute of this object to the page, walking
into attributes recursively, so everything that is not an API method starts
with `_`.
"""

import base64
import binascii
import functools
import logging
import os
import re
from pathlib import Path

from cllm_app.errors import CllmError
from cllm_app.fsutil import atomic_write_bytes

log = logging.getLogger(__name__)

THEME_FILE_TYPES = ("Theme files (*.css)",)
ALL_FILES = "All files (*.*)"
_EXTENSION = re.compile(r"^\.?(\w{1,16})$")


def _error(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def _refusals(method):
    """Turn a refusal or an unexpected failure into an error object for the page."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except CllmError as e:
            return _error(e.code, e.message)
        except OSError as e:
            return _error("os_error", f"{e.strerror or e} ({e.filename or 'data root'})")
        except Exception as e:  # noqa: BLE001 - nothing may escape into the page's promise
            log.exception("bridge call %s failed", method.__name__)
            return _error("internal_error", f"{type(e).__name__}: {e}")

    return wrapper


def _file_types(kinds) -> tuple[str, ...]:
    """`kinds` is None or a list of extensions ("txt", ".jsonl"); "All files" is always offered."""
    if kinds is None:
        return ()
    if isinstance(kinds, str):
        kinds = [kinds]
    if not isinstance(kinds, (list, tuple)) or not kinds:
        raise ValueError("kinds must be a list of file extensions such as ['txt', 'jsonl']")
    exts = []
    for kind in kinds:
        match = _EXTENSION.match(kind) if isinstance(kind, str) else None
        if not match:
            raise ValueError(f"'{kind}' is not a file extension such as 'txt' or '.jsonl'")
        if match.group(1).lower() not in exts:
            exts.append(match.group(1).lower())
    pattern = ";".join(f"*.{e}" for e in exts)
    return (f"Data files ({pattern})", ALL_FILES)


class Bridge:
    def __init__(self, studio):
        self._studio = studio

    # Themes

    @_refusals
    def list_themes(self):
        return self._studio.themes.listing()

    @_refusals
    def use_theme(self, name):
        return self._studio.themes.use(name)

    @_refusals
    def import_theme(self):
        """Ask for a .css file and add it as a theme; None when the person cancels."""
        paths = self._open_dialog(allow_multiple=False, file_types=THEME_FILE_TYPES)
        if not paths:
            return None
        return self._studio.themes.add_file(paths[0])

    # Files

    @_refusals
    def pick_files(self, kinds=None):
        """Ask for one or more files; their paths, or [] when the person cancels."""
        try:
            file_types = _file_types(kinds)
        except ValueError as e:
            return _error("invalid_input", str(e))
        return self._open_dialog(allow_multiple=True, file_types=file_types)

    @_refusals
    def pick_folder(self, start=None):
        """Ask for a folder (where an export goes); its path, or None when the person cancels.
        `start`: a folder the dialog opens in, when it exists."""
        import webview

        window = self._window()
        directory = start if isinstance(start, str) and os.path.isdir(start) else ""
        result = window.create_file_dialog(webview.FileDialog.FOLDER, directory=directory)
        if isinstance(result, (list, tuple)):
            result = result[0] if result else None
        return str(result) if result else None

    @_refusals
    def save_file(self, filename, data):
        """Ask where to save a file the page made (a chart as PNG, a loss history as CSV) and
        write it there; its path, or None when the person cancels. `data`: its bytes in base64.
        (The window allows no downloads: an <a download> there does nothing.)"""
        import webview

        if not isinstance(filename, str) or not isinstance(data, str):
            return _error("invalid_input", "save_file takes a file name and the file's bytes in base64")
        try:
            content = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return _error("invalid_input", "the file's bytes must be base64")
        # A name, not a path: where it goes is the person's choice in the dialog.
        name = os.path.basename(filename.replace("\\", "/")).strip() or "download"
        ext = os.path.splitext(name)[1].lstrip(".")
        file_types = (f"{ext.upper()} files (*.{ext.lower()})", ALL_FILES) if _EXTENSION.match(ext) else ()
        start = next((d for d in (Path.home() / "Downloads", Path.home()) if d.is_dir()), None)
        result = self._window().create_file_dialog(
            webview.FileDialog.SAVE, directory=str(start or ""), save_filename=name, file_types=file_types
        )
        if isinstance(result, (list, tuple)):
            result = result[0] if result else None
        if not result:
            return None
        atomic_write_bytes(Path(result), content)
        return str(result)

    def _window(self):
        import webview

        if not webview.windows:
            raise CllmError("there is no app window to open a file dialog from", code="no_window")
        return webview.windows[0]

    def _open_dialog(self, allow_multiple: bool, file_types=()) -> list[str]:
        import webview

        result = self._window().create_file_dialog(
            webview.FileDialog.OPEN, allow_multiple=allow_multiple, file_types=file_types
        )
        if not result:
            return []
        if isinstance(result, str):
            result = [result]
        return [str(p) for p in result if p]
