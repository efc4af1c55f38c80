"""The OpenAPI 3.1 document of ``/api/v1``, built by spectree from the routes themselves.

Each API route carries :func:`documented`, which names its query, body and
response models (``migdash.web.api_models``).  spectree validates the request
against them before the view runs and the response after it, and
:func:`openapi_document` assembles the document from the same declarations,
so the two cannot disagree.  Failures keep the app's own shapes: a request
spectree refuses becomes :class:`~migdash.errors.InvalidInput` (400
``invalid_input`` naming the field), and a response that breaks its own schema
is a bug, answered as the app's 500 ``internal`` error and logged.

spectree's own document and UI routes are never registered (its UI pages load
scripts from a CDN, which the app's Content-Security-Policy forbids); the
browsable page is ``migdash.web.api_docs``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, cast

from flask import Flask
from pydantic import ValidationError
from spectree import Response, SecurityScheme, SpecTree
from spectree.models import SecureType, SecuritySchemeData
from spectree.utils import get_model_key

from migdash import __version__
from migdash.errors import InvalidInput
from migdash.web.api_models import ErrorBody

API_PREFIX = "/api/v1"
ERRORS = (400, 401, 403, 404, 409, 422)
"""The error statuses every route documents (all with :class:`ErrorBody`)."""
NOT_DOCUMENTED = frozenset({"api_docs.index"})
"""Routes under ``/api/v1`` that are not API operations: the HTML page of the document."""


class ResponseOutOfSchema(RuntimeError):
    """A route answered something its declared response model does not allow (a bug)."""


def refuse_invalid_request(
    req: Any, resp: Any, error: Exception | None, instance: Any, adapter: Any
) -> None:
    """spectree's ``before`` hook: its validation error becomes the app's ``invalid_input``."""
    if not isinstance(error, ValidationError):
        return
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    field = str(first["loc"][0]) if first["loc"] else None
    if first["type"] == "missing":
        message = f"{where} is required"
    elif first["type"] == "string_pattern_mismatch":
        message = f"{where} contains a NUL character"
    else:
        message = f"{where}: {first['msg']}" if where else first["msg"]
    raise InvalidInput(message, field=field)


def refuse_invalid_response(
    req: Any, resp: Any, error: Exception | None, instance: Any, adapter: Any
) -> None:
    """spectree's ``after`` hook: a response outside its schema is a 500 in the app's shape."""
    if error is not None:
        raise ResponseOutOfSchema(f"{req.method} {req.path}: {error}")


spec = SpecTree(
    "flask",
    mode="strict",
    title="migdash API",
    description=(
        "JSON API for scripts and CI. Authenticate with a personal token "
        "(`migdash token create`) sent as `Authorization: Bearer <token>`; the same "
        "permission checks as the web apply. Every error is "
        '`{"error": {"code", "message", "hint"}}` with a stable code.'
    ),
    version=__version__,
    openapi_version="3.1.0",
    validation_error_status=400,
    validation_error_model=ErrorBody,
    # plain model names (api_models keeps them unique), not spectree's hashed ones
    naming_strategy=lambda model: get_model_key(model).split(".")[0],
    nested_naming_strategy=lambda _parent, child: child,
    before=refuse_invalid_request,
    after=refuse_invalid_response,
    security_schemes=[
        SecurityScheme(
            name="token",
            data=SecuritySchemeData(
                type=SecureType.HTTP,
                scheme="bearer",
                description="A personal API token (migdash token create)",
            ),
        ),
    ],
    security={"token": []},
)


def documented(
    ok: Any,
    *,
    tag: str,
    status: int = 200,
    also: dict[int, Any] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a route's response (*ok* with *status*, and the errors) for validation and docs.

    The query and body models come from the view's ``query`` and ``json``
    parameter annotations (spectree passes the validated models in).
    """
    codes: dict[str, Any] = {f"HTTP_{status}": ok}
    codes |= {f"HTTP_{code}": model for code, model in (also or {}).items()}
    codes |= {f"HTTP_{code}": ErrorBody for code in ERRORS}
    return spec.validate(resp=Response(**codes), tags=[tag])


def declares_body(view: Callable[..., Any]) -> bool:
    """True when *view* (or what it wraps) was :func:`documented` with a JSON body model."""
    metadata = spec.get_function_metadata(view)
    return metadata is not None and metadata.json is not None


def openapi_document(app: Flask | None = None) -> dict[str, Any]:
    """The document for the app's routes (built once, then cached by spectree)."""
    if app is None:
        return cast(dict[str, Any], spec.spec)
    with app.app_context():
        return cast(dict[str, Any], spec.spec)


def undocumented_routes(app: Flask) -> list[str]:
    """``METHOD /rule (endpoint)`` for each ``/api/v1`` route the document lacks."""
    paths = openapi_document(app)["paths"]
    missing = []
    for rule, method in api_rules(app):
        path = spec.backend.parse_path(rule, None)[0]
        if method.lower() not in paths.get(path, {}):
            missing.append(f"{method} {rule.rule} ({rule.endpoint})")
    return missing


def api_rules(app: Flask) -> Iterator[tuple[Any, str]]:
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(API_PREFIX) and rule.endpoint not in NOT_DOCUMENTED:
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                yield rule, method
