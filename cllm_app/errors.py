"""The refusals every layer shares.

Services raise these; the API turns them into `{"error": {"code", "message"}}`
with `status`, and the CLI prints `message` and exits with status 2.
"""


class CllmError(Exception):
    """A refusal with a stable machine code and a message for a person."""

    status = 400
    code = "invalid_request"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class InvalidInput(CllmError):
    status = 400
    code = "invalid_input"


class NotFound(CllmError):
    status = 404
    code = "not_found"


class Conflict(CllmError):
    status = 409
    code = "conflict"


class ConfirmationRequired(CllmError):
    status = 400
    code = "confirmation_required"
