"""Only the app's own window may drive the app.

The server binds 127.0.0.1, but any web page the person opens could still send
requests there. So: every request must name the bound address as its Host (this
defeats DNS rebinding), a cross-site Origin is refused, and every /api/ request
carries the secret made at launch (header X-CLLM-Token, or `token` in the query
string for EventSource, which cannot set headers). The OpenAI-compatible /v1/ routes also
take it as `Authorization: Bearer <secret>`, the way OpenAI clients send their API key.
"""

import hmac

from flask import Flask, abort, current_app, request

TOKEN_HEADER = "X-CLLM-Token"
PROTECTED_PREFIXES = ("/api/", "/v1/")


def _origin_allowed(origin: str, hosts: set[str]) -> bool:
    return any(origin == f"http://{host}" for host in hosts)


def check_request() -> None:
    hosts = current_app.config["ALLOWED_HOSTS"]
    if request.host not in hosts:
        abort(403, description="this server only answers requests addressed to its own address")
    origin = request.headers.get("Origin")
    if origin is not None and not _origin_allowed(origin, hosts):
        abort(403, description="requests from other web pages are not allowed")
    if request.path.startswith(PROTECTED_PREFIXES):
        given = request.headers.get(TOKEN_HEADER) or request.args.get("token") or ""
        auth = request.headers.get("Authorization", "")
        if not given and request.path.startswith("/v1/") and auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        if not hmac.compare_digest(given.encode(), current_app.config["SECRET"].encode()):
            abort(403, description="missing or wrong token: open the app through the URL it printed")


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
