"""Shared fixtures: every test gets its own temporary data root; nothing touches the real one."""

import os

import pytest

from cllm_app.services.studio import Studio


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    home = tmp_path / "cllm-home"
    monkeypatch.setenv("CLLM_HOME", str(home))
    yield home


@pytest.fixture
def studio(_isolated_home):
    s = Studio(_isolated_home)
    yield s
    s.close()


@pytest.fixture
def home(_isolated_home):
    return _isolated_home


def snapshot(root) -> dict:
    """Every file under a data root (path -> bytes), minus SQLite's own side files."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name.startswith("cllm.db"):
                continue
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A skipped test is a missing test: the test command must run everything, so a skip fails."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped, and skips are not allowed in this project: {report.longrepr}"
