"""JSON API under ``/api/v1`` for scripts and CI, authenticated by personal tokens.

Same permission checks as the web (``migdash.permissions``), no cookies (so
no CSRF surface), and errors as ``{"error": {"code", "message", "hint"}}``
with a stable code per condition.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from migdash.engine.graph import AmbiguousHead
from migdash.engine.scrub import mask_url
from migdash.errors import Conflict, InvalidInput, MigdashError, NotFound, UnknownRevision
from migdash.jobs import approvals
from migdash.jobs import requests as job_requests
from migdash.jobs.approvals import TargetMoved
from migdash.jobs.requests import job_json
from migdash.jobs.submit import cancel as cancel_job
from migdash.jobs.submit import submit_target_action
from migdash.permissions import Forbidden, FourEyesViolation, Permission, require
from migdash.services import services_of
from migdash.status import cached_status, refresh_status
from migdash.store import registry
from migdash.store.models import utcnow
from migdash.store.queries import find_targets
from migdash.store.tokens import authenticate_token
from migdash.web.db import db

bp = Blueprint("api", __name__, url_prefix="/api/v1")
F = TypeVar("F", bound=Callable[..., Any])

ERROR_CODES: list[tuple[type[Exception], str, int]] = [
    (FourEyesViolation, "four_eyes", 403),
    (Forbidden, "forbidden", 403),
    (TargetMoved, "target_moved", 409),
    (UnknownRevision, "unknown_revision", 404),
    (NotFound, "not_found", 404),
    (AmbiguousHead, "ambiguous_head", 400),
    (InvalidInput, "invalid_input", 400),
    (Conflict, "conflict", 409),
    (MigdashError, "error", 400),
]


def error_response(code: str, message: str, status: int, hint: str = "") -> Response:
    response = jsonify({"error": {"code": code, "message": message, "hint": hint}})
    response.status_code = status
    return response


@bp.errorhandler(Exception)
def handle_error(error: Exception) -> Response:
    for kind, code, status in ERROR_CODES:
        if isinstance(error, kind):
            assert isinstance(error, MigdashError)
            return error_response(code, error.message, status, error.hint)
    if isinstance(error, HTTPException):
        return error_response(
            (error.name or "http").lower().replace(" ", "_"),
            error.description or "",
            error.code or 500,
        )
    import logging

    logging.getLogger(__name__).exception("API error")
    return error_response("internal", "internal error; nothing was changed by this request", 500)


@bp.before_request
def authenticate() -> Response | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    user = authenticate_token(db(), token.strip(), utcnow()) if scheme.lower() == "bearer" else None
    if user is None:
        return error_response(
            "unauthorized",
            "a valid API token is required",
            401,
            "Send Authorization: Bearer <token> (migdash token create).",
        )
    db().commit()
    g.api_user = user
    return None


def permission(needed: Permission) -> Callable[[F], F]:
    def decorate(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            require(g.api_user.role, needed, actor=g.api_user.username)
            return view(*args, **kwargs)

        wrapped.required_permission = needed  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorate


def body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidInput("the request body must be a JSON object")
    return data


@bp.get("/status")
@permission(Permission.VIEW)
def status() -> Response:
    session, services = db(), services_of()
    targets = find_targets(
        session, project=request.args.get("project"), environment=request.args.get("env")
    )
    if request.args.get("probe") == "1":
        reports = refresh_status(session, services.catalog, services.probes, targets)
        session.commit()
    else:
        reports = cached_status(session, targets)
    return jsonify([r.as_json() for r in reports])


@bp.get("/targets")
@permission(Permission.VIEW)
def targets() -> Response:
    return jsonify(
        [
            {
                "target": t.name,
                "project": t.project.name,
                "environment": t.environment.name,
                "url": mask_url(t.url),
                "tags": t.tags,
            }
            for t in find_targets(db())
        ]
    )


@bp.get("/jobs")
@permission(Permission.VIEW)
def jobs() -> Response:
    rows = job_requests.list_jobs(
        db(),
        state=request.args.get("state"),
        project=request.args.get("project"),
        target=request.args.get("target"),
    )
    return jsonify([job_json(j) for j in rows])


@bp.post("/jobs")
@permission(Permission.REQUEST)
def create_job() -> tuple[Response, int]:
    data = body()
    session, services = db(), services_of()
    target = registry.get_target(session, str(data.get("target", "")))
    job = submit_target_action(
        session,
        services.catalog,
        services.probes,
        services.queue,
        target,
        str(data.get("action", "")),
        str(data.get("revision", "")),
        actor=g.api_user.username,
        role=g.api_user.role,
        purge=bool(data.get("purge")),
    )
    return jsonify(job_json(job)), 201


@bp.get("/jobs/<int:job_id>")
@permission(Permission.VIEW)
def job(job_id: int) -> Response:
    return jsonify(job_json(job_requests.get_job(db(), job_id)))


@bp.get("/jobs/<int:job_id>/log")
@permission(Permission.VIEW)
def job_log(job_id: int) -> Response:
    session = db()
    job_requests.get_job(session, job_id)
    after = request.args.get("after", 0, type=int)
    return jsonify(
        [
            {"id": line.id, "at": line.at.isoformat() + "Z", "line": line.line}
            for line in job_requests.job_log(session, job_id, after)
        ]
    )


@bp.post("/jobs/<int:job_id>/cancel")
@permission(Permission.REQUEST)
def cancel(job_id: int) -> Response:
    job = cancel_job(db(), job_id, actor=g.api_user.username, role=g.api_user.role)
    return jsonify(job_json(job))


@bp.get("/approvals")
@permission(Permission.VIEW)
def pending_approvals() -> Response:
    return jsonify([job_json(j) for j in approvals.awaiting(db())])


@bp.post("/jobs/<int:job_id>/approve")
@permission(Permission.APPROVE)
def approve(job_id: int) -> Response:
    data = request.get_json(silent=True) or {}
    session, services = db(), services_of()
    decision = approvals.approve(
        session,
        services.catalog,
        services.probes,
        job_id,
        actor=g.api_user.username,
        role=g.api_user.role,
        comment=str(data.get("comment", "")),
        seen_plan=data.get("plan_hash"),
        now=utcnow(),
    )
    session.commit()
    if decision.queued:
        services.queue.submit([job_id])
    return jsonify(
        {
            **job_json(decision.job),
            "approvals": decision.approvals,
            "required_approvals": decision.required,
        }
    )


@bp.post("/jobs/<int:job_id>/reject")
@permission(Permission.APPROVE)
def reject(job_id: int) -> Response:
    data = request.get_json(silent=True) or {}
    session = db()
    job = approvals.reject(
        session,
        job_id,
        actor=g.api_user.username,
        role=g.api_user.role,
        comment=str(data.get("comment", "")),
        now=utcnow(),
    )
    session.commit()
    return jsonify(job_json(job))
