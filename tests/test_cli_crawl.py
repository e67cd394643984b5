"""`cllm crawl` in subprocesses against the local site: a whole crawl with its progress line,
Ctrl+C that stops cleanly, --resume that goes on, and refusals as one plain line."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from crawl_site import CrawlSite

from cllm_app.services.studio import Studio


def cllm(*args, home, ok=True, timeout=120):
    env = {**os.environ, "CLLM_HOME": str(home)}
    p = subprocess.run([sys.executable, "-m", "cllm_app", *args], capture_output=True, text=True, env=env,
                       timeout=timeout)
    if ok:
        assert p.returncode == 0, (p.stdout, p.stderr)
    return p


@pytest.fixture
def site():
    with CrawlSite(wide=10) as s:
        yield s


def test_crawl_fills_the_queue_and_prints_progress(home, site):
    cllm("models", "create", "web", "--layers", "1", "--heads", "2", "--dim", "16", "--context", "16", home=home)
    p = cllm("crawl", "web", site.url("/a"), site.url("/notes.txt"), "--depth", "1", "--rate", "0",
             "--max-pages", "50", home=home)
    assert "crawl #1" in p.stdout and "fetched 5 · skipped 0 · failed 0 · queued 0" in p.stdout
    assert "no URLs left to fetch" in p.stdout
    studio = Studio(home)
    items = studio.queue.list("web")["items"]
    assert len(items) == 5 and {i["source_kind"] for i in items} == {"crawl"}
    studio.close()


def test_ctrl_c_stops_cleanly_and_resume_goes_on(home, site):
    cllm("models", "create", "web", "--layers", "1", "--heads", "2", "--dim", "16", "--context", "16", home=home)
    env = {**os.environ, "CLLM_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "cllm_app", "crawl", "web", site.url("/wide/"), "--rate", "4",
                             "--depth", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def fetched() -> int:
        try:
            con = sqlite3.connect(home / "cllm.db")
            return con.execute("SELECT COUNT(*) FROM crawl_urls WHERE status = 'fetched'").fetchone()[0]
        except sqlite3.OperationalError:  # not created yet
            return 0

    deadline = time.monotonic() + 60
    while fetched() < 3:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "stopped with" in out and "resume with: cllm crawl web --resume 1" in out
    first = fetched()
    assert 3 <= first < 11
    p = cllm("crawl", "web", "--resume", "1", home=home)
    assert "no URLs left to fetch" in p.stdout and fetched() == 11
    assert site.hits["/wide/"] == 1 and all(site.hits[f"/wide/{i}"] == 1 for i in range(10))


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("crawl", "nobody", "http://a.org/"), "no model named"),
        (("crawl", "web", "ftp://a.org/"), "not an http"),
        (("crawl", "web", "http://a.org/", "--max-pages", "-1"), "max_pages"),
        (("crawl", "web", "http://a.org/", "--rate", "-2"), "rate"),
        (("crawl", "web", "http://a.org/", "--domain", "b.org"), "outside the allowed domains"),
        (("crawl", "web", "--resume", "9"), "no crawl #9"),
    ],
)
def test_refusals_are_one_plain_line(home, args, fragment):
    cllm("models", "create", "web", home=home)
    p = cllm(*args, home=home, ok=False)
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], p.stderr


def test_usage_errors(home):
    cllm("models", "create", "web", home=home)
    assert cllm("crawl", "web", home=home, ok=False).returncode == 2
    assert cllm("crawl", "web", "--resume", "1", "http://a.org/", home=home, ok=False).returncode == 2
