"""The PyInstaller one-folder binary: it builds, opens the window offscreen, and serves.

The build takes about a minute and makes a bundle of about 600 MB in a
temporary folder, once per session.
"""

import subprocess
import sys
from pathlib import Path

import pytest
from test_window_smoke import (
    assert_window_summary,
    no_display_env,
    offscreen_env,
    self_check_summary,
    start_and_check_serving,
)

ROOT = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT = 600

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def binary(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pyinstaller")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "packaging" / "build.py"),
         "--dist", str(out / "dist"), "--work", str(out / "work")],
        cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-8000:]}"
    path = Path(proc.stdout.strip().splitlines()[-1])
    assert path == out / "dist" / "cllm-studio" / "cllm-studio"
    assert path.is_file()
    return path


def test_bundle_carries_the_ui_and_the_kernels(binary):
    internal = binary.parent / "_internal"
    static = internal / "cllm_app" / "static"
    assert (static / "index.html").is_file()
    assert {p.name for p in (static / "themes").glob("*.css")} >= {"light.css", "dark.css"}
    built = {p.name.split(".")[0] for p in (ROOT / "cllm_app" / "kernels").glob("*.so")}
    bundled = {p.name.split(".")[0] for p in (internal / "cllm_app" / "kernels").glob("*.so")}
    assert built and built <= bundled
    assert (internal / "PyQt6" / "Qt6" / "libexec" / "QtWebEngineProcess").is_file()


def test_binary_opens_the_window(binary, tmp_path):
    summary = self_check_summary([str(binary), "window", "--self-check"], offscreen_env(tmp_path))
    assert_window_summary(summary)


def test_binary_serves_the_ui(binary, tmp_path):
    start_and_check_serving(
        [str(binary), "serve", "--port", "0"],
        no_display_env(tmp_path),
        expect_no_display_notice=False,
    )


def test_binary_without_a_display_serves(binary, tmp_path):
    start_and_check_serving(
        [str(binary)], no_display_env(tmp_path), expect_no_display_notice=True
    )
