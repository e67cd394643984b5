"""/api/models/<name>/crawls and /api/crawls: start, watch, pause, stop and resume crawls."""

from flask import Blueprint, jsonify, request

from cllm_app.api.body import json_body
from cllm_app.api.context import studio

bp = Blueprint("crawls", __name__, url_prefix="/api")


@bp.post("/models/<path:model_name>/crawls")
def start_crawl(model_name):
    """Start a crawl for a model: start URLs, scope, limits, rate, user agent, continuous mode."""
    body = json_body("a crawl")
    return jsonify(studio().crawls.start(model_name, body)), 202


@bp.get("/models/<path:model_name>/crawls")
def list_crawls(model_name):
    """A model's crawls, newest first, with their counts."""
    return studio().crawls.list(model_name)


@bp.get("/crawls/<int:crawl_id>")
def get_crawl(crawl_id):
    """One crawl: state, settings and counts (queued, fetched, skipped, failed, tokens)."""
    return studio().crawls.get(crawl_id)


@bp.get("/crawls/<int:crawl_id>/urls")
def crawl_urls(crawl_id):
    """A page of a crawl's URLs with their outcome and reason (newest first by default)."""
    args = request.args
    return studio().crawls.urls(
        crawl_id, args.get("status", "processed"), args.get("offset", "0"), args.get("limit", "50")
    )


@bp.post("/crawls/<int:crawl_id>/pause")
def pause_crawl(crawl_id):
    """Pause after the page at hand; the frontier is kept for Resume."""
    return studio().crawls.pause(crawl_id)


@bp.post("/crawls/<int:crawl_id>/stop")
def stop_crawl(crawl_id):
    """Stop after the page at hand; the frontier is kept, so it can still resume."""
    return studio().crawls.stop(crawl_id)


@bp.post("/crawls/<int:crawl_id>/resume")
def resume_crawl(crawl_id):
    """Go on with a paused, stopped or interrupted crawl from its frontier."""
    return jsonify(studio().crawls.resume(crawl_id)), 202
