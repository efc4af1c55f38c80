"""Turn errors into pages (or fragments) a person can act on; never leak a stack trace."""

from __future__ import annotations

import logging
import re

from flask import Flask, Response, make_response, render_template
from werkzeug.exceptions import HTTPException

from migdash.errors import (
    BrokenProject,
    Conflict,
    InvalidInput,
    MigdashError,
    NotFound,
    UnknownRevision,
)
from migdash.permissions import Forbidden
from migdash.web.htmx import is_htmx

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[MigdashError], int] = {
    NotFound: 404,
    UnknownRevision: 404,
    InvalidInput: 400,
    Conflict: 409,
    BrokenProject: 422,
    Forbidden: 403,
}


def status_for(error: MigdashError) -> int:
    for kind, status in STATUS_BY_ERROR.items():
        if isinstance(error, kind):
            return status
    return 400


def render_error(title: str, message: str, hint: str, status: int) -> Response:
    template = "partials/error.html" if is_htmx() else "error.html"
    response = make_response(
        render_template(template, title=title, message=message, hint=hint), status
    )
    if is_htmx():
        response.headers["HX-Retarget"] = "#flash"
        response.headers["HX-Reswap"] = "innerHTML"
    return response


def title_for(error: MigdashError) -> str:
    """ "UnknownRevision" -> "Unknown revision": a heading a person reads."""
    words = re.findall(r"[A-Z][a-z]*|[a-z]+", type(error).__name__)
    return " ".join(words).capitalize()


def handle_migdash_error(error: MigdashError) -> Response:
    return render_error(title_for(error), error.message, error.hint, status_for(error))


def handle_http_error(error: HTTPException) -> Response:
    return render_error(error.name, error.description or "", "", error.code or 500)


def handle_unexpected(error: Exception) -> Response:
    log.exception("unhandled error")
    return render_error(
        "Internal error",
        "Something went wrong on the server; nothing was changed by this request.",
        "The server log has the details. If it keeps happening, report it with the time.",
        500,
    )


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(MigdashError, handle_migdash_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected)
