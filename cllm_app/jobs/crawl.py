"""A crawl job: the crawl's frontier in the store in, pages in the model's queue and an outcome
for every URL out. What happens to each page (kept, a duplicate, its links, continuous mode's
training) is the crawl service's rule (services/crawls.py); this module fetches and listens.

Runs in the worker's process (or in the foreground for `cllm crawl`). The frontier is the
crawl's URL rows still `queued`, fetched breadth first (depth, then discovery order); a URL's
row is only marked once its outcome and the links it gave are written, in one transaction, so a
process killed at any moment loses at most the page at hand, which the next run fetches again.
Between fetches, and every 0.1 s while one is under way, the job looks whether the crawl was
asked to pause or stop; a fetch under way then has FINISH_FETCH_SECONDS to end (its page is
kept, so a pause never makes a site serve a page twice), else it is abandoned and its URL stays
in the frontier.
"""

from __future__ import annotations

import json
import threading
import time

from cllm_app.data.crawler import Crawler, PageResult, Stopped
from cllm_app.errors import as_refusal
from cllm_app.services import crawls
from cllm_app.services.studio import Studio
from cllm_app.store import Crawl, CrawlUrl, Job
from cllm_app.store.schema import utcnow

CONTROL_POLL_SECONDS = 0.1
FINISH_FETCH_SECONDS = 0.3  # how long a pause or stop lets a request under way end (pause answers within 1 s)
REPORT_EVERY_SECONDS = 0.25


class CrawlRun:
    """One run of a crawl's job, from the crawl's frontier to its end."""

    def __init__(self, studio: Studio, job_id: int, client=None):
        self.studio, self.jobs, self.job_id = studio, studio.jobs, job_id
        self.crawl_id = json.loads(Job.get_by_id(job_id).params)["crawl_id"]
        crawl = Crawl.get_by_id(self.crawl_id)
        self.model_id, self.note = crawl.model_id, crawl.message or ""
        self.settings = crawls.crawler_settings(json.loads(crawl.settings))
        self.abandon = threading.Event()
        self.crawler = Crawler(self.settings, should_stop=self.abandon.is_set, client=client)
        self.seen = crawls.known_pages(self.crawl_id)
        self.requested = crawls.requested(self.crawl_id)
        self.fetched_now, self.started, self.last_report = 0, time.monotonic(), 0.0
        # Only from queued: a pause or stop asked for since this process was spawned must hold.
        Crawl.update(state="running", updated_at=utcnow()).where(
            (Crawl.id == self.crawl_id) & (Crawl.state == "queued")
        ).execute()

    def control(self) -> str | None:
        """'pause' or 'stop' when the person (or `cllm crawl`'s Ctrl+C) asked for it, else None."""
        return crawls.control_of(self.crawl_id) or ("stop" if self.jobs.stop_requested(self.job_id) else None)

    def report(self, current: str | None, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_report < REPORT_EVERY_SECONDS:
            return
        self.last_report = now
        c = crawls.counts(self.crawl_id)
        elapsed = now - self.started
        self.jobs.report(
            self.job_id,
            progress=min(1.0, self.requested / self.settings.max_pages),
            message=f"{c['fetched']} fetched · {c['skipped']} skipped · {c['failed']} failed · {c['queued']} queued",
            detail={
                "crawl_id": self.crawl_id,
                **c,
                "requested": self.requested,
                "max_pages": self.settings.max_pages,
                "pages_per_sec": self.fetched_now / elapsed if elapsed > 0 else 0.0,
                "current_url": current,
                "trainings_queued": Crawl.get_by_id(self.crawl_id).trainings_queued,
                "note": self.note,
            },
        )

    def until_the_end(self) -> tuple[str | None, str | None]:
        """Fetch the frontier until it is empty, max_pages is reached, or the person pauses or
        stops. Returns (the signal that ended it, or None; why it ended by itself)."""
        while True:
            signal = self.control()
            if signal:
                return signal, None
            if self.requested >= self.settings.max_pages:
                return None, f"reached max_pages ({self.settings.max_pages})"
            row = crawls.next_in_frontier(self.crawl_id)
            if row is None:
                return None, "no URLs left to fetch"
            self.report(row.url)
            result, signal = self.fetch(row.url)
            if result is None:
                return signal or self.control() or "stop", None
            self.take(row, result)
            self.report(None)
            if signal:
                return signal, None  # the page in flight when the pause came is recorded; now pause

    def fetch(self, url: str) -> tuple[PageResult | None, str | None]:
        """The page at `url`, fetched in a thread while the job listens for pause and stop.
        Returns (the result, or None when the fetch was abandoned; a signal that came meanwhile)."""
        box: dict = {}

        def fetch():
            try:
                box["result"] = self.crawler.fetch(url)
            except Stopped:
                pass
            except Exception as e:  # a bug in one page's handling must not end the crawl
                box["result"] = PageResult(url, "network_error", f"{type(e).__name__}: {e}")

        worker = threading.Thread(target=fetch, name="crawl-fetch", daemon=True)
        worker.start()
        signal = None
        while worker.is_alive():
            worker.join(CONTROL_POLL_SECONDS)
            if worker.is_alive():
                signal = self.control()
                if signal:
                    # A request on its way mostly answers within moments: keep that page, so a
                    # pause never makes the site serve it twice. A slow one is abandoned.
                    worker.join(FINISH_FETCH_SECONDS)
                    if worker.is_alive():
                        self.abandon.set()
                    break
        return box.get("result"), signal

    def take(self, row: CrawlUrl, result: PageResult) -> None:
        """A page's outcome: its text into the queue (once per text), its links into the
        frontier (a duplicate's too), and continuous mode's training when enough new text came in."""
        status = result.count
        if result.outcome == "fetched":
            if result.content_hash in self.seen:
                result.outcome, result.reason = "duplicate", f"the same text as {self.seen[result.content_hash]}"
                status = "skipped"
            else:
                status = self.studio.crawls.add_page(self.model_id, result, row)
                if result.outcome == "fetched":
                    self.seen[result.content_hash] = row.url
        if result.outcome not in ("disallowed", "off_site"):
            self.requested += 1
        crawls.record(self.crawl_id, row, result, status, self.settings.max_depth, self.crawler.scope)
        if result.outcome == "fetched":
            self.fetched_now += 1
            self.note = self.studio.crawls.maybe_queue_training(self.crawl_id) or self.note

    def close(self) -> None:
        crawler_close = getattr(self.crawler, "close", None)
        if crawler_close and not self.abandon.is_set():
            crawler_close()


def run_crawl(studio: Studio, job_id: int, client=None) -> str:
    """Run the job's crawl until its frontier is empty, max_pages is reached, or it is asked to
    pause or stop. Returns the job's final state."""
    run = CrawlRun(studio, job_id, client)
    cid, jobs = run.crawl_id, studio.jobs
    try:
        signal, end_message = run.until_the_end()
    except Exception as e:
        # A full disk ends the crawl; the URL at hand was never marked, so it waits in the frontier.
        refusal = as_refusal(e, f"crawl #{cid}", studio.root.path)
        if refusal is None:
            raise
        left, summary = _summary(cid)
        crawls.end(cid, "failed", f"{refusal.message} · {left} left; Resume goes on from there · {summary}")
        jobs.finish(job_id, "failed", error=refusal.message, message=f"crawl #{cid} failed · {summary}")
        return "failed"
    finally:
        run.close()
    run.report(None, force=True)
    left, summary = _summary(cid)
    if signal == "pause":
        crawls.end(cid, "paused", f"paused with {left} left; Resume goes on from there · {summary}")
        jobs.finish(job_id, "stopped", message=f"crawl #{cid} paused · {summary}")
        return "stopped"
    if signal == "stop":
        crawls.end(cid, "stopped", f"stopped with {left} left · {summary}")
        jobs.finish(job_id, "stopped", message=f"crawl #{cid} stopped · {summary}")
        return "stopped"
    crawls.end(cid, "done", f"{end_message} · {summary}")
    jobs.finish(job_id, "done", message=f"crawl #{cid} done: {end_message} · {summary}")
    return "done"


def _summary(crawl_id: int) -> tuple[str, str]:
    """("N URLs" still to fetch, what the crawl did), in words."""
    c = crawls.counts(crawl_id)
    pages = "1 page" if c["fetched"] == 1 else f"{c['fetched']:,} pages"
    left = "1 URL" if c["queued"] == 1 else f"{c['queued']:,} URLs"
    return left, f"{pages} fetched ({c['tokens']:,} tokens), {c['skipped']:,} skipped, {c['failed']:,} failed"
