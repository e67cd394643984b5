"""One error handler: every refusal becomes {"error": {"code", "message"}} with its status."""

import logging

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from cllm_app.errors import CllmError, as_refusal

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str):
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


def install(app: Flask) -> None:
    @app.errorhandler(CllmError)
    def refused(e: CllmError):
        return error_response(e.status, e.code, e.message)

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        code = (e.name or "error").lower().replace(" ", "_")
        message = e.description or e.name
        if e.code == 400 and request.is_json is False and request.method in ("POST", "PUT", "PATCH"):
            message = "the request body must be JSON"
        return error_response(e.code or 500, code, message)

    @app.errorhandler(Exception)
    def unexpected(e: Exception):
        studio = current_app.config.get("STUDIO")
        refusal = as_refusal(e, "saving your change", studio.root.path if studio is not None else None)
        if refusal is not None:  # a full disk under the store: the same 507 the services give
            return error_response(refusal.status, refusal.code, refusal.message)
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", f"something went wrong inside the app: {e}")
