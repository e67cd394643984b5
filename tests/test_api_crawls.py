"""The crawl routes through Flask's test client: start, list, pause, stop, resume, URL outcomes,
and every bad input refused as JSON with a 4xx (no runner here: jobs stay queued)."""

import pytest
from crawl_site import CrawlSite

from cllm_app.jobs.crawl import run_crawl


@pytest.fixture
def client(client):
    client.post("/api/models", json={"model_name": "web", "n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16})
    return client


def _err(response, status, code=None):
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert error["message"]
    if code:
        assert error["code"] == code
    return error


def test_start_pause_resume_stop_over_http(client):
    r = client.post("/api/models/web/crawls", json={"start_urls": ["http://127.0.0.1:9/"], "max_pages": 5})
    assert r.status_code == 202
    crawl = r.get_json()
    assert crawl["state"] == "queued" and crawl["settings"]["max_pages"] == 5 and crawl["queued"] == 1
    assert crawl["settings"]["allowed_domains"] == [] and crawl["settings"]["rate"] == 1.0
    _err(client.post("/api/models/web/crawls", json={"start_urls": ["http://127.0.0.1:9/"]}), 409, "already_crawling")
    job = client.get(f"/api/jobs/{crawl['job_id']}").get_json()
    assert job["kind"] == "crawl" and job["params"] == {"crawl_id": crawl["id"]}
    assert client.post(f"/api/crawls/{crawl['id']}/pause").get_json()["state"] == "paused"
    resumed = client.post(f"/api/crawls/{crawl['id']}/resume")
    assert resumed.status_code == 202 and resumed.get_json()["state"] == "queued"
    assert client.post(f"/api/crawls/{crawl['id']}/stop").get_json()["state"] == "stopped"
    _err(client.post(f"/api/crawls/{crawl['id']}/pause"), 409, "crawl_not_running")
    listed = client.get("/api/models/web/crawls").get_json()
    assert [c["id"] for c in listed["crawls"]] == [crawl["id"]] and listed["model_name"] == "web"
    assert client.get(f"/api/crawls/{crawl['id']}").get_json()["resumable"] is True


def test_url_outcomes_over_http(client, studio):
    with CrawlSite() as site:
        crawl = client.post("/api/models/web/crawls", json={
            "start_urls": [site.url("/a")], "rate": 0, "max_depth": 1,
        }).get_json()
        assert run_crawl(studio, crawl["job_id"]) == "done"
    body = client.get(f"/api/crawls/{crawl['id']}/urls?limit=2").get_json()
    assert body["total"] == 4 and len(body["urls"]) == 2 and body["status"] == "processed"
    assert {"url", "outcome", "reason", "status", "token_count", "title"} <= set(body["urls"][0])
    fetched = client.get(f"/api/crawls/{crawl['id']}/urls?status=fetched&limit=50").get_json()["urls"]
    assert {u["outcome"] for u in fetched} == {"fetched"} and len(fetched) == 4
    queue = client.get("/api/models/web/queue").get_json()
    assert len(queue["items"]) == 4 and {i["source_kind"] for i in queue["items"]} == {"crawl"}
    _err(client.get(f"/api/crawls/{crawl['id']}/urls?status=bogus"), 400, "invalid_status")
    _err(client.get(f"/api/crawls/{crawl['id']}/urls?limit=-3"), 400, "invalid_limit")
    _err(client.get(f"/api/crawls/{crawl['id']}/urls?offset=x"), 400, "invalid_offset")


@pytest.mark.parametrize(
    "body, code",
    [
        ({"start_urls": ["javascript:alert(1)"]}, "invalid_start_urls"),
        ({"start_urls": ["file:///etc/passwd"]}, "invalid_start_urls"),
        ({"start_urls": "http://a.org/ ftp://b.org/"}, "invalid_start_urls"),
        ({"start_urls": []}, "invalid_start_urls"),
        ({"start_urls": ["http://a.org/"], "max_depth": -2}, "invalid_max_depth"),
        ({"start_urls": ["http://a.org/"], "max_pages": -1}, "invalid_max_pages"),
        ({"start_urls": ["http://a.org/"], "rate": 1000}, "invalid_rate"),
        ({"start_urls": ["http://a.org/"], "timeout": 0}, "invalid_timeout"),
        ({"start_urls": ["http://a.org/"], "allowed_domains": "b.org"}, "invalid_allowed_domains"),
        ({"start_urls": ["http://a.org/"], "bogus": 1}, "unknown_field"),
        ([1, 2], "invalid_input"),
    ],
)
def test_bad_crawl_requests_are_4xx_json(client, body, code):
    _err(client.post("/api/models/web/crawls", json=body), 400, code)
    assert client.get("/api/models/web/crawls").get_json()["crawls"] == []


def test_unknown_model_and_crawl_are_404(client):
    _err(client.post("/api/models/nobody/crawls", json={"start_urls": ["http://a.org/"]}), 404, "model_not_found")
    _err(client.get("/api/models/nobody/crawls"), 404, "model_not_found")
    for path in ("/api/crawls/77", "/api/crawls/77/urls"):
        _err(client.get(path), 404, "crawl_not_found")
    for action in ("pause", "stop", "resume"):
        _err(client.post(f"/api/crawls/77/{action}"), 404, "crawl_not_found")
    _err(client.post("/api/models/web/crawls", data="{not json", content_type="application/json"), 400)
