"""Fixtures for the browser tests: one Chromium per session, a fresh real app per test.

The app runs as a subprocess (`python -m cllm_app serve --port 0`) with CLLM_HOME in a new
temporary folder, exactly as a person would start it; the first line it prints holds the URL
with the launch token. Playwright drives Debian's Chromium (/usr/bin/chromium) directly,
without the pytest-playwright plugin and without downloading browsers.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from playwright.sync_api import Browser, Page, expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
URL_LINE = re.compile(r"serving at (http://127\.0\.0\.1:(\d+))/#token=(\S+)")
VIEWPORT = {"width": 1280, "height": 800}

expect.set_options(timeout=10_000)


@dataclass
class App:
    """A running app: its URL (with token), origin, token, data root and process."""

    url: str
    origin: str
    token: str
    home: Path
    proc: subprocess.Popen
    session: requests.Session = field(default_factory=requests.Session)

    def api(self, method: str, path: str, json=None, expect_status: int | None = None):
        """Call the HTTP API directly (to check what the UI did). Returns (status, body)."""
        response = self.session.request(
            method, self.origin + path, json=json, headers={"X-CLLM-Token": self.token}, timeout=30
        )
        body = response.json() if response.content else None
        if expect_status is not None:
            assert response.status_code == expect_status, (response.status_code, body)
        return response.status_code, body

    def model_names(self) -> list[str]:
        return [
            m["model_name"] for m in self.api("GET", "/api/models", expect_status=200)[1]["models"]
        ]

    def create(self, name: str, **shape) -> dict:
        return self.api("POST", "/api/models", {"model_name": name, **shape}, expect_status=201)[1]

    def upload(self, name: str, files: dict[str, bytes]) -> dict:
        """Add files to a model's training-data queue as a browser would (multipart upload)."""
        response = self.session.post(
            f"{self.origin}/api/models/{quote(name)}/queue/upload",
            files=[("files", (filename, data)) for filename, data in files.items()],
            headers={"X-CLLM-Token": self.token},
            timeout=30,
        )
        assert response.status_code == 202, (response.status_code, response.text)
        return self.wait_job(response.json()["id"])["detail"]

    def wait_job(self, job_id: int, timeout: float = 60.0) -> dict:
        """Poll a job until it ends (an upload or import is an ingest job) and return it."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.api("GET", f"/api/jobs/{job_id}", expect_status=200)[1]
            if job["state"] not in ("queued", "running", "stopping", "paused"):
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {job['state']} after {timeout}s")
            time.sleep(0.05)


def _read_url(proc: subprocess.Popen, timeout: float = 30.0) -> re.Match:
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line
            match = URL_LINE.search(line)
            if match:
                return match
        elif proc.poll() is not None:
            break
    raise RuntimeError(f"the app did not print its URL; stdout so far: {seen!r}")


@pytest.fixture(scope="session")
def browser() -> Browser:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def app_env() -> dict:
    """More environment for the app's process; a test module may override it."""
    return {}


@pytest.fixture
def app(tmp_path, app_env) -> App:
    home = tmp_path / "cllm-home"
    home.mkdir()
    env = {**os.environ, "CLLM_HOME": str(home), "PYTHONUNBUFFERED": "1", **app_env}
    stderr = open(tmp_path / "app-stderr.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cllm_app", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=stderr,
        env=env,
        text=True,
        cwd=tmp_path,
    )
    try:
        match = _read_url(proc)
        yield App(
            url=match.group(0).split("serving at ", 1)[-1],
            origin=match.group(1),
            token=match.group(3),
            home=home,
            proc=proc,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        stderr.close()


@pytest.fixture
def context(browser: Browser):
    context = browser.new_context(viewport=VIEWPORT)
    yield context
    context.close()


@pytest.fixture
def page(context, app: App) -> Page:
    """The app opened through the URL it printed, once the first models list has rendered."""
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(app.url)
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    yield page
    assert not errors, f"uncaught errors in the page: {errors}"
