"""Reading requests against their description: a route's JSON body and query string are checked
against the schemas that /api/openapi.json publishes for it (cllm_app/api/openapi.py), so what
the description says and what the server accepts are one declaration and cannot drift apart.

The checker knows the part of JSON Schema those declarations use: type, enum, const, minimum,
maximum, exclusiveMinimum, minLength, maxLength, minItems, maxItems, items, properties,
required, additionalProperties and local $refs. Rules a schema cannot state (a name's
characters, a URL's scheme, one field against another) stay with the services."""

import json
import math

from flask import request

from cllm_app.errors import InvalidInput

_TYPE_WORDS = {
    "integer": "a whole number", "number": "a number", "string": "text", "boolean": "true or false",
    "array": "a list", "object": "an object", "null": "null",
}


def _is(value, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool) or (
            isinstance(value, float) and value.is_integer()
        )
    if kind == "number":
        # an int of any size is finite, and math.isfinite would overflow on a huge one
        return not isinstance(value, bool) and (isinstance(value, int) or isinstance(value, float) and math.isfinite(value))
    return isinstance(value, {"string": str, "boolean": bool, "array": list, "object": dict,
                              "null": type(None)}[kind])


def _resolve(schema: dict) -> dict:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    from cllm_app.api.openapi import SCHEMAS

    return SCHEMAS[ref.rsplit("/", 1)[-1]]


def _range_words(s: dict) -> str:
    lo, hi = s.get("minimum", s.get("exclusiveMinimum")), s.get("maximum")
    low = "more than" if "exclusiveMinimum" in s else "at least"
    if lo is not None and hi is not None:
        return f" from {lo} to {hi}" if low == "at least" else f" {low} {lo} and at most {hi}"
    if lo is not None:
        return f" {low} {lo}"
    return f" at most {hi}" if hi is not None else ""


def check(schema: dict, value, name: str, code: str):
    """`value` as the services take it (a whole number sent as 3.0 becomes 3), or a refusal
    unless it fits `schema`, naming it `name` in messages. `code` names the refusal (e.g.
    invalid_n_layer for a body's field); a schema may name its own with `x-code`, or one per
    keyword with `x-codes`, and its message with `x-message` or per keyword `x-messages`, so the
    codes and words the services gave before these checks stay the same."""
    s = _resolve(schema)
    code = s.get("x-code", code)

    def refuse(message: str, keyword: str):
        message = s.get("x-messages", {}).get(keyword) or s.get("x-message") or f"{name} {message}"
        raise InvalidInput(message, code=s.get("x-codes", {}).get(keyword, code))

    kinds = s.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(value, k) for k in kinds):
            what = " or ".join(_TYPE_WORDS[k] for k in kinds)
            refuse(f"must be {what}{_range_words(s) if kinds == ['integer'] or kinds == ['number'] else ''}", "type")
    if "const" in s and not (value == s["const"] and isinstance(value, bool) == isinstance(s["const"], bool)):
        refuse(f"must be {json.dumps(s['const'])}", "const")
    if "enum" in s and value not in s["enum"]:
        refuse(f"must be one of: {', '.join(str(v) for v in s['enum'])}", "enum")
    if _is(value, "number"):
        if ("minimum" in s and value < s["minimum"]) or ("maximum" in s and value > s["maximum"]) or (
            "exclusiveMinimum" in s and value <= s["exclusiveMinimum"]
        ):
            refuse(f"must be {'a whole number' if kinds == ['integer'] else 'a number'}{_range_words(s)}", "range")
    if isinstance(value, str):
        if len(value) < s.get("minLength", 0):
            refuse("must not be empty" if s["minLength"] == 1 else f"must be at least {s['minLength']} characters",
                   "minLength")
        if "maxLength" in s and len(value) > s["maxLength"]:
            refuse(f"can be at most {s['maxLength']:,} characters", "maxLength")
    if isinstance(value, list):
        if len(value) < s.get("minItems", 0):
            refuse("must not be empty" if s["minItems"] == 1 else f"must hold at least {s['minItems']} items",
                   "minItems")
        if "maxItems" in s and len(value) > s["maxItems"]:
            refuse(f"may hold at most {s['maxItems']} items", "maxItems")
        if "items" in s:
            value = [check(s["items"], item, f"{name}[{i}]", code) for i, item in enumerate(value)]
    if isinstance(value, dict) and "properties" in s:
        props = s["properties"]
        if s.get("additionalProperties", True) is False:
            unknown = sorted(set(value) - set(props))
            if unknown:
                raise InvalidInput(
                    f"unknown field(s) for {name}: {', '.join(map(str, unknown))}; allowed: {', '.join(sorted(props))}",
                    code="unknown_field",
                )
        for field in s.get("required", ()):
            if field not in value:
                sub = _resolve(props[field])
                missing = sub.get("x-codes", {}).get("required", sub.get("x-code", "invalid_" + field))
                message = sub.get("x-messages", {}).get("required") or sub.get("x-message") or f"{name} needs {field}"
                raise InvalidInput(message, code=missing)
        value = {field: check(props[field], item, field, "invalid_" + field) if field in props else item
                 for field, item in value.items()}
    if isinstance(value, float) and kinds is not None and "integer" in kinds and "number" not in kinds:
        value = int(value)  # JSON Schema counts 3.0 a whole number; the services count ints
    return value


def _declared(kind: str):
    from cllm_app.api.openapi import declared

    return declared(request.method, request.url_rule.rule, kind)


def json_body(what: str) -> dict:
    """The request's JSON object (an empty body is `{}`), checked against the schema the
    description gives this route; `what` names it in messages ("a new model")."""
    schema = _declared("body")
    raw = request.get_data(cache=True)
    if not raw.strip():
        data = {}
    else:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            # RecursionError: JSON nested thousands deep is no body any route takes, not a crash
            raise InvalidInput("the request body must be a JSON object", code="invalid_json") from None
        if not isinstance(data, dict):
            raise InvalidInput(f"{what} must be a JSON object")
    return data if schema is None else check(schema, data, what, "invalid_body")


def _query_value(name: str, schema: dict, raw: str):
    if schema.get("type") == "number":
        try:
            return float(raw)
        except ValueError:
            raise InvalidInput(f"{name} must be a number{_range_words(schema)}", code="invalid_" + name) from None
    if schema.get("type") != "integer":
        return raw
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number{_range_words(schema)}", code="invalid_" + name) from None


def check_query() -> None:
    """Refuse a query string the description does not allow (run before every /api view);
    numbers arrive as text, so they are read before they are checked."""
    if request.url_rule is None or not request.path.startswith("/api/"):
        return
    for name, schema, required in _declared("query"):
        values = request.args.getlist(name)
        if required and not values:
            raise InvalidInput(f"this needs the query parameter {name}", code=schema.get("x-code", "invalid_" + name))
        if not values:
            continue
        if schema.get("type") == "array":
            items = schema["items"]
            check(schema, [_query_value(name, items, v) for v in values], name, "invalid_" + name)
        else:
            for raw in values:
                check(schema, _query_value(name, schema, raw), name, "invalid_" + name)
