"""Build the one-folder desktop binary: `python packaging/build.py [--dist DIR] [--work DIR]`.

PyInstaller (--onedir) freezes packaging/cllm_studio.py, the `cllm` command,
into DIST/cllm-studio/ with:
  - the UI and built-in themes (cllm_app/static) as data, at cllm_app/static
    inside the bundle, where both `importlib.resources.files("cllm_app")` and
    the Flask routes look for them;
  - every cllm_app module, including the compiled kernels (cllm_app/kernels/*.so),
    which nothing imports statically;
  - what `cllm bundle` copies into a training bundle: cllm_app/bundle_kit and the source
    of the modules that train (services/bundles.code_for_bundle);
  - pywebview's Qt backend (imported by name at runtime) and the PyQt6
    QtWebEngine parts it needs (QtWebEngineProcess, resources, locales).

The binary is DIST/cllm-studio/cllm-studio; run it with no arguments for the
window, or `serve`, `models ...` like `cllm`. Build the kernels first
(`pip install -e . --no-build-isolation`) so their .so files exist.
"""

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENTRY = ROOT / "packaging" / "cllm_studio.py"
NAME = "cllm-studio"

HIDDEN_IMPORTS = [
    "webview.platforms.qt",
    "qtpy",
    "PyQt6.QtCore",
    "PyQt6.QtGui",
    "PyQt6.QtWidgets",
    "PyQt6.QtNetwork",
    "PyQt6.QtWebChannel",
    "PyQt6.QtWebEngineCore",
    "PyQt6.QtWebEngineWidgets",
]
# Packages that read data files of their own at run time (trafilatura's settings and language
# data, jusText's stop lists, courlan's and htmldate's tables, charset-normalizer's models).
COLLECT_DATA = ["trafilatura", "justext", "courlan", "htmldate", "charset_normalizer", "tld"]
# Present in a development venv, never needed by the app.
EXCLUDES = ["tkinter", "pytest", "_pytest", "playwright", "PyQt5", "PySide2", "PySide6", "torch"]


def pyinstaller_args(dist: Path, work: Path) -> list[str]:
    static = ROOT / "cllm_app" / "static"
    args = [
        "--noconfirm",
        "--onedir",
        "--console",
        "--name", NAME,
        "--distpath", str(dist),
        "--workpath", str(work),
        "--specpath", str(work),
        "--paths", str(ROOT),
        "--log-level", "WARN",
        "--add-data", f"{static}{os.pathsep}cllm_app/static",
        "--collect-submodules", "cllm_app",
    ]
    # `cllm bundle` copies the source of our modules that train into each bundle; the binary
    # holds them compiled, so their .py files come along as data too, with the bundle's kit.
    from cllm_app.services.bundles import KIT, PACKAGE, code_for_bundle

    args += ["--add-data", f"{KIT}{os.pathsep}cllm_app/bundle_kit"]
    for rel in code_for_bundle():
        args += ["--add-data", f"{PACKAGE / rel}{os.pathsep}{Path('cllm_app') / rel.parent}"]
    for module in HIDDEN_IMPORTS:
        args += ["--hidden-import", module]
    for package in COLLECT_DATA:
        if importlib.util.find_spec(package) is not None:
            args += ["--collect-data", package]
    for module in EXCLUDES:
        args += ["--exclude-module", module]
    return args + [str(ENTRY)]


def check_sources() -> None:
    missing = [p for p in (ROOT / "cllm_app" / "static" / "index.html", ENTRY) if not p.is_file()]
    if missing:
        sys.exit(f"build: missing {', '.join(map(str, missing))}")
    pyx = sorted((ROOT / "cllm_app" / "kernels").glob("*.pyx"))
    unbuilt = [
        p.name for p in pyx
        if not any(p.parent.glob(f"{p.stem}.*.so")) and not any(p.parent.glob(f"{p.stem}.*.pyd"))
    ]
    if unbuilt:
        sys.exit(
            f"build: kernels not compiled ({', '.join(unbuilt)}); "
            "run `pip install -e . --no-build-isolation` first"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=ROOT / "dist",
                        help="output folder (default: dist/)")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "pyinstaller",
                        help="PyInstaller's work folder (default: build/pyinstaller/)")
    args = parser.parse_args(argv)
    check_sources()
    dist, work = args.dist.resolve(), args.work.resolve()
    started = time.monotonic()
    cmd = [sys.executable, "-m", "PyInstaller", *pyinstaller_args(dist, work)]
    result = subprocess.run(cmd, cwd=ROOT)
    if result.returncode != 0:
        print(f"build: PyInstaller failed with status {result.returncode}", file=sys.stderr)
        return result.returncode
    binary = dist / NAME / (NAME + (".exe" if sys.platform == "win32" else ""))
    if not binary.is_file():
        print(f"build: PyInstaller finished but {binary} is missing", file=sys.stderr)
        return 1
    files = [p for p in (dist / NAME).rglob("*") if p.is_file() and not p.is_symlink()]
    size = sum(p.stat().st_size for p in files)
    print(f"built in {time.monotonic() - started:.0f} s, {size / 2**20:.0f} MB in {dist / NAME}")
    print(binary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
