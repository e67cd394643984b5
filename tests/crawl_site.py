"""A real little web site on 127.0.0.1 for the crawler's tests, the browser test and the bench.

`CrawlSite` serves, from a threaded HTTP server on a free port: a tree of linked pages (depth),
a robots.txt that disallows /private/, a redirect chain 301 -> 302 -> page, a redirect loop,
404 and 500, a PNG, a huge page (with and without Content-Length), a slow page, pages in
Shift-JIS (declared in the header) and cp1252 (declared only in <meta>), two URLs with the
same text (only the second links on, to /after-dup), a plain-text file, and links to another
host. `hits` counts the requests per path.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORDS = (
    "river morning light garden window letter voice winter city road house friend evening story "
    "quiet bright slow early old small green warm distant open heavy gentle sudden walked said "
    "found kept turned wrote carried waited watched remembered opened followed the a of and to in"
).split()

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f"
    b"\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00"
    b"\x00IEND\xaeB`\x82"
)
SJIS_TEXT = "川の流れは絶えずして、しかももとの水にあらず。よどみに浮かぶうたかたは、かつ消えかつ結びて、久しくとどまりたるためしなし。"
CP1252_TEXT = "Café society met at the théâtre; “quoted” words and naïve façades — all in cp1252."


def sentences(seed: str, n: int = 6) -> str:
    """A few sentences of English-looking words, the same for the same seed."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(8, 14))]
        out.append(" ".join(words).capitalize() + ".")
    return " ".join(out)


def html_page(title: str, body_text: str, links: list[str] = (), head: str = "") -> str:
    paras = "".join(f"<p>{p}</p>" for p in body_text.split("\n") if p)
    nav = "".join(f'<li><a href="{href}">{href}</a></li>' for href in links)
    return (
        f"<!doctype html><html><head><title>{title}</title>{head}</head><body>"
        f"<nav><ul>{nav}</ul></nav><article><h1>{title}</h1>{paras}</article></body></html>"
    )


class _QuietServer(ThreadingHTTPServer):
    """The site's server, minus the traceback socketserver prints when a crawler hangs up
    mid-page (as it must on a huge or slow page): that is the test working, not a failure."""

    def handle_error(self, request, client_address):
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class CrawlSite:
    """The site; use as a context manager or start()/stop(). `slow_seconds` is how long /slow waits."""

    def __init__(self, slow_seconds: float = 3.0, huge_bytes: int = 3 * 1024 * 1024, wide: int = 0):
        self.slow_seconds = slow_seconds
        self.huge_bytes = huge_bytes
        self.wide = wide  # /wide/ links this many extra pages (the bench's site)
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    # ---- the pages -------------------------------------------------------------------------

    def pages(self) -> dict[str, tuple[int, dict, bytes]]:
        other = f"http://localhost:{self.port}/elsewhere"
        index_links = [
            "/a", "/b", "/private/secret", "/redirect1", "/loop1", "/missing", "/error",
            "/image.png", "/huge", "/huge-stream", "/slow", "/sjis", "/cp1252", "/dup1", "/dup2",
            "/notes.txt", other, "http://example.invalid/page", "mailto:someone@example.invalid",
            "/a#section",
        ]
        html = "text/html; charset=utf-8"
        p: dict[str, tuple[int, dict, bytes]] = {
            "/robots.txt": (200, {"Content-Type": "text/plain"}, b"User-agent: *\nDisallow: /private/\n"),
            "/": (200, {"Content-Type": html}, html_page("Home", sentences("home"), index_links).encode()),
            "/a": (200, {"Content-Type": html}, html_page("Page A", sentences("a"), ["/a/1", "/a/2", "/"]).encode()),
            "/a/1": (200, {"Content-Type": html}, html_page("Page A1", sentences("a1"), ["/a/1/deep"]).encode()),
            "/a/2": (200, {"Content-Type": html}, html_page("Page A2", sentences("a2")).encode()),
            "/a/1/deep": (200, {"Content-Type": html}, html_page("Deep", sentences("deep")).encode()),
            "/b": (200, {"Content-Type": html}, html_page("Page B", sentences("b"), ["/notes.txt"]).encode()),
            "/private/secret": (200, {"Content-Type": html}, html_page("Secret", sentences("secret")).encode()),
            "/redirect1": (301, {"Location": "/redirect2"}, b""),
            "/redirect2": (302, {"Location": f"http://127.0.0.1:{self.port}/target"}, b""),
            "/target": (200, {"Content-Type": html}, html_page("Target", sentences("target")).encode()),
            "/loop1": (302, {"Location": "/loop2"}, b""),
            "/loop2": (302, {"Location": "/loop1"}, b""),
            "/missing": (404, {"Content-Type": html}, b"<html><body><p>Not found</p></body></html>"),
            "/error": (500, {"Content-Type": html}, b"<html><body><p>Server error</p></body></html>"),
            "/image.png": (200, {"Content-Type": "image/png"}, PNG),
            "/sjis": (200, {"Content-Type": "text/html; charset=Shift_JIS"},
                      html_page("方丈記", SJIS_TEXT + "\n" + SJIS_TEXT[::-1]).encode("shift_jis")),
            "/cp1252": (200, {"Content-Type": "text/html"},
                        html_page("Cafe", CP1252_TEXT + "\n" + sentences("cp"),
                                  head='<meta charset="windows-1252">').encode("cp1252")),
            "/dup1": (200, {"Content-Type": html}, html_page("Same", sentences("same")).encode()),
            # The links are in the <nav>, which is not the page's text: both pages hash alike.
            "/dup2": (200, {"Content-Type": html}, html_page("Same", sentences("same"), ["/after-dup", "/dup1"]).encode()),
            "/after-dup": (200, {"Content-Type": html}, html_page("After dup", sentences("after-dup"), ["/dup2"]).encode()),
            "/notes.txt": (200, {"Content-Type": "text/plain; charset=utf-8"}, ("Notes.\n" + sentences("notes")).encode()),
            "/elsewhere": (200, {"Content-Type": html}, html_page("Elsewhere", sentences("elsewhere")).encode()),
        }
        if self.wide:
            p["/wide/"] = (200, {"Content-Type": html},
                           html_page("Wide", sentences("wide"), [f"/wide/{i}" for i in range(self.wide)]).encode())
            for i in range(self.wide):
                p[f"/wide/{i}"] = (200, {"Content-Type": html},
                                   html_page(f"Wide {i}", sentences(f"wide{i}", 12), [f"/wide/{(i + 1) % self.wide}"]).encode())
        return p

    # ---- serving ---------------------------------------------------------------------------

    def start(self) -> CrawlSite:
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as two writes; no 40 ms stall

            def log_message(self, *args):  # keep the test output quiet
                pass

            def do_GET(self):
                path = self.path.split("?")[0]
                with site.lock:
                    site.hits[path] += 1
                if path == "/slow":
                    time.sleep(site.slow_seconds)
                    return self._send(200, {"Content-Type": "text/html"}, html_page("Slow", sentences("slow")).encode())
                if path in ("/huge", "/huge-stream"):
                    return self._huge(path == "/huge")
                page = site.cached.get(path) if site.cached else None
                if page is None:
                    return self._send(404, {"Content-Type": "text/html"}, b"<html><body><p>Not found</p></body></html>")
                self._send(*page)

            def _send(self, status, headers, body):
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _huge(self, with_length):
                chunk = html_page("Huge", sentences("huge", 40)).encode()
                n = site.huge_bytes // len(chunk) + 1
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    if with_length:
                        self.send_header("Content-Length", str(len(chunk) * n))
                    else:
                        self.send_header("Connection", "close")
                        self.close_connection = True
                    self.end_headers()
                    for _ in range(n):
                        self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.cached = None
        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.cached = self.pages()
        threading.Thread(target=self.server.serve_forever, name="crawl-site", daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def __enter__(self) -> CrawlSite:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"
