"""Crawl speed against a local site with the rate limit off.

    python bench/bench_crawl.py [--pages N]

Serves N generated pages (about 1 KB of text each, linked from one index) on 127.0.0.1 with
the test site (tests/crawl_site.py), then measures pages per second three ways: plain
HTTP GETs with httpx (the floor any crawler pays), our Crawler.fetch (robots.txt, redirects,
size and type checks, charset, trafilatura text, lxml links), and the whole crawl job (the
same plus the frontier in SQLite and every page added to the model's queue on disk).
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from crawl_site import CrawlSite  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=300)
    args = ap.parse_args()
    os.environ["CLLM_HOME"] = tempfile.mkdtemp(prefix="cllm-bench-crawl-")
    from cllm_app.data.crawler import Crawler, CrawlSettings
    from cllm_app.jobs.crawl import run_crawl
    from cllm_app.services.studio import Studio

    rows = []
    with CrawlSite(wide=args.pages) as site:
        urls = [site.url(f"/wide/{i}") for i in range(args.pages)]
        with httpx.Client() as client:
            t = time.perf_counter()
            for u in urls:
                client.get(u).raise_for_status()
            rows.append(("httpx GET only", args.pages / (time.perf_counter() - t)))

        crawler = Crawler(CrawlSettings([site.url("/wide/")], rate=0))
        crawler.fetch(urls[0])  # robots.txt and trafilatura's first-call set-up, outside the timing
        t = time.perf_counter()
        for u in urls:
            assert crawler.fetch(u).outcome == "fetched"
        rows.append(("Crawler.fetch (text + links)", args.pages / (time.perf_counter() - t)))
        crawler.close()

        studio = Studio()
        studio.models.create("bench", n_layer=1, n_head=2, n_embd=16, block_size=16)
        c = studio.crawls.start("bench", {"start_urls": [site.url("/wide/")], "rate": 0, "max_depth": 1,
                                                 "max_pages": args.pages + 1}, foreground=True)
        t = time.perf_counter()
        run_crawl(studio, c["job_id"])
        elapsed = time.perf_counter() - t
        done = studio.crawls.get(c["id"])
        assert done["fetched"] == args.pages + 1, done
        rows.append(("crawl job (store + queue)", done["fetched"] / elapsed))
        studio.close()

    print(f"{'what':<32}{'pages/s':>10}{'vs GET':>10}")
    for name, rate in rows:
        print(f"{name:<32}{rate:>10.1f}{rate / rows[0][1]:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
