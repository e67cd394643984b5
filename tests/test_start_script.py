"""scripts/start.sh installs only when something the install depends on changed.

A real `pip install -e .` rebuilds the Cython kernels (about 2 minutes), so these tests run
the script in a fake checkout whose .venv/bin/python and .venv/bin/cllm only log how they
were called: what matters is whether start.sh called pip, and that it always ends in cllm.
"""

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FAKE_PYTHON = """#!/usr/bin/env bash
# Logs its arguments; prints a Python version (from python-version) for -c; fails
# `pip install -e` while fail-install exists.
here=$(cd "$(dirname "$0")/../.." && pwd)
echo "python $*" >>"$here/log"
if [ "$1" = "-c" ]; then cat "$here/python-version"; exit 0; fi
if [ "$1 $2 $3" = "-m pip install" ] && [[ " $* " == *" -e "* ]] && [ -e "$here/fail-install" ]; then
  exit 1
fi
exit 0
"""

FAKE_CLLM = """#!/usr/bin/env bash
here=$(cd "$(dirname "$0")/../.." && pwd)
echo "cllm $*" >>"$here/log"
"""


def _checkout(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    for name in ("start.sh", "install_stamp.sh"):
        shutil.copy(ROOT / "scripts" / name, tmp_path / "scripts" / name)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "fake"\n')
    (tmp_path / "setup.py").write_text("from setuptools import setup\nsetup()\n")
    (tmp_path / "cllm_app" / "kernels").mkdir(parents=True)
    (tmp_path / "cllm_app" / "kernels" / "a.pyx").write_text("def f(): return 1\n")
    (tmp_path / "python-version").write_text("3.11.9 (fake)\n")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, text in (("python", FAKE_PYTHON), ("cllm", FAKE_CLLM)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return tmp_path


def _start(checkout: Path, *args: str) -> tuple[int, list[str]]:
    """Runs start.sh from elsewhere (it must cd to its checkout); returns its exit status and log."""
    log = checkout / "log"
    log.unlink(missing_ok=True)
    proc = subprocess.run(["bash", str(checkout / "scripts" / "start.sh"), *args],
                          cwd=checkout.parent, capture_output=True, text=True, timeout=60)
    return proc.returncode, log.read_text().splitlines() if log.exists() else []


def _pip_calls(log: list[str]) -> list[str]:
    return [line for line in log if line.startswith("python -m pip")]


def _stamp(checkout: Path) -> Path:
    return checkout / ".venv" / ".cllm-install-stamp"


def test_installs_once_then_starts_without_pip(tmp_path):
    """The first start installs and stamps; the next one goes straight to cllm, pip untouched."""
    checkout = _checkout(tmp_path)
    rc, log = _start(checkout, "--version")
    assert rc == 0
    assert "python -m pip install -qq --upgrade pip" in log
    assert "python -m pip install -qq -e ." in log
    assert log[-1] == "cllm --version"
    assert _stamp(checkout).read_text().strip()

    rc, log = _start(checkout, "--version")
    assert rc == 0
    assert _pip_calls(log) == []
    assert log[-1] == "cllm --version"


def test_changed_kernel_source_installs_again(tmp_path):
    """Only content counts: a touch alone is no change, but an edited .pyx rebuilds the kernels."""
    checkout = _checkout(tmp_path)
    _start(checkout)
    pyx = checkout / "cllm_app" / "kernels" / "a.pyx"
    pyx.touch()
    assert _pip_calls(_start(checkout)[1]) == []

    pyx.write_text("def f(): return 2\n")
    rc, log = _start(checkout, "--version")
    assert rc == 0 and "python -m pip install -qq -e ." in log and log[-1] == "cllm --version"
    assert _pip_calls(_start(checkout)[1]) == []


def test_other_inputs_install_again(tmp_path):
    """A new .pxd, a renamed .pyx, pyproject.toml, setup.py and the venv's Python all count."""
    checkout = _checkout(tmp_path)
    kernels = checkout / "cllm_app" / "kernels"
    _start(checkout)
    changes = [
        lambda: (kernels / "_b.pxd").write_text("cdef int g()\n"),
        lambda: (kernels / "a.pyx").rename(kernels / "c.pyx"),
        lambda: (checkout / "pyproject.toml").write_text('[project]\nname = "fake2"\n'),
        lambda: (checkout / "setup.py").write_text("# changed\n"),
        lambda: (checkout / "python-version").write_text("3.12.1 (fake)\n"),
    ]
    for change in changes:
        change()
        assert "python -m pip install -qq -e ." in _start(checkout)[1]
        assert _pip_calls(_start(checkout)[1]) == []


def test_missing_cllm_installs_again(tmp_path):
    """A venv whose cllm entry point is gone is not installed, whatever the stamp says."""
    checkout = _checkout(tmp_path)
    _start(checkout)
    cllm = checkout / ".venv" / "bin" / "cllm"
    cllm.unlink()
    # The fake pip installs nothing, so the entry point stays gone and the final exec fails.
    rc, log = _start(checkout)
    assert rc != 0 and "python -m pip install -qq -e ." in log


def test_failed_install_leaves_no_stamp(tmp_path):
    """A failed install stops the script before cllm and forgets any old stamp, so the next
    start installs again even with the inputs unchanged."""
    checkout = _checkout(tmp_path)
    (checkout / "fail-install").touch()
    rc, log = _start(checkout)
    assert rc != 0
    assert "python -m pip install -qq -e ." in log
    assert not any(line.startswith("cllm") for line in log)
    assert not _stamp(checkout).exists()

    (checkout / "fail-install").unlink()
    _start(checkout)
    assert _stamp(checkout).exists()
    (checkout / "fail-install").touch()
    (checkout / "setup.py").write_text("# broken\n")
    assert _start(checkout)[0] != 0
    assert not _stamp(checkout).exists()
    (checkout / "setup.py").write_text("from setuptools import setup\nsetup()\n")
    assert "python -m pip install -qq -e ." in _start(checkout)[1]

    (checkout / "fail-install").unlink()
    rc, log = _start(checkout, "--version")
    assert rc == 0 and "python -m pip install -qq -e ." in log and log[-1] == "cllm --version"
    assert _pip_calls(_start(checkout)[1]) == []
