"""The crawler on its own (no store): URLs, scope, charsets, and every kind of page of a real
local site, each with the outcome and reason a person reads."""

import time

import pytest
from crawl_site import CP1252_TEXT, SJIS_TEXT, CrawlSite

from cllm_app.data.crawler import (
    Crawler,
    CrawlSettings,
    RateLimiter,
    Scope,
    Stopped,
    clean_domain,
    decode_body,
    normalize_url,
    text_hash,
)


@pytest.fixture(scope="module")
def site():
    with CrawlSite(slow_seconds=2.0) as s:
        yield s


@pytest.fixture
def crawler(site):
    c = Crawler(CrawlSettings([site.url("/")], rate=0, timeout=0.5, max_page_bytes=200_000))
    yield c
    c.close()


@pytest.mark.parametrize(
    "raw, base, expected",
    [
        ("HTTP://Example.ORG", None, "http://example.org/"),
        ("https://example.org:443/a?b=1#frag", None, "https://example.org/a?b=1"),
        ("http://example.org:8080/x", None, "http://example.org:8080/x"),
        ("../c", "http://example.org/a/b/", "http://example.org/a/c"),
        ("mailto:a@b.org", None, None),
        ("javascript:alert(1)", "http://example.org/", None),
        ("ftp://example.org/f", None, None),
        ("file:///etc/passwd", None, None),
        ("http://", None, None),
        ("http://example.org:99999/", None, None),
        ("", None, None),
        ("http://example.org/" + "a" * 3000, None, None),
    ],
)
def test_normalize_url(raw, base, expected):
    assert normalize_url(raw, base) == expected


def test_scope_same_site_or_allowed_domains():
    same = Scope(["http://example.org/start"], [])
    assert same.allows("http://example.org/other") and not same.allows("http://www.example.org/")
    domains = Scope(["http://example.org/"], ["*.Example.org", "docs.python.org/"])
    assert domains.allows("http://www.example.org/x") and domains.allows("https://docs.python.org/3/")
    assert not domains.allows("http://notexample.org/") and not domains.allows("http://python.org/")
    assert clean_domain("https://Sub.Example.org/path") == "sub.example.org"
    assert clean_domain("bad domain") is None and clean_domain("") is None


def test_charsets_header_meta_and_guess():
    sjis = SJIS_TEXT.encode("shift_jis")
    assert decode_body(sjis, "text/html; charset=Shift_JIS", True) == SJIS_TEXT
    cp = f'<meta charset="windows-1252"><p>{CP1252_TEXT}</p>'.encode("cp1252")
    assert CP1252_TEXT in decode_body(cp, "text/html", True)
    assert decode_body("plain ünïcode".encode(), "text/plain", False) == "plain ünïcode"
    # no declaration and not UTF-8: charset-normalizer's best guess still reads the words
    guessed = decode_body(("Grüße aus München, schöne Straße. " * 20).encode("latin-1"), "text/plain", False)
    assert "München" in guessed
    # an unknown declared charset falls back instead of failing
    assert decode_body(b"hello", "text/plain; charset=no-such-charset", False) == "hello"


def test_text_hash_ignores_case_and_spacing():
    assert text_hash("Hello   World\n") == text_hash("hello world")
    assert text_hash("hello world") != text_hash("hello there")


def test_rate_limiter_spaces_requests_per_host():
    limiter = RateLimiter(10.0)
    waits = [limiter.delay("http://a") for _ in range(3)]
    assert waits[0] == 0 and 0.09 < waits[1] < 0.11 and 0.19 < waits[2] < 0.21
    assert limiter.delay("http://b") == 0  # another host has its own budget
    assert RateLimiter(0).delay("http://a") == 0 and RateLimiter(0).delay("http://a") == 0


def test_a_page_gives_text_title_and_in_page_links(site, crawler):
    r = crawler.fetch(site.url("/"))
    assert (r.outcome, r.count, r.http_status, r.title) == ("fetched", "fetched", 200, "Home")
    assert len(r.text) > 200 and r.content_hash == text_hash(r.text)
    assert site.url("/a") in r.links and site.url("/notes.txt") in r.links
    assert f"http://localhost:{site.port}/elsewhere" in r.links  # kept; the scope decides later
    assert not any(link.startswith("mailto:") or "#" in link for link in r.links)
    assert len(r.links) == len(set(r.links))


@pytest.mark.parametrize(
    "path, outcome, count, reason",
    [
        ("/private/secret", "disallowed", "skipped", "robots.txt disallows it"),
        ("/loop1", "redirect_error", "failed", "redirect loop"),
        ("/missing", "http_error", "failed", "HTTP 404"),
        ("/error", "http_error", "failed", "HTTP 500"),
        ("/image.png", "wrong_type", "skipped", "image/png, not HTML or plain text"),
        ("/huge", "too_big", "skipped", "more than the 200,000 allowed"),
        ("/huge-stream", "too_big", "skipped", "more than the 200,000 bytes allowed"),
        ("/slow", "timeout", "failed", "no answer within 0.5 s"),
    ],
)
def test_each_kind_of_bad_page_has_its_outcome_and_reason(site, crawler, path, outcome, count, reason):
    r = crawler.fetch(site.url(path))
    assert (r.outcome, r.count) == (outcome, count)
    assert reason in r.reason
    assert r.text is None


def test_redirect_chain_is_followed_to_its_page(site, crawler):
    r = crawler.fetch(site.url("/redirect1"))
    assert r.outcome == "fetched" and r.final_url == site.url("/target") and r.title == "Target"


def test_redirect_limit_and_off_site_redirects(site):
    c = Crawler(CrawlSettings([site.url("/")], rate=0, max_redirects=1))
    r = c.fetch(site.url("/redirect1"))
    assert r.outcome == "redirect_error" and "more than 1 redirects" in r.reason
    c.close()
    # /redirect2 points at 127.0.0.1; a crawl scoped to "localhost" may not follow it
    c = Crawler(CrawlSettings([f"http://localhost:{site.port}/"], rate=0))
    r = c.fetch(f"http://localhost:{site.port}/redirect2")
    assert r.outcome == "off_site" and site.url("/target") in r.reason
    c.close()


def test_non_utf8_pages_are_decoded(site, crawler):
    sjis = crawler.fetch(site.url("/sjis"))
    assert sjis.outcome == "fetched" and SJIS_TEXT in sjis.text and sjis.title == "方丈記"
    cp = crawler.fetch(site.url("/cp1252"))
    assert cp.outcome == "fetched" and CP1252_TEXT in cp.text


def test_plain_text_is_kept_as_it_is_and_duplicates_hash_alike(site, crawler):
    notes = crawler.fetch(site.url("/notes.txt"))
    assert notes.outcome == "fetched" and notes.text.startswith("Notes.\n") and notes.links == []
    assert crawler.fetch(site.url("/dup1")).content_hash == crawler.fetch(site.url("/dup2")).content_hash


def test_a_dead_host_is_a_network_error():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = Crawler(CrawlSettings([f"http://127.0.0.1:{port}/"], rate=0, timeout=2))
    r = c.fetch(f"http://127.0.0.1:{port}/")
    # robots.txt cannot be fetched either: RFC 9309 says treat the site as off limits
    assert r.outcome == "disallowed" and "robots.txt could not be fetched" in r.reason
    c.close()


def test_waiting_for_a_rate_slot_answers_a_stop_at_once(site):
    stop = [False]
    c = Crawler(CrawlSettings([site.url("/")], rate=0.2), should_stop=lambda: stop[0])
    assert c.fetch(site.url("/a")).outcome == "fetched"
    stop[0] = True
    t = time.monotonic()
    with pytest.raises(Stopped):
        c.fetch(site.url("/b"))  # the next slot is 5 s away
    assert time.monotonic() - t < 0.5
    c.close()
