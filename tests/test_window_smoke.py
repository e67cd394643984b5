"""The desktop window for real (Qt offscreen, in a subprocess), the no-display
fallback to serving, and the JS bridge against a stand-in for the window.

Qt aborts the whole process when it cannot open a window, so anything that
starts Qt runs in a child process.
"""

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from cllm_app.desktop.bridge import Bridge

TABS = ["Models", "Training", "Crawler", "LLM", "Research"]
BRIDGE_METHODS = ["import_theme", "list_themes", "pick_files", "pick_folder", "save_file", "use_theme"]
URL_LINE = re.compile(r"CLLM Studio is serving at (http://127\.0\.0\.1:(\d+)/#token=(\S+))")
NO_DISPLAY_VARS = ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")


def offscreen_env(home: Path) -> dict:
    """Qt's offscreen platform needs no display server; as root, QtWebEngine needs no sandbox."""
    env = {k: v for k, v in os.environ.items() if k not in NO_DISPLAY_VARS}
    env.update(QT_QPA_PLATFORM="offscreen", QTWEBENGINE_DISABLE_SANDBOX="1", CLLM_HOME=str(home))
    return env


def no_display_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in NO_DISPLAY_VARS}
    env["CLLM_HOME"] = str(home)
    return env


def self_check_summary(cmd: list[str], env: dict, timeout: float = 120) -> dict:
    """Run a `--self-check` command; return the JSON of its one SELF-CHECK OK line."""
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("SELF-CHECK")]
    detail = (
        f"status {proc.returncode}\nstdout:\n{proc.stdout}\nstderr (tail):\n{proc.stderr[-4000:]}"
    )
    assert len(lines) == 1 and lines[0].startswith("SELF-CHECK OK "), detail
    assert proc.returncode == 0, detail
    return json.loads(lines[0][len("SELF-CHECK OK "):])


def assert_window_summary(summary: dict) -> None:
    assert summary["tabs"] == TABS
    assert summary["title"]
    assert summary["api"] is True
    assert summary["api_methods"] == BRIDGE_METHODS
    # A call from the page through the bridge to the services and back.
    assert summary["bridge"] == {"themes": ["dark", "light"], "current": "light"}


class LineReader:
    """Read a child's stdout line by line with a deadline (readline alone can block forever)."""

    def __init__(self, stream):
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream):
        for line in stream:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def until(self, pattern: re.Pattern, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                line = None
                left = 0
            if line is None or left <= 0:
                raise AssertionError(f"no line matching {pattern.pattern!r}; saw: {self.seen}")
            self.seen.append(line)
            match = pattern.search(line)
            if match:
                return match


def stop(proc: subprocess.Popen) -> None:
    """End a started app: politely, then for good."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


def start_and_check_serving(cmd: list[str], env: dict, expect_no_display_notice: bool) -> None:
    """Start a serving command, find its URL line, fetch the page and /api/models, stop it."""
    proc = subprocess.Popen(
        cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        reader = LineReader(proc.stdout)
        match = reader.until(URL_LINE, timeout=60)
        if expect_no_display_notice:
            before = reader.seen[:-1]
            assert any("no display" in ln.lower() for ln in before), reader.seen
        url, port, token = match.group(1), int(match.group(2)), match.group(3)
        origin = f"http://127.0.0.1:{port}"
        page = requests.get(url.split("#")[0], timeout=10)
        assert page.status_code == 200
        assert "text/html" in page.headers["Content-Type"]
        assert "<html" in page.text.lower()
        assert requests.get(origin + "/api/models", timeout=10).status_code == 403
        models = requests.get(origin + "/api/models", headers={"X-CLLM-Token": token}, timeout=10)
        assert models.status_code == 200
        assert models.json() == {"models": []}
    finally:
        stop(proc)


@pytest.mark.slow
def test_window_self_check_shows_the_ui_and_the_bridge(tmp_path):
    cmd = [sys.executable, "-m", "cllm_app", "window", "--self-check"]
    first = self_check_summary(cmd, offscreen_env(tmp_path))
    assert_window_summary(first)
    assert first["storage"] == {"previous": None}
    assert (tmp_path / "webview").is_dir()
    # Web storage lives in the data root and the origin is stable: it survives a restart.
    # This time a one-line theme goes through window.pywebview: its accent over the light base.
    second = self_check_summary(cmd, {**offscreen_env(tmp_path), "CLLM_SELF_CHECK_THEME": "1"})
    assert second["storage"] == {"previous": "1"}
    assert second["theme"] == {"current": "selfcheck", "accent": "rgb(204, 0, 0)", "bg": "rgb(246, 247, 249)"}


@pytest.mark.slow
def test_no_display_falls_back_to_serving(tmp_path):
    start_and_check_serving(
        [sys.executable, "-m", "cllm_app"], no_display_env(tmp_path), expect_no_display_notice=True
    )


# The bridge, against a stand-in for pywebview's window (no Qt needed).


class FakeWindow:
    def __init__(self, answer):
        self.answer = answer
        self.calls = []

    def create_file_dialog(self, dialog_type, directory="", allow_multiple=False,
                           save_filename="", file_types=()):
        self.calls.append({"dialog_type": dialog_type, "allow_multiple": allow_multiple,
                           "file_types": tuple(file_types), "directory": directory})
        return self.answer


@pytest.fixture
def window(monkeypatch):
    import webview

    fake = FakeWindow(None)
    monkeypatch.setattr(webview, "windows", [fake])
    return fake


def test_bridge_exposes_only_its_methods(studio):
    bridge = Bridge(studio)
    public = sorted(n for n in dir(bridge) if not n.startswith("_"))
    assert public == BRIDGE_METHODS


def test_bridge_themes(studio):
    bridge = Bridge(studio)
    assert bridge.list_themes() == studio.themes.listing()
    assert bridge.use_theme("dark")["current"] == "dark"
    err = bridge.use_theme("nope")
    assert err["error"]["code"] == "theme_not_found" and "nope" in err["error"]["message"]
    assert json.loads(json.dumps(err)) == err
    assert bridge.use_theme(None)["error"]["code"] == "theme_not_found"


def test_bridge_import_theme(studio, window, tmp_path):
    import webview

    bridge = Bridge(studio)
    assert bridge.import_theme() is None  # cancelled
    assert window.calls[-1]["dialog_type"] == webview.FileDialog.OPEN
    assert window.calls[-1]["allow_multiple"] is False
    assert window.calls[-1]["file_types"] == ("Theme files (*.css)",)

    css = tmp_path / "sunset.css"
    css.write_text(":root { --bg: #fed; }\n")
    window.answer = (str(css),)
    listing = bridge.import_theme()
    assert "sunset" in [t["name"] for t in listing["themes"]]

    bad = tmp_path / "bad.css"
    bad.write_bytes(b"\xff\xfe not utf-8")
    window.answer = (str(bad),)
    assert bridge.import_theme()["error"]["code"] == "invalid_theme"
    window.answer = (str(tmp_path / "light.css"),)
    (tmp_path / "light.css").write_text(":root {}")
    assert bridge.import_theme()["error"]["code"] == "invalid_theme_name"


def test_bridge_pick_files(studio, window):
    bridge = Bridge(studio)
    assert bridge.pick_files() == []  # cancelled
    assert window.calls[-1]["allow_multiple"] is True
    assert window.calls[-1]["file_types"] == ()

    window.answer = ("/data/a.txt", "/data/b.jsonl")
    assert bridge.pick_files(["txt", ".JSONL"]) == ["/data/a.txt", "/data/b.jsonl"]
    assert window.calls[-1]["file_types"] == ("Data files (*.txt;*.jsonl)", "All files (*.*)")

    from webview.util import parse_file_type

    for file_type in window.calls[-1]["file_types"]:
        parse_file_type(file_type)  # what pywebview checks before opening the dialog

    for bad in (["t*t"], "", [], [3], {"a": 1}):
        assert bridge.pick_files(bad)["error"]["code"] == "invalid_input"


def test_bridge_pick_folder(studio, window, tmp_path):
    import webview

    bridge = Bridge(studio)
    assert bridge.pick_folder() is None  # cancelled
    assert window.calls[-1]["dialog_type"] == webview.FileDialog.FOLDER
    assert window.calls[-1]["directory"] == ""

    window.answer = (str(tmp_path),)
    assert bridge.pick_folder(str(tmp_path)) == str(tmp_path)
    assert window.calls[-1]["directory"] == str(tmp_path)
    bridge.pick_folder(str(tmp_path / "gone"))  # a start that is not a folder: the dialog's own
    assert window.calls[-1]["directory"] == ""


def test_bridge_without_a_window(studio, monkeypatch):
    import webview

    monkeypatch.setattr(webview, "windows", [])
    bridge = Bridge(studio)
    assert bridge.pick_files()["error"]["code"] == "no_window"
    assert bridge.import_theme()["error"]["code"] == "no_window"
    assert bridge.pick_folder()["error"]["code"] == "no_window"


# The window's server: the policy pywebview needs, and a stable origin.


def test_only_the_window_server_allows_eval(studio):
    """pywebview's bridge needs eval; the browser-facing server never allows it."""
    from cllm_app.api import create_app

    plain = create_app(studio, "s3cret", allowed_hosts={"localhost"})
    window_app = create_app(studio, "s3cret", allowed_hosts={"localhost"}, for_window=True)
    before = plain.test_client().get("/api/models", headers={"X-CLLM-Token": "s3cret"})
    after = window_app.test_client().get("/api/models", headers={"X-CLLM-Token": "s3cret"})
    assert after.status_code == before.status_code == 200
    assert "unsafe-eval" not in before.headers["Content-Security-Policy"]
    assert "script-src 'self' 'unsafe-eval'" in after.headers["Content-Security-Policy"]
    assert after.headers["Content-Security-Policy"].replace(" 'unsafe-eval'", "") == before.headers[
        "Content-Security-Policy"
    ]


def test_window_server_port_is_stable_per_data_root(studio, tmp_path):
    from cllm_app.desktop import window

    port = window.preferred_port(studio.root.path)
    assert window.PORT_RANGE[0] <= port < window.PORT_RANGE[1]
    assert window.preferred_port(studio.root.path) == port
    first = window._server(studio)
    try:
        assert first.port == port
        second = window._server(studio)  # the port is taken: any free one will do
        try:
            assert second.port != port
        finally:
            second.httpd.server_close()
    finally:
        first.httpd.server_close()
