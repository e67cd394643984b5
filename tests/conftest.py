"""Shared fixtures: every test gets its own temporary data root; nothing touches the real one."""

import os
import time

import pytest

from cllm_app.services.studio import Studio

# The suite's jobs run at the app's own priority: two test processes share two cores (and CI adds
# a competing load), and at the default niceness a job a test waits for would get a tenth of a
# core. tests/test_jobs_training.py checks the default on a real job.
os.environ.setdefault("CLLM_JOB_NICENESS", "0")

# The API under Flask's test client: the launch secret and the address it answers to.
SECRET = "test-secret"
HOST = "127.0.0.1:5555"


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


@pytest.fixture
def client(studio):
    """The real Flask app over the test's data root, sending the launch secret with every request."""
    from cllm_app.api import create_app

    app = create_app(studio, SECRET, allowed_hosts={HOST})
    app.config["SERVER_NAME"] = HOST  # the test client then addresses its requests to HOST
    c = app.test_client()
    c.environ_base.update(HTTP_X_CLLM_TOKEN=SECRET)
    return c


def wait_until(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    """Poll `predicate` until it holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


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
