"""Turn errors into pages, fragments or JSON a person can act on; never leak a stack trace.

:data:`ERROR_TABLE` is the one mapping from error type to HTTP status and
stable API code, used alike by pages, htmx fragments and ``/api/v1``.  The
handlers here are also the transaction boundary for failed requests: what a
refused request recorded on purpose (``keeps_record``: a refused
self-approval's audit row, a renewed plan) is committed, everything else is
rolled back.
"""

from __future__ import annotations

import logging
import re

from flask import Flask, Response, jsonify, make_response, render_template, request
from werkzeug.exceptions import HTTPException

from migdash.errors import (
    AmbiguousHead,
    BrokenProject,
    Conflict,
    Forbidden,
    FourEyesViolation,
    InvalidInput,
    JobPending,
    MigdashError,
    NotFound,
    PlanRefused,
    PromotionOutOfOrder,
    TargetMoved,
    TargetUnreachable,
    UnknownRevision,
    UnsafeRevisionFile,
)
from migdash.web.db import finish_failed_request
from migdash.web.htmx import is_htmx

log = logging.getLogger(__name__)

ERROR_TABLE: tuple[tuple[type[MigdashError], str, int], ...] = (
    (FourEyesViolation, "four_eyes", 403),
    (Forbidden, "forbidden", 403),
    (TargetMoved, "target_moved", 409),
    (JobPending, "job_pending", 409),
    (PromotionOutOfOrder, "promotion_out_of_order", 409),
    (TargetUnreachable, "target_unreachable", 409),
    (PlanRefused, "plan_refused", 400),
    (UnknownRevision, "unknown_revision", 404),
    (NotFound, "not_found", 404),
    (AmbiguousHead, "ambiguous_head", 400),
    (BrokenProject, "broken_project", 422),
    (UnsafeRevisionFile, "unsafe_revision_file", 422),
    (InvalidInput, "invalid_input", 400),
    (Conflict, "conflict", 409),
    (MigdashError, "error", 400),
)
"""First match wins, so subclasses come before their parents."""


def classify(error: MigdashError) -> tuple[str, int]:
    """The stable API code and the HTTP status of *error*."""
    for kind, code, status in ERROR_TABLE:
        if isinstance(error, kind):
            return code, status
    return "error", 400


def wants_json() -> bool:
    """API routes answer JSON, errors included (also for URLs no route matched)."""
    return request.path.startswith("/api/")


def json_error(code: str, message: str, status: int, hint: str = "", **extra: object) -> Response:
    response = jsonify({"error": {"code": code, "message": message, "hint": hint, **extra}})
    response.status_code = status
    return response


def render_error(title: str, message: str, hint: str, status: int, **extra: object) -> Response:
    template = "partials/error.html" if is_htmx() else "error.html"
    response = make_response(
        render_template(template, title=title, message=message, hint=hint, **extra), status
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
    finish_failed_request(keep=error.keeps_record)
    code, status = classify(error)
    job_id = getattr(error, "job_id", None)
    if wants_json():
        extra: dict[str, object] = {"job": job_id} if job_id is not None else {}
        if isinstance(error, InvalidInput) and error.field:
            extra["field"] = error.field
        return json_error(code, error.message, status, error.hint, **extra)
    return render_error(title_for(error), error.message, error.hint, status, job_id=job_id)


def handle_http_error(error: HTTPException) -> Response:
    finish_failed_request(keep=False)
    status = error.code or 500
    if wants_json():
        code = (error.name or "http").lower().replace(" ", "_")
        return json_error(code, error.description or "", status)
    return render_error(error.name, error.description or "", "", status)


def handle_unexpected(error: Exception) -> Response:
    finish_failed_request(keep=False)
    log.exception("unhandled error")
    message = "Something went wrong on the server; nothing was changed by this request."
    if wants_json():
        return json_error("internal", message, 500)
    return render_error(
        "Internal error",
        message,
        "The server log has the details. If it keeps happening, report it with the time.",
        500,
    )


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(MigdashError, handle_migdash_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected)
