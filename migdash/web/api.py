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

from migdash.engine.scrub import mask_url
from migdash.errors import InvalidInput
from migdash.jobs import approvals
from migdash.jobs.approvals import current_plan
from migdash.jobs.ci_check import gather_check_facts
from migdash.jobs.records import TARGET_ACTIONS, get_job, job_json, list_jobs
from migdash.jobs.records import job_log as read_log
from migdash.jobs.requests import cancel_job, request_target_action
from migdash.permissions import Permission, require
from migdash.services import services_of
from migdash.status import cached_status, refresh_status
from migdash.store import registry
from migdash.store.models import utcnow
from migdash.store.queries import find_targets
from migdash.store.tokens import authenticate_token
from migdash.web.db import db
from migdash.web.errors import json_error
from migdash.web.inputs import bool_field, int_arg, json_object, text_field

bp = Blueprint("api", __name__, url_prefix="/api/v1")
F = TypeVar("F", bound=Callable[..., Any])


@bp.before_request
def authenticate() -> Response | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    user = authenticate_token(db(), token.strip(), utcnow()) if scheme.lower() == "bearer" else None
    if user is None:
        return json_error(
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


@bp.get("/check")
@permission(Permission.VIEW)
def check() -> Response:
    """What ``migdash check --server`` judges: targets (probed with ``probe=1``), drift, heads."""
    session, services = db(), services_of()
    facts = gather_check_facts(
        session,
        services.jobs,
        project=request.args.get("project") or None,
        environment=request.args.get("env") or None,
        probe=request.args.get("probe") == "1",
        now=utcnow(),
    )
    session.commit()
    return jsonify(facts)


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
    rows = list_jobs(
        db(),
        state=request.args.get("state"),
        project=request.args.get("project"),
        target=request.args.get("target"),
        limit=int_arg("limit", 100, low=1, high=1000),
    )
    return jsonify([job_json(j) for j in rows])


@bp.post("/jobs")
@permission(Permission.REQUEST)
def create_job() -> tuple[Response, int]:
    data = json_object()
    session, services = db(), services_of()
    target = registry.get_target(session, text_field(data, "target", required=True, limit=100))
    action = text_field(data, "action", required=True, limit=20)
    if action not in TARGET_ACTIONS:
        raise InvalidInput(
            f"action must be one of {', '.join(TARGET_ACTIONS)}, not {action[:20]!r}",
            field="action",
        )
    job = request_target_action(
        session,
        services.jobs,
        target,
        action,
        text_field(data, "revision", required=True, limit=200),
        actor=g.api_user.username,
        role=g.api_user.role,
        now=utcnow(),
        purge=bool_field(data, "purge"),
        seen_plan=text_field(data, "plan_hash", limit=64) or None,
    )
    session.commit()
    if job is None:
        return jsonify({"job": None, "nothing_to_do": True, "target": target.name}), 200
    return jsonify(job_json(job)), 201


@bp.get("/jobs/<int:job_id>")
@permission(Permission.VIEW)
def job(job_id: int) -> Response:
    return jsonify(job_json(get_job(db(), job_id)))


@bp.get("/jobs/<int:job_id>/plan")
@permission(Permission.VIEW)
def job_plan(job_id: int) -> Response:
    """The job's plan made afresh now: what an approver reviews (steps, SQL, plan_hash)."""
    session, services = db(), services_of()
    plan = current_plan(services.jobs, get_job(session, job_id))
    return jsonify(
        {
            "job": job_id,
            "plan_hash": plan.hash,
            "current": list(plan.current),
            "steps": [s.label for s in plan.steps],
            "sql": plan.sql,
            "sql_error": plan.sql_error,
            "warnings": list(plan.warnings),
        }
    )


@bp.get("/jobs/<int:job_id>/log")
@permission(Permission.VIEW)
def job_log(job_id: int) -> Response:
    session = db()
    get_job(session, job_id)
    after = int_arg("after", 0)
    return jsonify(
        [
            {"id": line.id, "at": line.at.isoformat() + "Z", "line": line.line}
            for line in read_log(session, job_id, after)
        ]
    )


@bp.post("/jobs/<int:job_id>/cancel")
@permission(Permission.REQUEST)
def cancel(job_id: int) -> Response:
    session = db()
    job = cancel_job(session, job_id, actor=g.api_user.username, role=g.api_user.role, now=utcnow())
    session.commit()
    return jsonify(job_json(job))


@bp.get("/approvals")
@permission(Permission.VIEW)
def pending_approvals() -> Response:
    return jsonify([job_json(j) for j in approvals.awaiting(db())])


@bp.post("/jobs/<int:job_id>/approve")
@permission(Permission.APPROVE)
def approve(job_id: int) -> Response:
    """Approve the plan with the ``plan_hash`` the caller reviewed (required)."""
    data = json_object()
    session, services = db(), services_of()
    decision = approvals.approve(
        session,
        services.jobs,
        job_id,
        actor=g.api_user.username,
        role=g.api_user.role,
        comment=text_field(data, "comment", limit=500),
        seen_plan=text_field(data, "plan_hash", limit=64) or None,
        now=utcnow(),
        require_seen_plan=True,
    )
    session.commit()
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
    data = json_object(required=False)
    session = db()
    job = approvals.reject(
        session,
        job_id,
        actor=g.api_user.username,
        role=g.api_user.role,
        comment=text_field(data, "comment", limit=500),
        now=utcnow(),
    )
    session.commit()
    return jsonify(job_json(job))
