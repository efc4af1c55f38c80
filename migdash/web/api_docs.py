"""The browsable page of the API document, rendered on the server.

spectree's UI pages (Swagger UI, ReDoc) load scripts from a CDN and run inline
scripts, both of which the app's Content-Security-Policy forbids; this page
shows the same document as plain HTML instead, for anyone signed in.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from migdash.permissions import Permission
from migdash.web.auth import requires
from migdash.web.openapi import API_PREFIX, openapi_document

bp = Blueprint("api_docs", __name__, url_prefix=API_PREFIX)
METHODS = ("get", "post", "put", "patch", "delete")


@bp.get("/docs")
@requires(Permission.VIEW)
def index() -> str:
    document = openapi_document()
    return render_template(
        "api_docs/index.html",
        document=document,
        operations=operations(document),
        schema_type=schema_type,
    )


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """``(METHOD, path, operation)`` in the document's order of paths."""
    return [
        (method.upper(), path, item[method])
        for path, item in document["paths"].items()
        for method in METHODS
        if method in item
    ]


def schema_type(schema: dict[str, Any] | None) -> str:
    """A JSON schema as a person reads a type: ``list of Job``, ``string | null``."""
    if not schema:
        return "any"
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(schema_type(s) for s in schema["anyOf"])
    if "enum" in schema:
        return " | ".join(repr(v) for v in schema["enum"])
    if schema.get("type") == "array":
        return f"list of {schema_type(schema.get('items'))}"
    if "const" in schema:
        return repr(schema["const"])
    return str(schema.get("type", "any"))
