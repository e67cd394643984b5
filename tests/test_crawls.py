"""Crawls in the store and as jobs: a whole crawl of the local site, pause and resume from the
frontier without refetching, stop, a worker killed mid-crawl, continuous mode."""

import os
import signal
import threading
import time

import pytest
from crawl_site import CrawlSite

from cllm_app.errors import Conflict, InvalidInput, NotFound
from cllm_app.jobs.crawl import run_crawl
from cllm_app.jobs.runner import JobRunner
from cllm_app.services.crawls import untrained_tokens
from cllm_app.store import Job, QueueEntry
from tests.conftest import wait_until

SHAPE = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16}


@pytest.fixture
def site():
    with CrawlSite(slow_seconds=2.0, wide=12) as s:
        yield s


def _wait(predicate, timeout=30.0, what="condition"):
    wait_until(predicate, timeout, what)


def _urls(studio, crawl_id, status="all"):
    return studio.crawls.urls(crawl_id, status=status, limit=500)["urls"]


def _in_thread(studio, job_id):
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("state", run_crawl(studio, job_id)))
    t.start()
    return t, out


def test_a_whole_crawl_lands_pages_in_the_queue_with_every_outcome(studio, site):
    studio.models.create("m", **SHAPE)
    c = studio.crawls.start("m", {
        "start_urls": [site.url("/")], "rate": 0, "timeout": 0.5, "max_page_bytes": 200_000, "max_depth": 3,
    }, foreground=True)
    assert run_crawl(studio, c["job_id"]) == "done"
    c = studio.crawls.get(c["id"])
    assert c["state"] == "done" and c["queued"] == 0 and not c["resumable"]
    by_path = {u["url"].split(str(site.port), 1)[-1] if str(site.port) in u["url"] else u["url"]: u
               for u in _urls(studio, c["id"])}
    expect = {
        "/": "fetched", "/a": "fetched", "/a/1": "fetched", "/a/2": "fetched", "/a/1/deep": "fetched",
        "/redirect1": "fetched", "/sjis": "fetched", "/cp1252": "fetched", "/notes.txt": "fetched",
        "/dup1": "fetched", "/dup2": "duplicate", "/after-dup": "fetched", "/private/secret": "disallowed",
        "/loop1": "redirect_error",
        "/missing": "http_error", "/error": "http_error", "/image.png": "wrong_type", "/huge": "too_big",
        "/huge-stream": "too_big", "/slow": "timeout", "http://example.invalid/page": "off_site",
    }
    assert {k: by_path[k]["outcome"] for k in expect} == expect
    assert by_path["/elsewhere"]["outcome"] == "off_site" and by_path["/elsewhere"]["reason"]
    assert by_path["/missing"]["reason"] == "HTTP 404 Not Found" and by_path["/missing"]["status"] == "failed"
    assert by_path["/a/1/deep"]["depth"] == 3
    assert site.hits["/elsewhere"] == 0 and site.hits["/private/secret"] == 0
    # every fetched page is one queue item, with its URL as origin and its title
    queue = studio.queue.list("m")
    fetched = [u for u in by_path.values() if u["outcome"] == "fetched"]
    assert len(queue["items"]) == len(fetched) == c["fetched"]
    items = {i["id"]: i for i in queue["items"]}
    for u in fetched:
        item = items[u["queue_entry_id"]]
        assert item["source_kind"] == "crawl" and item["token_count"] == u["token_count"] > 0
        assert item["origin"] == (u["final_url"] or u["url"]) and item["title"] == u["title"]
    assert queue["tokens"] == c["tokens"]
    assert items[by_path["/redirect1"]["queue_entry_id"]]["origin"] == site.url("/target")
    job = studio.jobs.get(c["job_id"])
    assert job["state"] == "done" and job["detail"]["fetched"] == c["fetched"]


@pytest.mark.parametrize("again", ["a duplicate of the model", "the same model, deeper"])
def test_a_new_crawl_from_a_page_already_queued_follows_its_links(studio, site, again):
    studio.models.create("m", **SHAPE)
    first = studio.crawls.start("m", {"start_urls": [site.url("/a")], "rate": 0, "max_depth": 0},
                                foreground=True)
    assert run_crawl(studio, first["job_id"]) == "done" and studio.crawls.get(first["id"])["fetched"] == 1
    name = studio.models.duplicate("m", "copy")["model_name"] if again.startswith("a duplicate") else "m"
    c = studio.crawls.start(name, {"start_urls": [site.url("/a")], "rate": 0, "max_depth": 1},
                           foreground=True)
    assert run_crawl(studio, c["job_id"]) == "done"
    c = studio.crawls.get(c["id"])
    items = studio.queue.list(name)["items"]
    queued_a = [i for i in items if i["origin"] == site.url("/a")]
    assert len(queued_a) == 1  # the start page's text is not queued twice
    start = next(u for u in _urls(studio, c["id"]) if u["url"] == site.url("/a"))
    assert (start["status"], start["outcome"], start["queue_entry_id"]) == ("skipped", "duplicate", None)
    assert start["reason"] == f"already in the queue (item {queued_a[0]['id']}, from {site.url('/a')})"
    # ...yet the pages it links to, not in the queue yet, are fetched
    fetched = {u["url"] for u in _urls(studio, c["id"], "fetched")}
    assert fetched == {site.url("/a/1"), site.url("/a/2"), site.url("/")}
    assert (c["fetched"], c["skipped"], c["requested"]) == (3, 1, 4) and "no URLs left" in c["message"]
    assert len(items) == 4 and site.hits["/a"] == 2 and site.hits["/a/1/deep"] == 0


def test_a_duplicate_page_is_skipped_but_its_links_are_followed(studio, site):
    studio.models.create("m", **SHAPE)
    c = studio.crawls.start("m", {"start_urls": [site.url("/dup1"), site.url("/dup2")], "rate": 0, "max_depth": 3},
                           foreground=True)
    assert run_crawl(studio, c["job_id"]) == "done"
    by_url = {u["url"]: u for u in _urls(studio, c["id"])}
    dup = by_url[site.url("/dup2")]
    assert (dup["status"], dup["outcome"]) == ("skipped", "duplicate")
    assert dup["reason"] == f"the same text as {site.url('/dup1')}"
    after = by_url[site.url("/after-dup")]
    assert (after["status"], after["depth"]) == ("fetched", 1)
    # /after-dup links back to /dup2 and /dup2 to /dup1: known URLs are never queued again
    assert set(by_url) == {site.url("/dup1"), site.url("/dup2"), site.url("/after-dup")}
    assert site.hits["/dup1"] == site.hits["/dup2"] == site.hits["/after-dup"] == 1
    assert [i["origin"] for i in studio.queue.list("m")["items"]] == [site.url("/dup1"), site.url("/after-dup")]


def test_depth_and_max_pages_limit_the_crawl(studio, site):
    studio.models.create("m", **SHAPE)
    c = studio.crawls.start("m", {"start_urls": [site.url("/a")], "rate": 0, "max_depth": 1},
                           foreground=True)
    run_crawl(studio, c["job_id"])
    fetched = {u["url"] for u in _urls(studio, c["id"], "fetched")}
    assert fetched == {site.url("/a"), site.url("/a/1"), site.url("/a/2"), site.url("/")}
    assert site.hits["/a/1/deep"] == 0
    c = studio.crawls.start("m", {"start_urls": [site.url("/wide/")], "rate": 0, "max_pages": 4},
                           foreground=True)
    assert run_crawl(studio, c["job_id"]) == "done"
    c = studio.crawls.get(c["id"])
    assert c["requested"] == 4 and c["queued"] > 0 and "max_pages" in c["message"]
    with pytest.raises(Conflict, match="only a paused, stopped"):
        studio.crawls.resume(c["id"])


def test_pause_then_resume_goes_on_from_the_frontier_without_refetching(studio, site):
    studio.models.create("m", **SHAPE)
    c = studio.crawls.start("m", {"start_urls": [site.url("/wide/")], "rate": 8, "max_depth": 1},
                           foreground=True)
    thread, out = _in_thread(studio, c["job_id"])
    _wait(lambda: studio.crawls.get(c["id"])["fetched"] >= 4, what="4 pages")
    asked = time.monotonic()
    assert studio.crawls.pause(c["id"])["state"] == "pausing"
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - asked < 1.0
    paused = studio.crawls.get(c["id"])
    assert out["state"] == "stopped" and paused["state"] == "paused" and paused["resumable"]
    assert studio.jobs.get(c["job_id"])["state"] == "stopped"
    done_first = {u["url"] for u in _urls(studio, c["id"], "processed")}
    hits_first = dict(site.hits)
    assert 4 <= len(done_first) < 13 and paused["queued"] == 13 - len(done_first)

    resumed = studio.crawls.resume(c["id"], foreground=True)
    assert resumed["job_id"] != c["job_id"] and resumed["state"] == "running"
    assert run_crawl(studio, resumed["job_id"]) == "done"
    final = studio.crawls.get(c["id"])
    assert final["state"] == "done" and final["fetched"] == 13 and final["queued"] == 0
    for url in done_first:
        path = url.split(str(site.port), 1)[1]
        assert site.hits[path] == hits_first[path] == 1, path  # never fetched again
    assert len(studio.queue.list("m")["items"]) == 13


def test_pause_answers_within_a_second_even_during_a_slow_fetch(studio, site):
    studio.models.create("m", **SHAPE)
    c = studio.crawls.start("m", {"start_urls": [site.url("/slow")], "rate": 0, "timeout": 30},
                           foreground=True)
    thread, out = _in_thread(studio, c["job_id"])
    _wait(lambda: site.hits["/slow"] == 1, what="the slow request")
    asked = time.monotonic()
    studio.crawls.stop(c["id"])
    thread.join(5)
    assert time.monotonic() - asked < 1.0 and out["state"] == "stopped"
    stopped = studio.crawls.get(c["id"])
    # the page under way was abandoned: it stays in the frontier, and the crawl can resume
    assert stopped["state"] == "stopped" and stopped["queued"] == 1 and stopped["resumable"]


def test_a_killed_worker_leaves_an_interrupted_crawl_that_resumes(studio, site):
    studio.models.create("m", **SHAPE)
    c = studio.crawls.start("m", {"start_urls": [site.url("/wide/")], "rate": 10, "max_depth": 1})
    runner = JobRunner(studio).start()
    try:
        _wait(lambda: studio.crawls.get(c["id"])["fetched"] >= 3, timeout=60, what="3 pages")
        os.kill(Job.get_by_id(c["job_id"]).pid, signal.SIGKILL)
        _wait(lambda: studio.crawls.get(c["id"])["state"] == "interrupted", what="interrupted")
        assert studio.crawls.get(c["id"])["resumable"]
        first = {u["url"] for u in _urls(studio, c["id"], "processed")}
        studio.crawls.resume(c["id"])
        _wait(lambda: studio.crawls.get(c["id"])["state"] == "done", timeout=60, what="done")
    finally:
        runner.shutdown()
    assert studio.crawls.get(c["id"])["fetched"] == 13
    for url in first:
        assert site.hits[url.split(str(site.port), 1)[1]] == 1


def test_continuous_mode_queues_one_training_job(studio, site):
    studio.models.create("m", **SHAPE)
    c = studio.crawls.start("m", {"start_urls": [site.url("/wide/")], "rate": 0, "max_depth": 1,
                                         "train_after_tokens": 2000}, foreground=True)
    run_crawl(studio, c["job_id"])
    trains = list(Job.select().where(Job.kind == "train"))
    assert len(trains) == 1 and trains[0].state == "queued"
    assert studio.crawls.get(c["id"])["trainings_queued"] == 1
    assert untrained_tokens(trains[0].model_id) >= 2000
    # below the threshold nothing is queued
    studio.models.create("n", **SHAPE)
    c = studio.crawls.start("n", {"start_urls": [site.url("/a/2")], "rate": 0, "max_depth": 0,
                                         "train_after_tokens": 10**9}, foreground=True)
    run_crawl(studio, c["job_id"])
    assert Job.select().where(Job.kind == "train").count() == 1
    assert QueueEntry.select().count() > 1


def test_one_live_crawl_per_model_and_the_state_rules(studio, site):
    studio.models.create("m", **SHAPE)
    c = studio.crawls.start("m", {"start_urls": [site.url("/")]})
    assert c["state"] == "queued" and c["queued"] == 1
    with pytest.raises(Conflict, match="already crawling"):
        studio.crawls.start("m", {"start_urls": [site.url("/a")]})
    assert studio.crawls.pause(c["id"])["state"] == "paused"  # never started: its job is cancelled
    assert studio.jobs.get(c["job_id"])["state"] == "cancelled"
    assert studio.crawls.pause(c["id"])["state"] == "paused"  # asking twice is no error
    r = studio.crawls.resume(c["id"])
    assert r["state"] == "queued" and r["job_id"] != c["job_id"]
    with pytest.raises(Conflict, match="only a paused"):
        studio.crawls.resume(c["id"])
    assert studio.crawls.stop(c["id"])["state"] == "stopped"
    with pytest.raises(NotFound):
        studio.crawls.get(999)
    assert [x["id"] for x in studio.crawls.list("m")["crawls"]] == [c["id"]]
    studio.models.rename("m", "renamed")
    assert studio.crawls.get(c["id"])["model_name"] == "renamed"


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({}, "start_urls"),
        ({"start_urls": []}, "start_urls"),
        ({"start_urls": ["ftp://example.org/"]}, "not an http"),
        ({"start_urls": ["not a url"]}, "not an http"),
        ({"start_urls": [3]}, "start_urls"),
        ({"start_urls": ["http://a.org/"], "max_depth": -1}, "max_depth"),
        ({"start_urls": ["http://a.org/"], "max_pages": 0}, "max_pages"),
        ({"start_urls": ["http://a.org/"], "max_pages": 2.5}, "max_pages"),
        ({"start_urls": ["http://a.org/"], "rate": -1}, "rate"),
        ({"start_urls": ["http://a.org/"], "rate": "fast"}, "rate"),
        ({"start_urls": ["http://a.org/"], "max_page_bytes": 10}, "max_page_bytes"),
        ({"start_urls": ["http://a.org/"], "user_agent": "bad\nagent"}, "user_agent"),
        ({"start_urls": ["http://a.org/"], "allowed_domains": ["not a domain"]}, "not a domain"),
        ({"start_urls": ["http://a.org/"], "allowed_domains": ["b.org"]}, "outside the allowed"),
        ({"start_urls": ["http://a.org/"], "train_after_tokens": -5}, "train_after_tokens"),
        ({"start_urls": ["http://a.org/"], "depth": 3}, "unknown field"),
    ],
)
def test_bad_settings_are_refused_and_nothing_is_stored(studio, body, fragment):
    studio.models.create("m", **SHAPE)
    with pytest.raises(InvalidInput, match=fragment):
        studio.crawls.start("m", body)
    assert studio.crawls.list("m")["crawls"] == [] and Job.select().count() == 0


def test_urls_paging_and_status_filter(studio, site):
    studio.models.create("m", **SHAPE)
    c = studio.crawls.start("m", {"start_urls": [site.url("/")], "rate": 0, "max_depth": 1,
                                         "timeout": 0.5}, foreground=True)
    run_crawl(studio, c["job_id"])
    page1 = studio.crawls.urls(c["id"], limit=5)
    page2 = studio.crawls.urls(c["id"], offset=5, limit=5)
    assert page1["total"] == page2["total"] > 10 and len(page1["urls"]) == 5
    assert not {u["id"] for u in page1["urls"]} & {u["id"] for u in page2["urls"]}
    failed = studio.crawls.urls(c["id"], status="failed")["urls"]
    assert failed and all(u["status"] == "failed" for u in failed)
    with pytest.raises(InvalidInput):
        studio.crawls.urls(c["id"], status="nope")
    with pytest.raises(InvalidInput):
        studio.crawls.urls(c["id"], limit="0")


def test_a_page_under_way_when_pause_comes_is_kept_and_never_fetched_again(studio):
    from cllm_app.jobs.crawl import FINISH_FETCH_SECONDS

    with CrawlSite(slow_seconds=FINISH_FETCH_SECONDS / 3) as quick:
        studio.models.create("m", **SHAPE)
        c = studio.crawls.start("m", {"start_urls": [quick.url("/slow")], "rate": 0, "max_depth": 0},
                               foreground=True)
        thread, out = _in_thread(studio, c["job_id"])
        _wait(lambda: quick.hits["/slow"] == 1, what="the request under way")
        studio.crawls.pause(c["id"])
        thread.join(5)
        assert out["state"] == "stopped"
        paused = studio.crawls.get(c["id"])
        # The page answered within the grace: it is recorded, with nothing left to fetch again
        # (abandoned, it stayed in the frontier, and Resume requested it a second time).
        assert paused["state"] == "paused" and paused["fetched"] == 1 and paused["queued"] == 0
        assert quick.hits["/slow"] == 1 and len(studio.queue.list("m")["items"]) == 1
