"""A crawl job: the crawl's frontier in the store in, pages in the model's queue and an outcome
for every URL out.

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

from peewee import fn

from cllm_app.data.crawler import Crawler, PageResult, Stopped
from cllm_app.errors import CllmError, DiskFull, as_refusal
from cllm_app.services.crawls import MAX_URL_ROWS, counts, crawler_settings, requested
from cllm_app.services.studio import Studio
from cllm_app.store import Crawl, CrawlUrl, Job, LanguageModel, QueueEntry, db
from cllm_app.store.schema import utcnow

CONTROL_POLL_SECONDS = 0.1
FINISH_FETCH_SECONDS = 0.3  # how long a pause or stop lets a request under way end (pause answers within 1 s)
REPORT_EVERY_SECONDS = 0.25


def untrained_tokens(model_id: int) -> int:
    """Tokens of the model's ready queue items that no epoch has used yet."""
    return int(
        QueueEntry.select(fn.COALESCE(fn.SUM(QueueEntry.token_count), 0))
        .where((QueueEntry.model == model_id) & (QueueEntry.status == "ready") & (QueueEntry.epochs_used == "[]"))
        .scalar()
    )


def maybe_queue_training(studio: Studio, crawl: Crawl, threshold: int) -> str | None:
    """Continuous mode: queue a training job once the untrained tokens pass `threshold` and the
    model has none queued or running. A model at its target trains one more epoch. Returns a
    note for the crawl's message when a job was queued, or why it could not be."""
    if threshold <= 0 or untrained_tokens(crawl.model_id) < threshold:
        return None
    from cllm_app.services.training import active_training, start_training

    if active_training(crawl.model_id) is not None:
        return None

    row = LanguageModel.get_by_id(crawl.model_id)
    settings = {"target_epochs": row.epochs_trained + 1} if row.epochs_trained >= row.target_epochs else {}
    try:
        job = start_training(studio, row.model_name, settings)
    except CllmError as e:
        return f"continuous mode could not queue training: {e.message}"
    Crawl.update(trainings_queued=Crawl.trainings_queued + 1).where(Crawl.id == crawl.id).execute()
    return f"queued training job #{job['id']}"


def _record(crawl: Crawl, row: CrawlUrl, result: PageResult, status: str, max_depth: int, scope) -> None:
    """Write one URL's outcome and the new URLs its page links to, together."""
    with db.atomic():
        row.status = status
        row.outcome, row.reason = result.outcome, result.reason[:2000]
        row.http_status, row.final_url, row.title = result.http_status, result.final_url, result.title
        row.content_hash = result.content_hash if result.outcome == "fetched" else None
        row.fetched_at = utcnow()
        row.save()
        if result.outcome != "fetched" or row.depth >= max_depth or not result.links:
            return
        known = CrawlUrl.select().where(CrawlUrl.crawl == crawl).count()
        room = max(0, MAX_URL_ROWS - known)
        new, now = [], utcnow()
        for link in result.links[:room]:
            inside = scope.allows(link)
            # An off-site link is remembered once with its reason, and never fetched.
            new.append({
                "crawl": crawl.id, "url": link, "depth": row.depth + 1, "discovered_at": now,
                "status": "queued" if inside else "skipped",
                "outcome": None if inside else "off_site",
                "reason": None if inside else "outside the allowed sites",
                "fetched_at": None if inside else now,
            })
        for i in range(0, len(new), 200):
            CrawlUrl.insert_many(new[i : i + 200]).on_conflict_ignore().execute()


def run_crawl(studio: Studio, job_id: int, client=None) -> str:
    """Run the job's crawl until its frontier is empty, max_pages is reached, or it is asked to
    pause or stop. Returns the job's final state."""
    jobs = studio.jobs
    job = Job.get_by_id(job_id)
    crawl = Crawl.get_by_id(json.loads(job.params)["crawl_id"])
    stored = json.loads(crawl.settings)
    settings = crawler_settings(stored)
    threshold = stored.get("train_after_tokens", 0)
    model_id = crawl.model_id
    if crawl.state in ("queued",):
        Crawl.update(state="running", updated_at=utcnow()).where(Crawl.id == crawl.id).execute()

    def control() -> str | None:
        """'pause' or 'stop' when the person asked for it, else None."""
        state = Crawl.select(Crawl.state).where(Crawl.id == crawl.id).scalar()
        if state in ("pausing", "paused"):
            return "pause"
        if state in ("stopping", "stopped") or jobs.stop_requested(job_id):
            return "stop"
        return None

    abandon = threading.Event()
    crawler = Crawler(settings, should_stop=abandon.is_set, client=client)
    seen = {
        h: u for h, u in CrawlUrl.select(CrawlUrl.content_hash, CrawlUrl.url)
        .where((CrawlUrl.crawl == crawl) & CrawlUrl.content_hash.is_null(False)).tuples()
    }
    n_requested = requested(crawl.id)
    started, fetched_now = time.monotonic(), 0
    last_report = [0.0]
    note = [crawl.message or ""]

    def report(current: str | None, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - last_report[0] < REPORT_EVERY_SECONDS:
            return
        last_report[0] = now
        c = counts(crawl.id)
        elapsed = now - started
        jobs.report(
            job_id,
            progress=min(1.0, n_requested / settings.max_pages),
            message=f"{c['fetched']} fetched · {c['skipped']} skipped · {c['failed']} failed · {c['queued']} queued",
            detail={
                "crawl_id": crawl.id,
                **c,
                "requested": n_requested,
                "max_pages": settings.max_pages,
                "pages_per_sec": fetched_now / elapsed if elapsed > 0 else 0.0,
                "current_url": current,
                "trainings_queued": Crawl.get_by_id(crawl.id).trainings_queued,
                "note": note[0],
            },
        )

    signal, end_message, refusal = None, None, None
    try:
        while True:
            signal = control()
            if signal:
                break
            if n_requested >= settings.max_pages:
                end_message = f"reached max_pages ({settings.max_pages})"
                break
            row = (
                CrawlUrl.select().where((CrawlUrl.crawl == crawl) & (CrawlUrl.status == "queued"))
                .order_by(CrawlUrl.depth, CrawlUrl.id).first()
            )
            if row is None:
                end_message = "no URLs left to fetch"
                break
            report(row.url)
            box: dict = {}

            def fetch(url=row.url, box=box):
                try:
                    box["result"] = crawler.fetch(url)
                except Stopped:
                    box["stopped"] = True
                except Exception as e:  # a bug in one page's handling must not end the crawl
                    box["error"] = e

            worker = threading.Thread(target=fetch, name="crawl-fetch", daemon=True)
            worker.start()
            while worker.is_alive():
                worker.join(CONTROL_POLL_SECONDS)
                if worker.is_alive():
                    signal = control()
                    if signal:
                        # A request on its way mostly answers within moments: keep that page, so
                        # a pause never makes the site serve it twice. A slow one is abandoned.
                        worker.join(FINISH_FETCH_SECONDS)
                        if worker.is_alive():
                            abandon.set()
                        break
            if box.get("stopped") or not ("result" in box or "error" in box):
                signal = signal or control() or "stop"
                break
            if "error" in box:
                bug = box["error"]
                result = PageResult(row.url, "network_error", f"{type(bug).__name__}: {bug}")
            else:
                result = box["result"]
            status = result.count
            if result.outcome == "fetched":
                if result.content_hash in seen:
                    result.outcome, result.reason = "duplicate", f"the same text as {seen[result.content_hash]}"
                    status = "skipped"
                else:
                    status = _add_to_queue(studio, model_id, result, row)
                    if result.outcome == "fetched":
                        seen[result.content_hash] = row.url
            if result.outcome not in ("disallowed", "off_site"):
                n_requested += 1
            _record(crawl, row, result, status, settings.max_depth, crawler.scope)
            if result.outcome == "fetched":
                fetched_now += 1
                text = maybe_queue_training(studio, Crawl.get_by_id(crawl.id), threshold)
                if text:
                    note[0] = text
            report(None)
            if signal:
                break  # the page in flight when the pause came is recorded; now pause
    except Exception as e:
        # A full disk ends the crawl; the URL at hand was never marked, so it waits in the frontier.
        refusal = as_refusal(e, f"crawl #{crawl.id}", studio.root.path)
        if refusal is None:
            raise
    finally:
        crawler_close = getattr(crawler, "close", None)
        if crawler_close and not abandon.is_set():
            crawler_close()
    c = counts(crawl.id)
    summary = f"{c['fetched']} pages fetched ({c['tokens']:,} tokens), {c['skipped']} skipped, {c['failed']} failed"
    if refusal is not None:
        _finish(crawl.id, "failed", f"{refusal.message} · {c['queued']} URLs left; Resume goes on from there · {summary}")
        jobs.finish(job_id, "failed", error=refusal.message, message=f"crawl #{crawl.id} failed · {summary}")
        return "failed"
    report(None, force=True)
    if signal == "pause":
        _finish(crawl.id, "paused", f"paused with {c['queued']} URLs left; Resume goes on from there · {summary}")
        jobs.finish(job_id, "stopped", message=f"crawl #{crawl.id} paused · {summary}")
        return "stopped"
    if signal == "stop":
        _finish(crawl.id, "stopped", f"stopped with {c['queued']} URLs left · {summary}")
        jobs.finish(job_id, "stopped", message=f"crawl #{crawl.id} stopped · {summary}")
        return "stopped"
    _finish(crawl.id, "done", f"{end_message} · {summary}")
    jobs.finish(job_id, "done", message=f"crawl #{crawl.id} done: {end_message} · {summary}")
    return "done"


def _add_to_queue(studio: Studio, model_id: int, result: PageResult, row: CrawlUrl) -> str:
    """Put a page's text in the model's queue like a dropped file; returns the URL's status."""
    name = LanguageModel.get_by_id(model_id).model_name
    try:
        added = studio.queue.add_text(name, result.text, origin=result.final_url or result.url,
                                      source_kind="crawl", title=result.title)
    except DiskFull:
        raise  # not this page's fault: the crawl ends, and the page stays in the frontier
    except CllmError as e:
        result.outcome, result.reason = "no_text", f"the queue refused it: {e.message}"
        return "skipped"
    if "duplicate" in added:
        entry = added["duplicate"]
        result.outcome, result.reason = "duplicate", f"already in the queue (item {entry['id']}, from {entry['origin']})"
        return "skipped"
    entry = added["added"]
    row.queue_entry_id, row.token_count = entry["id"], entry["token_count"]
    return "fetched"


def _finish(crawl_id: int, state: str, message: str) -> None:
    Crawl.update(state=state, message=message, updated_at=utcnow(), finished_at=utcnow()).where(
        Crawl.id == crawl_id
    ).execute()
