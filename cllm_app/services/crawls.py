"""Crawls: start one for a model with checked settings, pause, stop, resume, list, and read the
outcome of every URL it met. The Crawler tab, `cllm crawl` and the API share these rules.

Pause and stop both end the crawl's worker between two fetches (within about a second) and keep
its frontier in the store; the state says which the person asked for ("paused" or "stopped").
Resume queues a new job for the same crawl, which goes on from the frontier and never fetches a
finished URL again. A crawl whose process died (app closed, machine off) reads "interrupted"
and resumes the same way. A crawl that emptied its frontier or reached max_pages is "done".
"""

from __future__ import annotations

import json
import re

from peewee import fn

from cllm_app.data.crawler import (
    DEFAULT_USER_AGENT,
    OUTCOMES,
    CrawlSettings,
    PageResult,
    Scope,
    clean_domain,
    normalize_url,
)
from cllm_app.engine import heldout
from cllm_app.errors import CllmError, Conflict, DiskFull, InvalidInput, NotFound
from cllm_app.services.orphans import recover_if_orphan
from cllm_app.services.training import active_training
from cllm_app.services.validate import as_float, as_int, only_fields
from cllm_app.store import Crawl, CrawlUrl, Job, LanguageModel, QueueEntry, db
from cllm_app.store.schema import ACTIVE_JOB_STATES, iso, utcnow

MAX_START_URLS = 100
MAX_DOMAINS = 100
MAX_URL_ROWS = 200_000  # URLs one crawl remembers (frontier and outcomes); links past it are dropped
LIVE_STATES = ("queued", "running", "pausing", "stopping")
RESUMABLE_STATES = ("paused", "stopped", "interrupted", "failed")  # failed: a full disk; its frontier is kept
URL_STATUSES = ("queued", "fetched", "skipped", "failed")
# A duplicate's text is taken once, but its links are still followed: a new crawl from a page
# already in the queue (a duplicated model's, or the same site again deeper) must reach the
# pages beyond it, and two URLs with the same text may link to different pages.
FOLLOWS_LINKS = ("fetched", "duplicate")

DEFAULTS = {
    "allowed_domains": [],
    "max_depth": 2,
    "max_pages": 100,
    "max_page_bytes": 2 * 1024 * 1024,
    "rate": 1.0,
    "user_agent": DEFAULT_USER_AGENT,
    "timeout": 15.0,
    "train_after_tokens": 0,
}
FIELDS = {"start_urls", *DEFAULTS}
# The range of each number setting: check_settings and the API's description (api/openapi.py) read it.
LIMITS = {
    "max_depth": (0, 100),
    "max_pages": (1, 1_000_000),
    "max_page_bytes": (1024, 100 * 1024 * 1024),
    "rate": (0.0, 100.0),
    "timeout": (0.1, 300.0),
    "train_after_tokens": (0, 10**12),
}
FLOAT_FIELDS = ("rate", "timeout")
_UA = re.compile(r"^[\x20-\x7e]{1,200}$")


class CrawlRefused(InvalidInput):
    code = "invalid_crawl"


def check_settings(body: dict) -> dict:
    """The crawl settings of a request with defaults filled in, or a refusal saying what is wrong."""
    body = only_fields(body, FIELDS, "a crawl")
    s = {**DEFAULTS, **{k: v for k, v in body.items() if v is not None}}
    raw = body.get("start_urls")
    if isinstance(raw, str):
        raw = raw.split()
    if not isinstance(raw, list) or not raw or not all(isinstance(u, str) for u in raw):
        raise InvalidInput("start_urls must be a non-empty list of http(s) URLs", code="invalid_start_urls")
    if len(raw) > MAX_START_URLS:
        raise InvalidInput(f"start_urls may hold at most {MAX_START_URLS} URLs", code="invalid_start_urls")
    urls = []
    for u in raw:
        n = normalize_url(u)
        if n is None:
            raise InvalidInput(f"'{u[:200]}' is not an http:// or https:// URL with a host", code="invalid_start_urls")
        urls.append(n)
    s["start_urls"] = list(dict.fromkeys(urls))
    domains = s["allowed_domains"]
    if isinstance(domains, str):
        domains = domains.replace(",", " ").split()
    if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains) or len(domains) > MAX_DOMAINS:
        raise InvalidInput(f"allowed_domains must be a list of at most {MAX_DOMAINS} domain names", code="invalid_allowed_domains")
    cleaned = []
    for d in domains:
        c = clean_domain(d)
        if c is None:
            raise InvalidInput(f"'{d[:100]}' is not a domain name (like example.org)", code="invalid_allowed_domains")
        cleaned.append(c)
    s["allowed_domains"] = list(dict.fromkeys(cleaned))
    scope = Scope(s["start_urls"], s["allowed_domains"])
    outside = [u for u in s["start_urls"] if not scope.allows(u)]
    if outside:
        raise InvalidInput(f"the start URL {outside[0]} is outside the allowed domains", code="invalid_allowed_domains")
    for field, (lo, hi) in LIMITS.items():
        s[field] = (as_float if field in FLOAT_FIELDS else as_int)(field, s[field], lo, hi)
    ua = s["user_agent"]
    if not isinstance(ua, str) or not _UA.match(ua.strip()):
        raise InvalidInput("user_agent must be 1 to 200 printable ASCII characters", code="invalid_user_agent")
    s["user_agent"] = ua.strip()
    return s


def crawler_settings(settings: dict) -> CrawlSettings:
    """The stored settings as the crawler takes them (continuous mode is the job's business)."""
    return CrawlSettings(**{k: v for k, v in settings.items() if k != "train_after_tokens"})


def counts(crawl_id: int) -> dict:
    """{queued, fetched, skipped, failed, tokens} of a crawl, from its URL rows."""
    out = {s: 0 for s in URL_STATUSES}
    tokens = 0
    rows = (
        CrawlUrl.select(CrawlUrl.status, fn.COUNT(CrawlUrl.id), fn.COALESCE(fn.SUM(CrawlUrl.token_count), 0))
        .where(CrawlUrl.crawl == crawl_id)
        .group_by(CrawlUrl.status)
        .tuples()
    )
    for status, n, t in rows:
        out[status] = n
        tokens += t
    return {**out, "tokens": int(tokens)}


def _job_state(crawl: Crawl) -> str | None:
    job = Job.get_or_none(Job.id == crawl.job_id) if crawl.job_id else None
    if recover_if_orphan(job):  # a crawl killed with its process (`cllm crawl` and kill -9)
        job = Job.get_or_none(Job.id == crawl.job_id)
    return job.state if job else None


def state_of(crawl: Crawl) -> str:
    """The crawl's state; a live one whose job ended without saying so was interrupted."""
    if crawl.state in LIVE_STATES and _job_state(crawl) not in ACTIVE_JOB_STATES:
        return "interrupted"
    return crawl.state


def describe(crawl: Crawl) -> dict:
    settings = json.loads(crawl.settings)
    c = counts(crawl.id)
    state = state_of(crawl)
    return {
        "id": crawl.id,
        "model_id": crawl.model_id,
        "model_name": crawl.model.model_name,
        "state": state,
        "settings": settings,
        "job_id": crawl.job_id,
        **c,
        "requested": requested(crawl.id),
        "trainings_queued": crawl.trainings_queued,
        "message": crawl.message,
        "resumable": state in RESUMABLE_STATES and c["queued"] > 0,
        "created_at": iso(crawl.created_at),
        "updated_at": iso(crawl.updated_at),
        "finished_at": iso(crawl.finished_at),
    }


def requested(crawl_id: int) -> int:
    """URLs the crawl asked a server for: what max_pages counts (robots and scope refusals are free)."""
    return (
        CrawlUrl.select()
        .where((CrawlUrl.crawl == crawl_id) & (CrawlUrl.status != "queued") & CrawlUrl.outcome.not_in(("disallowed", "off_site")))
        .count()
    )


def _get(crawl_id) -> Crawl:
    crawl = Crawl.get_or_none(Crawl.id == crawl_id)
    if crawl is None:
        raise NotFound(f"there is no crawl #{crawl_id}", code="crawl_not_found")
    return crawl


def _live_crawl(model_id: int) -> Crawl | None:
    for crawl in Crawl.select().where((Crawl.model == model_id) & Crawl.state.in_(LIVE_STATES)):
        if state_of(crawl) != "interrupted":
            return crawl
    return None


def _mark(crawl: Crawl, state: str, message: str | None = None) -> None:
    crawl.state, crawl.updated_at = state, utcnow()
    if message is not None:
        crawl.message = message
    if state in ("paused", "stopped", "done", "failed"):
        crawl.finished_at = utcnow()
    crawl.save()


class Crawls:
    """A model's crawls, for the Crawler tab, `cllm crawl` and the API; and the rules the crawl
    job follows for each page (jobs/crawl.py runs the fetching)."""

    def __init__(self, models, queue, jobs, training):
        self.models, self.queue, self.jobs, self.training = models, queue, jobs, training

    def start(self, model_name: str, body: dict, foreground: bool = False) -> dict:
        """Check the settings, remember the crawl with its start URLs as the frontier, queue its job.
        `foreground`: the caller runs the job itself (`cllm crawl`), so no runner picks it up."""
        settings = check_settings(body)
        row = self.models.get(model_name)
        live = _live_crawl(row.id)
        if live is not None:
            raise Conflict(f"'{row.model_name}' is already crawling (crawl #{live.id}); pause or stop it first",
                           code="already_crawling")
        with db.atomic():
            crawl = Crawl.create(model=row, state="queued", settings=json.dumps(settings))
            for url in settings["start_urls"]:
                CrawlUrl.create(crawl=crawl, url=url, depth=0)
        return self._queue_job(crawl, foreground)


    def _queue_job(self, crawl: Crawl, foreground: bool) -> dict:
        job = self.jobs.submit("crawl", crawl.model.model_name, {"crawl_id": crawl.id},
                                 state="running" if foreground else "queued")
        crawl.job_id = job["id"]
        crawl.message, crawl.finished_at = None, None
        _mark(crawl, "running" if foreground else "queued")
        return describe(crawl)


    def get(self, crawl_id: int) -> dict:
        return describe(_get(crawl_id))


    def list(self, model_name: str, limit: int = 50) -> dict:
        """A model's crawls, newest first."""
        row = self.models.get(model_name)
        crawls = Crawl.select().where(Crawl.model == row).order_by(Crawl.id.desc()).limit(limit)
        return {"model_name": row.model_name, "crawls": [describe(c) for c in crawls]}


    def pause(self, crawl_id: int) -> dict:
        """Ask a crawl to end its worker after the page at hand and keep its frontier for Resume."""
        crawl = _get(crawl_id)
        state = state_of(crawl)
        if state == "queued":
            self.jobs.stop(crawl.job_id)  # it never started: the job is cancelled
            _mark(crawl, "paused", "paused before it started")
        elif state == "running":
            _mark(crawl, "pausing", "pausing after the page at hand")
        elif state not in ("pausing", "paused"):
            raise Conflict(f"crawl #{crawl.id} is {state}, not running", code="crawl_not_running")
        return describe(crawl)


    def stop(self, crawl_id: int) -> dict:
        """Ask a crawl to end; its frontier is kept, so it can still be resumed later."""
        crawl = _get(crawl_id)
        state = state_of(crawl)
        if state == "queued":
            self.jobs.stop(crawl.job_id)
            _mark(crawl, "stopped", "stopped before it started")
        elif state in ("running", "pausing"):
            if _job_state(crawl) in ("running", "paused"):
                self.jobs.stop(crawl.job_id)
            _mark(crawl, "stopping", "stopping after the page at hand")
        elif state in ("paused", "interrupted"):
            _mark(crawl, "stopped", "stopped")
        elif state not in ("stopping", "stopped"):
            raise Conflict(f"crawl #{crawl.id} has already ended ({state})", code="crawl_finished")
        return describe(crawl)


    def resume(self, crawl_id: int, foreground: bool = False) -> dict:
        """Queue a new job for a paused, stopped or interrupted crawl; it goes on from its frontier."""
        crawl = _get(crawl_id)
        state = state_of(crawl)
        if state not in RESUMABLE_STATES:
            raise Conflict(f"crawl #{crawl.id} is {state}; only a paused, stopped, interrupted or failed crawl resumes",
                           code="crawl_not_resumable")
        settings = json.loads(crawl.settings)
        if not CrawlUrl.select().where((CrawlUrl.crawl == crawl) & (CrawlUrl.status == "queued")).exists():
            raise Conflict(f"crawl #{crawl.id} has no URLs left to fetch", code="crawl_frontier_empty")
        if requested(crawl.id) >= settings["max_pages"]:
            raise Conflict(f"crawl #{crawl.id} has already fetched its max_pages ({settings['max_pages']})",
                           code="crawl_limit_reached")
        live = _live_crawl(crawl.model_id)
        if live is not None:
            raise Conflict(f"'{crawl.model.model_name}' is already crawling (crawl #{live.id})", code="already_crawling")
        return self._queue_job(crawl, foreground)


    def urls(self, crawl_id: int, status: str = "processed", offset=0, limit=50) -> dict:
        """A page of a crawl's URLs: `processed` (newest outcome first), one status, `queued`
        (the frontier in the order it will be fetched) or `all`."""
        crawl = _get(crawl_id)
        if status not in ("processed", "all", *URL_STATUSES):
            raise InvalidInput(f"status must be one of processed, all, {', '.join(URL_STATUSES)}", code="invalid_status")
        offset = as_int("offset", int(offset) if str(offset).isdigit() else -1, 0, 10**9)
        limit = as_int("limit", int(limit) if str(limit).isdigit() else -1, 1, 500)
        q = CrawlUrl.select().where(CrawlUrl.crawl == crawl)
        if status == "processed":
            q = q.where(CrawlUrl.status != "queued").order_by(CrawlUrl.fetched_at.desc(), CrawlUrl.id.desc())
        elif status == "queued":
            q = q.where(CrawlUrl.status == "queued").order_by(CrawlUrl.depth, CrawlUrl.id)
        elif status == "all":
            q = q.order_by(CrawlUrl.id)
        else:
            q = q.where(CrawlUrl.status == status).order_by(CrawlUrl.fetched_at.desc(), CrawlUrl.id.desc())
        total = q.count()
        return {
            "crawl_id": crawl.id,
            "status": status,
            "total": total,
            "offset": offset,
            "limit": limit,
            "urls": [url_json(u) for u in q.offset(offset).limit(limit)],
        }

    def add_page(self, model_id: int, result: PageResult, row: CrawlUrl) -> str:
        """Put a page's text in the model's queue like a dropped file; returns the URL's status."""
        name = LanguageModel.get_by_id(model_id).model_name
        try:
            added = self.queue.add_text(name, result.text, origin=result.final_url or result.url,
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

    def maybe_queue_training(self, crawl_id: int) -> str | None:
        """Continuous mode: queue a training job once the untrained tokens pass the crawl's
        train_after_tokens and the model has none queued or running. A model at its target trains
        one more epoch. Returns a note for the crawl's message when a job was queued, or why it
        could not be."""
        crawl = Crawl.get_by_id(crawl_id)
        threshold = json.loads(crawl.settings).get("train_after_tokens", 0)
        if threshold <= 0 or untrained_tokens(crawl.model_id) < threshold:
            return None
        if active_training(crawl.model_id) is not None:
            return None
        row = LanguageModel.get_by_id(crawl.model_id)
        settings = {"target_epochs": row.epochs_trained + 1} if row.epochs_trained >= row.target_epochs else {}
        try:
            job = self.training.start(row.model_name, settings)
        except CllmError as e:
            return f"continuous mode could not queue training: {e.message}"
        Crawl.update(trainings_queued=Crawl.trainings_queued + 1).where(Crawl.id == crawl.id).execute()
        return f"queued training job #{job['id']}"


def untrained_tokens(model_id: int) -> int:
    """Training tokens of the model's ready queue items that no epoch has used yet (their
    validation part is never trained on, so it never counts)."""
    row = LanguageModel.get_by_id(model_id)
    entries = list(QueueEntry.select(QueueEntry.id, QueueEntry.content_hash, QueueEntry.token_count,
                                     QueueEntry.holdout, QueueEntry.epochs_used)
                   .where((QueueEntry.model == model_id) & (QueueEntry.status == "ready")))
    head = heldout.plan([heldout.Item(e.id, e.content_hash, e.token_count, e.holdout) for e in entries],
                        row.validation_split, row.validation_share)
    return sum(head[e.id] for e in entries if e.epochs_used == "[]")


def next_in_frontier(crawl_id: int) -> CrawlUrl | None:
    """The URL to fetch next: breadth first (depth, then discovery order)."""
    return (
        CrawlUrl.select().where((CrawlUrl.crawl == crawl_id) & (CrawlUrl.status == "queued"))
        .order_by(CrawlUrl.depth, CrawlUrl.id).first()
    )


def known_pages(crawl_id: int) -> dict[str, str]:
    """content hash -> URL of every page the crawl took, so the same text is taken once."""
    return dict(
        CrawlUrl.select(CrawlUrl.content_hash, CrawlUrl.url)
        .where((CrawlUrl.crawl == crawl_id) & CrawlUrl.content_hash.is_null(False)).tuples()
    )


def control_of(crawl_id: int) -> str | None:
    """'pause' or 'stop' when the person asked the crawl for it, else None."""
    state = Crawl.select(Crawl.state).where(Crawl.id == crawl_id).scalar()
    if state in ("pausing", "paused"):
        return "pause"
    if state in ("stopping", "stopped"):
        return "stop"
    return None


def record(crawl_id: int, row: CrawlUrl, result: PageResult, status: str, max_depth: int, scope: Scope) -> None:
    """Write one URL's outcome and the new URLs its page links to, together: a process killed
    between the two would otherwise lose links or fetch the page again. A URL the crawl already
    knows is not added again (the unique index on crawl and URL), so a page reached twice, or a
    cycle of links, never refills the frontier."""
    with db.atomic():
        row.status = status
        row.outcome, row.reason = result.outcome, result.reason[:2000]
        row.http_status, row.final_url, row.title = result.http_status, result.final_url, result.title
        row.content_hash = result.content_hash if result.outcome == "fetched" else None
        row.fetched_at = utcnow()
        row.save()
        if result.outcome not in FOLLOWS_LINKS or row.depth >= max_depth or not result.links:
            return
        known = CrawlUrl.select().where(CrawlUrl.crawl == crawl_id).count()
        room = max(0, MAX_URL_ROWS - known)
        new, now = [], utcnow()
        for link in result.links[:room]:
            inside = scope.allows(link)
            # An off-site link is remembered once with its reason, and never fetched.
            new.append({
                "crawl": crawl_id, "url": link, "depth": row.depth + 1, "discovered_at": now,
                "status": "queued" if inside else "skipped",
                "outcome": None if inside else "off_site",
                "reason": None if inside else "outside the allowed sites",
                "fetched_at": None if inside else now,
            })
        for i in range(0, len(new), 200):
            CrawlUrl.insert_many(new[i : i + 200]).on_conflict_ignore().execute()


def end(crawl_id: int, state: str, message: str) -> None:
    """The crawl's job has ended: paused, stopped, done or failed, and why."""
    Crawl.update(state=state, message=message, updated_at=utcnow(), finished_at=utcnow()).where(
        Crawl.id == crawl_id
    ).execute()


def url_json(u: CrawlUrl) -> dict:
    return {
        "id": u.id,
        "url": u.url,
        "depth": u.depth,
        "status": u.status,
        "outcome": u.outcome,
        "reason": u.reason,
        "http_status": u.http_status,
        "final_url": u.final_url,
        "title": u.title,
        "queue_entry_id": u.queue_entry_id,
        "token_count": u.token_count,
        "fetched_at": iso(u.fetched_at, "milliseconds"),
    }


assert set(OUTCOMES.values()) <= set(URL_STATUSES)
