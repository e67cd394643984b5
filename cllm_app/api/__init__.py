"""The HTTP bridge: a Flask app factory over the services. Routes stay thin."""

import mimetypes
from pathlib import Path

from flask import Flask, Response, request, send_from_directory
from werkzeug.routing import IntegerConverter

from cllm_app.api import body, errors, security
from cllm_app.api.bundles import bp as bundles_bp
from cllm_app.api.crawls import bp as crawls_bp
from cllm_app.api.events import bp as events_bp
from cllm_app.api.exports import bp as exports_bp
from cllm_app.api.jobs import bp as jobs_bp
from cllm_app.api.llm import bp as llm_bp
from cllm_app.api.models import bp as models_bp
from cllm_app.api.openai_compat import bp as openai_bp
from cllm_app.api.openai_compat import key_bp as openai_key_bp
from cllm_app.api.openapi import bp as openapi_bp
from cllm_app.api.queue import bp as queue_bp
from cllm_app.api.recipes import bp as recipes_bp
from cllm_app.api.research import bp as research_bp
from cllm_app.api.settings import bp as settings_bp
from cllm_app.api.themes import bp as themes_bp
from cllm_app.api.trash import bp as trash_bp
from cllm_app.services.studio import Studio

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

# Some platforms map .js to text/plain, and browsers refuse ES modules served that way.
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/css", ".css")


class RowIdConverter(IntegerConverter):
    """`<int:...>` in a route. SQLite keeps row ids in 64 signed bits, and a larger number
    overflowed in the query (a 500). It names no row, so it becomes -1, which names none either:
    the service answers its own 404. (A converter maximum would make werkzeug answer 405 where
    another method's rule matches the path.)"""

    def to_python(self, value: str) -> int:
        number = super().to_python(value)
        return number if number <= 2**63 - 1 else -1


def create_app(
    studio: Studio, secret: str, allowed_hosts: set[str] | None = None, for_window: bool = False
) -> Flask:
    """Build the app. `allowed_hosts` are the Host values the server answers to
    (set by the server once it knows its port); `secret` guards every /api/ request;
    `for_window` relaxes the page policy just enough for pywebview's bridge."""
    app = Flask(__name__, static_folder=None)
    app.config.update(
        STUDIO=studio,
        SECRET=secret,
        ALLOWED_HOSTS=set(allowed_hosts or ()),
        MAX_CONTENT_LENGTH=8 * 1024 * 1024,
        JSON_SORT_KEYS=False,
    )
    app.url_map.converters["int"] = RowIdConverter  # before any route is added
    security.install(app, for_window=for_window)
    app.before_request(body.check_query)  # after the guard: a stranger learns nothing of the rules
    errors.install(app)
    for bp in (models_bp, queue_bp, jobs_bp, bundles_bp, exports_bp, trash_bp, themes_bp, settings_bp, crawls_bp, research_bp, recipes_bp, openapi_bp, events_bp):
        app.register_blueprint(bp)
    app.register_blueprint(llm_bp)
    app.register_blueprint(openai_bp)
    app.register_blueprint(openai_key_bp)

    @app.after_request
    def tell_followers(response):
        # A write request has committed by now: the window's change feed (and so every open
        # window) hears of it at once instead of at the feed's next poll.
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            studio.changed()
        return response

    @app.get("/")
    def index():
        return send_from_directory(STATIC_DIR, "index.html", max_age=0)

    @app.get("/static/<path:path>")
    def static_files(path):
        return send_from_directory(STATIC_DIR, path, max_age=0)

    @app.get("/themes/<name>.css")
    def theme_css(name):
        return Response(studio.themes.css(name), mimetype="text/css", headers={"Cache-Control": "no-cache"})

    return app
