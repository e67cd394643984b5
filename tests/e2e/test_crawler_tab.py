"""The Crawler tab in Chromium against the real app: crawl the local test site, watch the
counts and each URL's outcome, pause and resume, see the pages in the model's queue through
the API, then train on them from the Training tab and see the job run.
A screenshot of the tab is saved to tests/artifacts/crawler-tab.png."""

import pytest
from crawl_site import CrawlSite
from e2e_support import ARTIFACTS, TINY_SETTINGS, TINY_SHAPE, eventually, open_tab
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


@pytest.fixture
def site():
    with CrawlSite(slow_seconds=3.0, wide=8) as s:
        yield s


def fill_form(page, urls, **values):
    page.get_by_test_id("crawl-start-urls").fill("\n".join(urls))
    for name, value in values.items():
        page.get_by_test_id(f"crawl-{name}").fill(str(value))


def test_crawl_the_local_site_then_train_on_it(page, app, site):
    app.create("Web", **TINY_SHAPE)
    app.api("PUT", "/api/settings", {"selected_model": "Web"}, expect_status=200)
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    open_tab(page, "crawler")
    expect(page.locator('#panel-crawler [data-testid="summary-name"]')).to_have_text("Web")
    expect(page.get_by_test_id("crawl-none")).to_be_visible()
    expect(page.get_by_test_id("crawl-history-empty")).to_be_visible()

    # Bad input is refused with the reason, and nothing starts.
    fill_form(page, ["ftp://example.org/"])
    page.get_by_test_id("crawl-start").click()
    expect(page.get_by_test_id("crawl-error")).to_contain_text("not an http")
    fill_form(page, [site.url("/")], max_depth=-1)
    page.get_by_test_id("crawl-start").click()
    expect(page.get_by_test_id("crawl-error")).to_contain_text("max_depth")
    expect(page.get_by_test_id("crawl-max_depth")).to_have_attribute("aria-invalid", "true")
    assert app.api("GET", "/api/models/Web/crawls", expect_status=200)[1]["crawls"] == []

    # The whole site, one level deep: every kind of page shows its outcome.
    fill_form(page, [site.url("/")], max_depth=1, rate=0, timeout=1, max_page_bytes=200_000)
    page.get_by_test_id("crawl-start").click()
    state = page.get_by_test_id("crawl-status").get_by_test_id("crawl-state")
    expect(state).to_have_attribute("data-state", "done", timeout=30_000)
    crawl = app.api("GET", "/api/models/Web/crawls", expect_status=200)[1]["crawls"][0]
    for key in ("fetched", "skipped", "failed", "queued"):
        expect(page.get_by_test_id(f"crawl-count-{key}")).to_have_text(f"{crawl[key]:,}")
    assert crawl["fetched"] == 8 and crawl["failed"] == 4 and crawl["queued"] == 0
    table = page.get_by_test_id("crawl-urls-table")
    for outcome in ("fetched", "disallowed", "http_error", "timeout", "too_big", "wrong_type", "duplicate", "off_site"):
        expect(table.locator(f'tr[data-outcome="{outcome}"]').first).to_be_visible()
    expect(table.locator(f'tr[data-url="{site.url("/missing")}"]')).to_contain_text("HTTP 404")
    expect(page.get_by_test_id("crawl-message")).to_contain_text("No URLs left to fetch")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "crawler-tab.png"))

    # Pause a slower crawl, then resume it: it goes on and finishes.
    fill_form(page, [site.url("/wide/")], max_depth=1, rate=4)
    page.get_by_test_id("crawl-start").click()
    expect(state).to_have_attribute("data-state", "running")
    eventually(lambda: app.api("GET", "/api/models/Web/crawls")[1]["crawls"][0]["fetched"] >= 2, timeout=20)
    page.get_by_test_id("crawl-pause").click()
    expect(state).to_have_attribute("data-state", "paused")
    expect(page.get_by_test_id("crawl-resume")).to_be_enabled()
    expect(page.get_by_test_id("crawl-start")).to_be_enabled()
    page.get_by_test_id("crawl-resume").click()
    expect(state).to_have_attribute("data-state", "done", timeout=20_000)
    expect(page.get_by_test_id("crawl-count-fetched")).to_have_text("9")
    expect(page.get_by_test_id("crawl-history-item")).to_have_count(2)
    assert site.hits["/wide/"] == 1 and all(site.hits[f"/wide/{i}"] == 1 for i in range(8))

    # The pages are in the model's queue, like dropped files.
    queue = app.api("GET", "/api/models/Web/queue", expect_status=200)[1]
    assert len(queue["items"]) == 17 and {i["source_kind"] for i in queue["items"]} == {"crawl"}
    assert site.url("/wide/3") in {i["origin"] for i in queue["items"]}

    # Every view of the queue ends on the crawl's last count, without a reload: this tab's
    # summary, and the Training tab's rows and table (the crawl added items many times a second,
    # and their view once stayed on a count from the middle of it).
    final = f"17 items · {queue['tokens']:,} tokens"
    expect(page.locator('#panel-crawler [data-testid="model-summary"]')).to_contain_text(final)

    # Train on them from the Training tab.
    open_tab(page, "training")
    expect(page.get_by_test_id("info-queue")).to_have_text(final)
    expect(page.get_by_test_id("queue-summary")).to_have_text(final)
    panel = page.locator("#panel-training")
    for name, value in {**TINY_SETTINGS, "target_epochs": 1}.items():
        panel.get_by_label(name, exact=True).fill(str(value))
    page.get_by_test_id("training-start").click()
    expect(page.get_by_test_id("job-state")).to_have_attribute("data-state", "done", timeout=120_000)
    model = app.api("GET", "/api/models/Web", expect_status=200)[1]
    assert model["epochs_trained"] == 1 and model["steps_trained"] > 0
