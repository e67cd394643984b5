"""The crawl itself: fetch one URL politely and turn it into text and links. No Flask, no store.

One `Crawler` holds the HTTP client, the robots.txt rules of every host it met and the
per-host rate limiter. `Crawler.fetch(url)` follows redirects itself (so every hop is checked
against the scope and robots.txt, and a loop is caught), reads at most `max_page_bytes`
while streaming, keeps only HTML and plain text, decodes it (header, then <meta>, then
charset-normalizer), extracts the page text with trafilatura and the links with lxml, and
returns a `PageResult` whose `outcome` and `reason` say what happened. The job that runs a
crawl (jobs/crawl.py) keeps the frontier in the store and decides what to fetch next.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib import robotparser
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from cllm_app import __version__

DEFAULT_USER_AGENT = f"CLLM-Studio-Crawler/{__version__}"
HTML_TYPES = ("text/html", "application/xhtml+xml")
TEXT_TYPES = ("text/plain",)
MAX_URL_LENGTH = 2000
ROBOTS_MAX_BYTES = 512 * 1024

# outcome -> the count it adds to (what the window shows as fetched / skipped / failed)
OUTCOMES = {
    "fetched": "fetched",
    "duplicate": "skipped",
    "disallowed": "skipped",
    "off_site": "skipped",
    "too_big": "skipped",
    "wrong_type": "skipped",
    "no_text": "skipped",
    "http_error": "failed",
    "timeout": "failed",
    "redirect_error": "failed",
    "network_error": "failed",
}

_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_SPACE = re.compile(r"\s+")


@dataclass
class CrawlSettings:
    """What to crawl and how politely. `allowed_domains` empty means the start URLs' own hosts."""

    start_urls: list[str]
    allowed_domains: list[str] = field(default_factory=list)
    max_depth: int = 2
    max_pages: int = 100
    max_page_bytes: int = 2 * 1024 * 1024
    rate: float = 1.0  # requests per second per host; 0 turns the limit off
    user_agent: str = DEFAULT_USER_AGENT
    timeout: float = 15.0
    max_redirects: int = 5


@dataclass
class PageResult:
    """What fetching one URL gave: an outcome with its reason, and the text and links if any."""

    url: str
    outcome: str
    reason: str
    final_url: str | None = None
    http_status: int | None = None
    title: str | None = None
    text: str | None = None
    links: list[str] = field(default_factory=list)
    content_hash: str | None = None

    @property
    def count(self) -> str:
        return OUTCOMES[self.outcome]


# ---- URLs and scope -------------------------------------------------------------------------


def normalize_url(url: str, base: str | None = None) -> str | None:
    """An absolute http(s) URL in one canonical spelling, or None when it is not one we crawl.

    The fragment goes, scheme and host are lower-cased, a default port and an empty path are
    written the one way, so the same page reached by two spellings is fetched once."""
    url = (url or "").strip()
    if not url or len(url) > MAX_URL_LENGTH:
        return None
    try:
        parts = urlsplit(urljoin(base, url) if base else url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            return None
        host = parts.hostname.lower().rstrip(".")
        port = parts.port
    except ValueError:  # a bad port or an unbalanced IPv6 bracket
        return None
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None or port == {"http": 80, "https": 443}[scheme] else f"{host}:{port}"
    path = parts.path or "/"
    return urlunsplit((scheme, netloc, path, parts.query, ""))


def host_of(url: str) -> str:
    """scheme://host[:port], the unit robots.txt and the rate limit apply to."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def clean_domain(domain: str) -> str | None:
    """A domain as a person typed it ("*.Example.org", "example.org/") → "example.org", or None."""
    d = (domain or "").strip().lower()
    if "://" in d:
        d = urlsplit(d).hostname or ""
    d = d.split("/")[0].removeprefix("*.").removeprefix(".").rstrip(".")
    if d.startswith("[") or re.fullmatch(r"[0-9.]+", d):  # an IP address is a host of its own
        return d or None
    d = d.split(":")[0]
    return d if _HOST.match(d) else None


class Scope:
    """Which URLs belong to the crawl: the start URLs' hosts (same site), or the allowed domains
    and their subdomains."""

    def __init__(self, start_urls: list[str], allowed_domains: list[str]):
        self.domains = [d for d in (clean_domain(x) for x in allowed_domains) if d]
        self.hosts = {urlsplit(u).hostname for u in start_urls}

    def allows(self, url: str) -> bool:
        host = urlsplit(url).hostname or ""
        if not self.domains:
            return host in self.hosts
        return any(host == d or host.endswith("." + d) for d in self.domains)


# ---- text -----------------------------------------------------------------------------------


def text_hash(text: str) -> str:
    """The same text up to case, spacing and Unicode form hashes the same (duplicate pages)."""
    norm = _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip().casefold()
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()


def _charset_of(content_type: str) -> str | None:
    m = re.search(r"charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", content_type or "", re.I)
    return m.group(1) if m else None


def _known(encoding: str | None) -> str | None:
    import codecs

    if not encoding:
        return None
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        return None


def decode_body(body: bytes, content_type: str, is_html: bool) -> str:
    """Bytes to text: the charset the header declares, else the page's <meta>, else UTF-8 if it
    reads as UTF-8, else what charset-normalizer finds most likely."""
    declared = _known(_charset_of(content_type))
    if declared is None and is_html:
        m = _META_CHARSET.search(body[:4096])
        declared = _known(m.group(1).decode("ascii", "ignore")) if m else None
    if declared is not None:
        return body.decode(declared, errors="replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(body).best()
    return str(best) if best is not None else body.decode("utf-8", errors="replace")


def extract_html(html: str, url: str) -> tuple[str | None, str | None, list[str]]:
    """(title, main text, links) of an HTML page; the text is trafilatura's, the links lxml's."""
    import trafilatura
    from lxml import html as lxml_html

    title, links = None, []
    try:
        doc = lxml_html.fromstring(html)
    except Exception:  # lxml refuses some documents (empty, only a comment): no links then
        doc = None
    if doc is not None:
        base = doc.xpath("string(//base/@href)").strip() or url
        found = doc.xpath("//title/text()")
        title = _SPACE.sub(" ", found[0]).strip() or None if found else None
        for a in doc.xpath("//a[@href]"):
            if "nofollow" in (a.get("rel") or "").lower():
                continue
            link = normalize_url(a.get("href"), urljoin(url, base))
            if link:
                links.append(link)
    text = trafilatura.extract(html, url=url, favor_recall=True, include_comments=False)
    return title, (text.strip() if text else None), list(dict.fromkeys(links))


# ---- politeness -----------------------------------------------------------------------------


class RateLimiter:
    """At most `rate` requests per second to each host; 0 means no limit."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_at: dict[str, float] = {}
        self.lock = threading.Lock()

    def delay(self, host: str, at_least: float = 0.0) -> float:
        """Seconds to wait before the next request to `host`; books the slot after it."""
        interval = max(self.interval, at_least)
        with self.lock:
            now = time.monotonic()
            at = max(now, self.next_at.get(host, 0.0))
            self.next_at[host] = at + interval
        return at - now


class Stopped(Exception):
    """The crawl was asked to pause or stop while waiting."""


# ---- fetching -------------------------------------------------------------------------------


class Crawler:
    """One crawl's client, robots.txt cache and rate limiter. `should_stop` is asked while
    waiting for a rate-limit slot, so pause and stop answer within a fraction of a second."""

    def __init__(
        self,
        settings: CrawlSettings,
        should_stop: Callable[[], bool] = lambda: False,
        client: httpx.Client | None = None,
    ):
        self.settings = settings
        self.scope = Scope(settings.start_urls, settings.allowed_domains)
        self.should_stop = should_stop
        self.limiter = RateLimiter(settings.rate)
        self.robots: dict[str, robotparser.RobotFileParser | str] = {}
        self.client = client or httpx.Client(
            follow_redirects=False,
            timeout=httpx.Timeout(settings.timeout),
            headers={"User-Agent": settings.user_agent, "Accept": "text/html, text/plain;q=0.9, */*;q=0.1"},
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=8),
        )

    def close(self) -> None:
        self.client.close()

    def _wait_slot(self, url: str) -> None:
        rules = self.robots.get(host_of(url))
        crawl_delay = 0.0
        if isinstance(rules, robotparser.RobotFileParser):
            crawl_delay = float(rules.crawl_delay(self.settings.user_agent) or 0.0)
        wait = self.limiter.delay(host_of(url), min(crawl_delay, 60.0))
        deadline = time.monotonic() + wait
        while True:
            if self.should_stop():
                raise Stopped()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.1))

    def _robots_for(self, url: str) -> robotparser.RobotFileParser | str:
        """The host's robots.txt rules, fetched once; a string when the host refuses all."""
        host = host_of(url)
        if host in self.robots:
            return self.robots[host]
        rules = robotparser.RobotFileParser(host + "/robots.txt")
        try:
            self._wait_slot(host + "/robots.txt")
            with self.client.stream("GET", host + "/robots.txt") as r:
                body = b""
                for chunk in r.iter_bytes():
                    body += chunk
                    if len(body) > ROBOTS_MAX_BYTES:
                        break
                status = r.status_code
        except Stopped:
            raise
        except httpx.HTTPError as e:
            # RFC 9309: an unreachable robots.txt means the site is off limits for now.
            result: robotparser.RobotFileParser | str = f"its robots.txt could not be fetched ({_net_reason(e)})"
        else:
            if status >= 500:
                result = f"its robots.txt answered HTTP {status}, so the site is treated as off limits"
            elif status >= 400 or status in range(300, 400):
                rules.parse([])  # no robots.txt (or a redirect we do not follow): everything allowed
                result = rules
            else:
                rules.parse(body.decode("utf-8", errors="replace").splitlines())
                result = rules
        self.robots[host] = result
        return result

    def allowed_by_robots(self, url: str) -> tuple[bool, str]:
        rules = self._robots_for(url)
        if isinstance(rules, str):
            return False, rules
        if rules.can_fetch(self.settings.user_agent, url):
            return True, ""
        return False, "robots.txt disallows it"

    def fetch(self, url: str) -> PageResult:
        """Fetch one in-scope URL (robots.txt, redirects, size, type, text, links)."""
        s = self.settings
        chain = [url]
        current = url
        for _hop in range(s.max_redirects + 1):
            ok, why = self.allowed_by_robots(current)
            if not ok:
                return PageResult(url, "disallowed", why, final_url=current)
            self._wait_slot(current)
            try:
                with self.client.stream("GET", current) as r:
                    if r.is_redirect:
                        target = normalize_url(r.headers.get("location", ""), current)
                        if target is None:
                            return PageResult(url, "redirect_error", f"HTTP {r.status_code} redirect to a URL that is not http(s)",
                                              final_url=current, http_status=r.status_code)
                        if target in chain:
                            return PageResult(url, "redirect_error", f"redirect loop after {len(chain)} hops",
                                              final_url=target, http_status=r.status_code)
                        if not self.scope.allows(target):
                            return PageResult(url, "off_site", f"redirects off the allowed sites to {target}",
                                              final_url=target, http_status=r.status_code)
                        chain.append(target)
                        current = target
                        continue
                    return self._read(url, current, r)
            except httpx.TimeoutException:
                return PageResult(url, "timeout", f"no answer within {s.timeout:g} s", final_url=current)
            except httpx.HTTPError as e:
                return PageResult(url, "network_error", _net_reason(e), final_url=current)
        return PageResult(url, "redirect_error", f"more than {s.max_redirects} redirects", final_url=current)

    def _read(self, url: str, final: str, r: httpx.Response) -> PageResult:
        s = self.settings
        status = r.status_code
        if status >= 400 or status < 200:
            return PageResult(url, "http_error", f"HTTP {status} {r.reason_phrase}".strip(), final_url=final, http_status=status)
        content_type = r.headers.get("content-type", "")
        mime = content_type.split(";")[0].strip().lower()
        is_html = mime in HTML_TYPES
        if not is_html and mime not in TEXT_TYPES:
            return PageResult(url, "wrong_type", f"it is {mime or 'of no declared type'}, not HTML or plain text",
                              final_url=final, http_status=status)
        declared = r.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > s.max_page_bytes:
            return PageResult(url, "too_big", f"it is {int(declared):,} bytes, more than the {s.max_page_bytes:,} allowed",
                              final_url=final, http_status=status)
        body = bytearray()
        deadline = time.monotonic() + s.timeout * 4  # a page that trickles in forever is a timeout too
        for chunk in r.iter_bytes():
            body += chunk
            if len(body) > s.max_page_bytes:
                return PageResult(url, "too_big", f"it is more than the {s.max_page_bytes:,} bytes allowed",
                                  final_url=final, http_status=status)
            if time.monotonic() > deadline:
                return PageResult(url, "timeout", f"it took longer than {s.timeout * 4:g} s to arrive", final_url=final, http_status=status)
        raw = bytes(body)
        if not is_html and b"\x00" in raw[:8192]:
            return PageResult(url, "wrong_type", "it says plain text but holds binary data", final_url=final, http_status=status)
        text = decode_body(raw, content_type, is_html)
        if is_html:
            title, page_text, links = extract_html(text, final)
        else:
            title, page_text, links = None, text.replace("\r\n", "\n").strip(), []
        links = [link for link in links if link != final]
        if not page_text:
            return PageResult(url, "no_text", "no readable text on the page", final_url=final, http_status=status,
                              title=title, links=links)
        return PageResult(url, "fetched", f"HTTP {status}", final_url=final, http_status=status, title=title,
                          text=page_text, links=links, content_hash=text_hash(page_text))


def _net_reason(e: httpx.HTTPError) -> str:
    if isinstance(e, httpx.TimeoutException):
        return "it did not answer in time"
    if isinstance(e, httpx.ConnectError):
        return "the connection was refused or the host is unknown"
    return f"{type(e).__name__}: {e}".rstrip(": ")
