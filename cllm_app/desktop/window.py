"""The desktop window: pywebview (Qt backend on Linux) around the same UI the browser gets.

The window shows the local server's URL (the launch secret rides in its
fragment) and exposes `Bridge` to the page as `window.pywebview.api`. The
server lives exactly as long as the window.

`--self-check` opens the real window, waits until the UI says it is ready
(`document.body.dataset.ready === "1"`, set after the first models list
renders), prints one line `SELF-CHECK OK {json}` with what the window shows,
and closes it. Tests and the packaged binary use it to prove the whole stack
(Qt, QtWebEngine, the server, the UI, the bridge) starts.
"""

import json
import logging
import os
import socket
import sys
import threading
import time
import zlib

from cllm_app.desktop.bridge import Bridge
from cllm_app.server import HOST, Server

TITLE = "CLLM Studio"
SIZE = (1280, 820)
MIN_SIZE = (900, 600)
SELF_CHECK_TIMEOUT = 60.0
# Below Linux's ephemeral range (32768-60999), so the OS rarely hands it to someone else.
PORT_RANGE = (20000, 30000)
# How long to keep waiting for `window.pywebview.api` once the UI itself is ready.
API_GRACE = 10.0

_READY_JS = (
    "document.readyState === 'complete' && !!document.body && document.body.dataset.ready === '1'"
)
_API_JS = "!!(window.pywebview && window.pywebview.api && window.pywebview.api.list_themes)"
_STATE_JS = (
    "({readyState: document.readyState,"
    " ready: document.body ? (document.body.dataset.ready || null) : null,"
    " path: location.pathname})"
)
_SUMMARY_JS = """({
  tabs: [...document.querySelectorAll('[role=tab]')].map(t => t.textContent.trim()),
  title: document.title,
  api: !!(window.pywebview && window.pywebview.api),
  api_methods: (window.pywebview && window.pywebview.api)
    ? Object.keys(window.pywebview.api)
        .filter(k => typeof window.pywebview.api[k] === 'function').sort()
    : [],
  platform: (window.pywebview && window.pywebview.platform) || null,
  path: location.pathname,
  storage: (() => {
    try {
      const previous = localStorage.getItem('cllm-self-check');
      localStorage.setItem('cllm-self-check', String(Number(previous || 0) + 1));
      return {previous};
    } catch (e) {
      return {error: String(e)};
    }
  })()
})"""


def preferred_port(root) -> int:
    """A port that stays the same for one data root, so the page's origin
    (http://127.0.0.1:PORT) stays the same and its localStorage survives a restart."""
    span = PORT_RANGE[1] - PORT_RANGE[0]
    return PORT_RANGE[0] + zlib.crc32(str(root).encode("utf-8")) % span


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the HTTP server will: a port left in TIME_WAIT by the last run counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _server(studio) -> Server:
    """The server on this data root's usual port, or on any free port when that one is taken
    (another copy of the app, or anything else)."""
    port = preferred_port(studio.root.path)
    if _port_free(port):
        try:
            return Server(studio, port=port, for_window=True)
        except (OSError, SystemExit):  # lost a race for it; werkzeug exits when a port is taken
            pass
    return Server(studio, for_window=True)


def _start_options(studio) -> dict:
    storage = studio.root.path / "webview"
    storage.mkdir(parents=True, exist_ok=True)
    options = {"private_mode": False, "storage_path": str(storage)}
    if sys.platform.startswith("linux"):
        options["gui"] = "qt"
    return options


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _self_check(window, outcome: dict, timeout: float = SELF_CHECK_TIMEOUT) -> None:
    """Runs in pywebview's background thread; always closes the window at the end."""
    deadline = time.monotonic() + timeout
    last = "the page never loaded"
    try:
        if not window.events.loaded.wait(timeout):
            raise TimeoutError(f"the page did not load within {timeout:.0f} s")
        ready = False
        while time.monotonic() < deadline:
            try:
                if window.evaluate_js(_READY_JS) is True:
                    ready = True
                    break
                state = json.dumps(window.evaluate_js(_STATE_JS))
                last = f"the UI never set document.body.dataset.ready = '1' (page state: {state})"
            except Exception as e:  # noqa: BLE001 - the page may be between loads; keep polling
                last = f"evaluating JavaScript failed: {type(e).__name__}: {e}"
            time.sleep(0.25)
        if not ready:
            raise TimeoutError(f"{last}, after {timeout:.0f} s")
        api_deadline = min(deadline, time.monotonic() + API_GRACE)
        while time.monotonic() < api_deadline and window.evaluate_js(_API_JS) is not True:
            time.sleep(0.25)
        summary = window.evaluate_js(_SUMMARY_JS)
        if not isinstance(summary, dict):
            raise RuntimeError(f"the summary script returned {summary!r}")
        if summary.get("api"):
            left = max(1.0, min(API_GRACE, deadline - time.monotonic()))
            summary["bridge"] = _bridge_round_trip(window, left)
            if os.environ.get(THEME_CHECK_ENV) == "1":
                summary["theme"] = _theme_round_trip(window, max(1.0, deadline - time.monotonic()))
        _say("SELF-CHECK OK " + json.dumps(summary, ensure_ascii=False, separators=(",", ":")))
        outcome["code"] = 0
    except Exception as e:  # noqa: BLE001 - report every failure as one line
        reason = " ".join(str(e).split()) or type(e).__name__
        _say(f"SELF-CHECK FAILED {reason}")
        outcome["code"] = 1
    finally:
        try:
            window.destroy()
        except Exception as e:  # noqa: BLE001
            print(f"self-check: could not close the window: {e}", file=sys.stderr, flush=True)


def _bridge_round_trip(window, timeout: float):
    """Call one bridge method from the page and return what came back (or why nothing did)."""
    done = threading.Event()
    box = {}

    def landed(result):
        box["result"] = result
        done.set()

    window.evaluate_js("window.pywebview.api.list_themes()", callback=landed)
    if not done.wait(timeout):
        return {"error": f"list_themes() did not answer within {timeout:.0f} s"}
    result = box["result"]
    if isinstance(result, dict) and "themes" in result:
        names = [t.get("name") for t in result["themes"]]
        return {"themes": names, "current": result.get("current")}
    return {"error": f"list_themes() answered {result!r}"}


# The tests' check of the theme bridge in the real window: it saves a theme, so only on request.
THEME_CHECK_ENV = "CLLM_SELF_CHECK_THEME"
_THEME_JS = """window.cllmStudio.themes.add('selfcheck', '--accent: #c00;')
  .then(() => window.cllmStudio.themes.use('selfcheck'))
  .then((listing) => listing.current, (e) => 'refused: ' + e.message)"""
_LOOK_JS = """({
  accent: getComputedStyle(document.querySelector('[data-testid="create-button"]')).backgroundColor,
  bg: getComputedStyle(document.body).backgroundColor,
})"""


def _theme_round_trip(window, timeout: float) -> dict:
    """Save a one-variable theme and use it through `window.pywebview` (the console's way), then
    report the look: the theme's accent over the light base, never an unstyled page."""
    done = threading.Event()
    box = {}

    def landed(result):
        box["current"] = result
        done.set()

    window.evaluate_js(_THEME_JS, callback=landed)
    if not done.wait(timeout):
        return {"error": f"the theme was not in use within {timeout:.0f} s"}
    deadline = time.monotonic() + timeout
    look = window.evaluate_js(_LOOK_JS)
    while time.monotonic() < deadline and look.get("accent") != "rgb(204, 0, 0)":
        time.sleep(0.1)  # the stylesheet is applying
        look = window.evaluate_js(_LOOK_JS)
    return {"current": box["current"], **look}


def _toolkit_problem(gui) -> str | None:
    """Why the Qt toolkit cannot load (e.g. a missing system library), or None.

    pywebview hides the cause behind "You must have either QT or GTK"; importing
    the modules it needs first keeps the real ImportError message."""
    if gui != "qt":
        return None
    try:
        import PyQt6.QtWebChannel  # noqa: F401
        import PyQt6.QtWebEngineWidgets  # noqa: F401
    except ImportError as e:
        return f"Qt cannot load: {e}"
    return None


def run_window(studio, self_check: bool = False) -> int:
    """Open the app window on a fresh local server; return the exit status when it closes.

    0 when the window closes normally (or the self-check passed), 1 when the
    self-check failed, 2 when the window cannot start at all."""
    import webview
    from webview.errors import WebViewException

    options = _start_options(studio)
    problem = _toolkit_problem(options.get("gui"))
    if problem is None:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = _server(studio)
        server.start()
        outcome = {"code": 1 if self_check else 0}
        try:
            window = webview.create_window(
                TITLE,
                server.url,
                js_api=Bridge(studio),
                width=SIZE[0],
                height=SIZE[1],
                min_size=MIN_SIZE,
                text_select=True,
            )
            if self_check:
                webview.start(_self_check, (window, outcome), **options)
            else:
                webview.start(**options)
            return outcome["code"]
        except WebViewException as e:
            problem = str(e)
        finally:
            server.stop()
    reason = " ".join(problem.split())
    if self_check:
        _say(f"SELF-CHECK FAILED the window cannot start: {reason}")
    print(
        f"error: the window cannot start: {reason}\n"
        "`cllm serve` serves the same UI to a browser on this computer instead.",
        file=sys.stderr,
        flush=True,
    )
    return 2
