"""Only the app's own window may drive the app; OpenAI clients may use /v1/ and nothing else.

The server binds 127.0.0.1, but any web page the person opens could still send requests
there. So: every request must carry a Host header naming the bound address (this defeats DNS
rebinding; a request with none is refused rather than given the bound address by default),
and a cross-site Origin is refused. Then two keys, each for its own routes:

- /api/ takes only the launch secret, made at each launch and given only to the window, in
  the X-CLLM-Token header. A URL's `?token=` is taken only where no header can be sent: a GET
  asking for an event stream (EventSource), and then only an event stream is answered, so a
  URL that leaked (history, a log, a screenshot) cannot read or change anything else.
- /v1/ (the OpenAI-compatible routes) takes only the OpenAI key (services/openai_key.py), as
  `Authorization: Bearer <key>`, the way OpenAI clients send it. That key is pasted into
  other programs, so it opens nothing under /api/; and the launch secret does not open /v1/
  (the window has no need of it: the LLM tab talks to /api/).
"""

import hmac

from flask import Flask, abort, current_app, g, request

from cllm_app.api.context import studio
from cllm_app.api.errors import error_response
from cllm_app.errors import CllmError

TOKEN_HEADER = "X-CLLM-Token"
EVENT_STREAM = "text/event-stream"


class WrongApiKey(CllmError):
    status = 401  # as OpenAI answers a wrong key, so clients say "check your API key"
    code = "invalid_api_key"


def _origin_allowed(origin: str, hosts: set[str]) -> bool:
    return any(origin == f"http://{host}" for host in hosts)


def _wants_event_stream() -> bool:
    accepted = [part.split(";")[0].strip().lower() for part in request.headers.get("Accept", "").split(",")]
    return request.method == "GET" and accepted == [EVENT_STREAM]


def _bearer() -> str:
    auth = request.headers.get("Authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else ""


def _check_launch_secret() -> None:
    given = request.headers.get(TOKEN_HEADER, "")
    if not given and "token" in request.args:
        if not _wants_event_stream():
            abort(403, description="the token goes in the X-CLLM-Token header; in the URL it is "
                                   "accepted only for event streams (GET with Accept: text/event-stream)")
        given = request.args["token"]
        g.token_in_url = True
    if not given or not hmac.compare_digest(given.encode(), current_app.config["SECRET"].encode()):
        abort(403, description="missing or wrong token: open the app through the URL it printed")


def _check_openai_key() -> None:
    if not studio().openai_key.matches(_bearer()):
        raise WrongApiKey("missing or wrong API key: copy this app's OpenAI key from the LLM tab "
                          "and send it as 'Authorization: Bearer <key>'")


def check_request() -> None:
    hosts = current_app.config["ALLOWED_HOSTS"]
    # Without a Host header werkzeug would fill in the bound address itself.
    if not request.environ.get("HTTP_HOST"):
        abort(403, description="a request must name this server's address in its Host header")
    if request.host not in hosts:
        abort(403, description="this server only answers requests addressed to its own address")
    origin = request.headers.get("Origin")
    if origin is not None and not _origin_allowed(origin, hosts):
        abort(403, description="requests from other web pages are not allowed")
    if request.path.startswith("/api/"):
        _check_launch_secret()
    elif request.path.startswith("/v1/"):
        _check_openai_key()


def only_streams_for_url_tokens(response):
    """A token taken from the URL opens an event stream, not whatever route the URL names."""
    if g.get("token_in_url") and response.mimetype != EVENT_STREAM:
        response.close()  # let a stream that was set up free what it holds
        return error_response(403, "forbidden", "a token in the URL opens only event streams")
    return response


def content_policy(for_window: bool) -> str:
    """The page may load only the app's own files. The desktop window's server also allows
    eval, because pywebview builds `window.pywebview.api` with `new Function` and runs
    `evaluate_js` through `eval`; that server's URL and secret go only to that window."""
    script = "script-src 'self' 'unsafe-eval'" if for_window else "script-src 'self'"
    return (
        f"default-src 'self'; {script}; img-src 'self' data: blob:; "
        "style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'"
    )


def install(app: Flask, for_window: bool = False) -> None:
    policy = content_policy(for_window)

    def harden(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Content-Security-Policy", policy)
        return response

    app.before_request(check_request)
    app.after_request(harden)
    app.after_request(only_streams_for_url_tokens)
