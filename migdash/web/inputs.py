"""Reading what a client sent, strictly: every failure is a 400 naming the field, never a 500.

The one place that turns request data into Python values for views and API
routes: JSON bodies (an object, not too deep, not too large), integers from
query strings (range-checked, because SQLite stores 64 bits), route ids (a
URL converter with the same bound), and text fields.  Pages take HTML form
posts only: Flask-WTF would read a JSON body as form data, where any nesting
depth and any JSON type could reach a form field.  No text may hold a NUL
character: PostgreSQL refuses it in any query, so a NUL that reached one would
be a 500 there (SQLite would store it).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge, UnsupportedMediaType
from werkzeug.routing import IntegerConverter

from migdash.errors import InvalidInput
from migdash.web.errors import wants_json

MAX_ID = 2**63 - 1
"""The largest id any metadata DB can hold (SQLite INTEGER, PostgreSQL BIGINT)."""
MAX_JSON_DEPTH = 32
MAX_CONTENT_LENGTH = 1024 * 1024
FORM_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BoundedIntegerConverter(IntegerConverter):
    """``<int:job_id>`` that answers 400 for a number no row can have, instead of crashing."""

    def to_python(self, value: str) -> int:
        number = super().to_python(value)
        if number > MAX_ID:
            shown = value if len(value) <= 30 else f"{value[:30]}…"
            raise BadRequest(f"{shown} is not an id: ids are at most {MAX_ID}")
        return int(number)


def install_input_limits(app: Flask) -> None:
    """Bound every route's ``int`` and every request body's size; keep JSON off the pages."""
    app.url_map.converters["int"] = BoundedIntegerConverter
    if app.config.get("MAX_CONTENT_LENGTH") is None:  # Flask's default is None: no limit
        app.config["MAX_CONTENT_LENGTH"] = MAX_CONTENT_LENGTH
    app.before_request(check_request)


def check_request() -> None:
    """Refuse, before any view runs, what no view can use.

    A body too large (413, on every route, whether it reads a body or not);
    a NUL in a path part, query or form field (400 naming it); JSON sent to a
    page (415: only ``/api/v1`` reads JSON, through :func:`json_object`).
    """
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None and limit is not None and request.content_length > limit:
        raise RequestEntityTooLarge(
            f"the request body is {request.content_length} bytes; at most {limit} are accepted"
        )
    api = wants_json()
    fields = [*(request.view_args or {}).items(), *request.args.items(multi=True)]
    if not api:  # the API reads no form; parsing one would consume a mislabelled JSON body
        fields += request.form.items(multi=True)
    for name, value in fields:
        if "\x00" in name or (isinstance(value, str) and "\x00" in value):
            raise InvalidInput(f"{name!r} contains a NUL character", field=name.replace("\x00", ""))
    if request.method in FORM_METHODS and request.is_json and not api:
        raise UnsupportedMediaType(
            "pages take HTML form posts (application/x-www-form-urlencoded or "
            "multipart/form-data); send JSON to /api/v1 instead"
        )


def json_object(*, required: bool = True) -> dict[str, Any]:
    """The request body as a JSON object; 400 for anything else (an array, a scalar, junk)."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        if required:
            raise InvalidInput(
                "the request body must be a JSON object", hint='e.g. {"comment": ""}'
            )
        return {}
    depth = json_depth(raw)
    if depth > MAX_JSON_DEPTH:
        raise InvalidInput(f"the JSON body is nested {depth} levels deep; at most {MAX_JSON_DEPTH}")
    try:
        data = request.get_json(force=True, silent=False)
    except BadRequest:
        raise InvalidInput("the request body is not valid JSON") from None
    except RecursionError:  # pragma: no cover - json_depth refuses this first
        raise InvalidInput("the JSON body is nested too deeply") from None
    if not isinstance(data, dict):
        raise InvalidInput(
            f"the request body must be a JSON object, not {type(data).__name__}",
            hint='Send {"key": value, ...}.',
        )
    return data


def json_depth(raw: bytes) -> int:
    """The deepest nesting of ``[``/``{`` in *raw*, outside strings (a linear scan, no parsing)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def text_field(
    data: dict[str, Any], name: str, *, required: bool = False, default: str = "", limit: int = 2000
) -> str:
    """A string member of a JSON object: present when required, a string, not too long."""
    value = data.get(name)
    if value is None:
        if required:
            raise InvalidInput(f"{name} is required", field=name)
        return default
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string, not {type(value).__name__}", field=name)
    if len(value) > limit:
        raise InvalidInput(f"{name} is {len(value)} characters long; at most {limit}", field=name)
    if "\x00" in value:
        raise InvalidInput(f"{name} contains a NUL character", field=name)
    return value


def bool_field(data: dict[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise InvalidInput(f"{name} must be true or false", field=name)
    return value


def int_arg(name: str, default: int, *, low: int = 0, high: int = MAX_ID) -> int:
    """An integer from the query string or form, between *low* and *high* (400 otherwise)."""
    raw = request.values.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number, not {raw[:30]!r}", field=name) from None
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}", field=name)
    return value
