"""Checks of values that arrive from JSON, the CLI or the UI, with messages a person can act on."""

import math

from cllm_app.errors import InvalidInput


def as_int(field: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
        isinstance(value, float) and not value.is_integer()
    ):
        raise InvalidInput(f"{field} must be a whole number from {lo} to {hi}", code="invalid_" + field)
    value = int(value)
    if not lo <= value <= hi:
        raise InvalidInput(f"{field} must be a whole number from {lo} to {hi}", code="invalid_" + field)
    return value


def as_float(field: str, value, lo: float, hi: float, lo_open: bool = False) -> float:
    bad = isinstance(value, bool) or not isinstance(value, (int, float))
    if not bad:
        value = float(value)
        bad = not math.isfinite(value) or value > hi or value < lo or (lo_open and value == lo)
    if bad:
        low = f"more than {lo}" if lo_open else f"at least {lo}"
        raise InvalidInput(f"{field} must be a number {low} and at most {hi}", code="invalid_" + field)
    return value


def only_fields(payload, allowed: set[str], what: str) -> dict:
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise InvalidInput(
            f"unknown field(s) for {what}: {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}",
            code="unknown_field",
        )
    return payload
