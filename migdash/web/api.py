"""JSON API under ``/api/v1`` for scripts and CI, authenticated by personal tokens.

Same permission checks as the web (``migdash.permissions``), no cookies (so
no CSRF surface), and errors as ``{"error": {"code", "message", "hint"}}``
with a stable code per condition.  Every route is :func:`documented`: its
query, body and response models (``api_models``) validate the request and
the response and make the OpenAPI document (``openapi.json``).  The read
routes over projects, targets, audit and compare live in ``api_reads``, on
this blueprint.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, Response, current_app, g, jsonify, request

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
from migdash.store.models import Target, utcnow
from migdash.store.queries import find_targets
from migdash.store.tokens import authenticate_token
from migdash.web import api_models as m
from migdash.web.db import db
from migdash.web.errors import json_error
from migdash.web.inputs import FORM_METHODS, json_object
from migdash.web.openapi import declares_body, documented, openapi_document

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


@bp.before_request
def read_body() -> None:
    """Parse a documented JSON body strictly (depth, junk, not an object: 400) before spectree.

    The parsed body is cached on the request, so spectree validates exactly
    this object whatever the Content-Type said; a form body is refused, as the
    API reads JSON only.
    """
    view = current_app.view_functions.get(request.endpoint or "")
    if request.method not in FORM_METHODS or view is None or not declares_body(view):
        return
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise InvalidInput("send the body as JSON (Content-Type: application/json), not a form")
    json_object(required=False)


def permission(needed: Permission) -> Callable[[F], F]:
    def decorate(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            require(g.api_user.role, needed, actor=g.api_user.username)
            return view(*args, **kwargs)

        wrapped.required_permission = needed  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorate


@bp.get("/openapi.json")
@permission(Permission.VIEW)
@documented(m.OpenAPIDocument, tag="meta")
def openapi() -> Response:
    """This document: every route, its parameters, bodies and answers (OpenAPI 3.1)."""
    return jsonify(openapi_document())


def matching(targets: Sequence[Target], tag: str | None) -> list[Target]:
    return [t for t in targets if tag is None or tag in t.tags]


@bp.get("/status")
@permission(Permission.VIEW)
@documented(list[m.TargetStatus], tag="status")
def status(query: m.StatusQuery) -> Response:
    """Each target's state, current and pending revisions (cached, or probed now with probe)."""
    session, services = db(), services_of()
    found = find_targets(session, project=query.project, environment=query.environment or query.env)
    targets = matching(found, query.tag)
    if query.probe:
        reports = refresh_status(session, services.catalog, services.probes, targets)
        session.commit()
    else:
        reports = cached_status(session, targets)
    return jsonify([r.as_json() for r in reports if query.state in (None, r.status.state)])


@bp.get("/check")
@permission(Permission.VIEW)
@documented(m.CheckFacts, tag="status")
def check(query: m.CheckQuery) -> Response:
    """What ``migdash check --server`` judges: targets (probed with ``probe=1``), drift, heads."""
    session, services = db(), services_of()
    facts = gather_check_facts(
        session,
        services.jobs,
        project=query.project,
        environment=query.env,
        probe=query.probe,
        now=utcnow(),
    )
    session.commit()
    return jsonify(facts)


@bp.get("/targets")
@permission(Permission.VIEW)
@documented(list[m.TargetInfo], tag="targets")
def targets(query: m.TargetsQuery) -> Response:
    """Registered targets (URLs masked), optionally of one project, environment or tag."""
    found = find_targets(db(), project=query.project, environment=query.environment)
    return jsonify([target_json(t) for t in matching(found, query.tag)])


def target_json(t: Target) -> dict[str, object]:
    return {
        "target": t.name,
        "project": t.project.name,
        "environment": t.environment.name,
        "url": mask_url(t.url),
        "tags": t.tags,
    }


@bp.get("/jobs")
@permission(Permission.VIEW)
@documented(list[m.Job], tag="jobs")
def jobs(query: m.JobsQuery) -> Response:
    """Jobs newest first, optionally by state, project or target."""
    rows = list_jobs(
        db(), state=query.state, project=query.project, target=query.target, limit=query.limit
    )
    return jsonify([job_json(j) for j in rows])


@bp.post("/jobs")
@permission(Permission.REQUEST)
@documented(m.Job, tag="jobs", status=201, also={200: m.NothingToDo})
def create_job(json: m.CreateJob) -> tuple[Response, int]:
    """Request upgrade, downgrade or stamp of a target (held for approval where protected)."""
    session, services = db(), services_of()
    target = registry.get_target(session, json.target)
    if json.action not in TARGET_ACTIONS:
        raise InvalidInput(
            f"action must be one of {', '.join(TARGET_ACTIONS)}, not {json.action[:20]!r}",
            field="action",
        )
    job = request_target_action(
        session,
        services.jobs,
        target,
        json.action,
        json.revision,
        actor=g.api_user.username,
        role=g.api_user.role,
        now=utcnow(),
        purge=json.purge,
        seen_plan=json.plan_hash or None,
        not_before=json.not_before,
    )
    session.commit()
    if job is None:
        return jsonify({"job": None, "nothing_to_do": True, "target": target.name}), 200
    return jsonify(job_json(job)), 201


@bp.get("/jobs/<int:job_id>")
@permission(Permission.VIEW)
@documented(m.Job, tag="jobs")
def job(job_id: int) -> Response:
    """One job: its state, plan steps, result and error."""
    return jsonify(job_json(get_job(db(), job_id)))


@bp.get("/jobs/<int:job_id>/plan")
@permission(Permission.VIEW)
@documented(m.JobPlan, tag="jobs")
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
@documented(list[m.LogLine], tag="jobs")
def job_log(job_id: int, query: m.LogQuery) -> Response:
    """The job's log lines in order; poll with after set to the last id seen."""
    session = db()
    get_job(session, job_id)
    return jsonify(
        [
            {"id": line.id, "at": line.at.isoformat() + "Z", "line": line.line}
            for line in read_log(session, job_id, query.after)
        ]
    )


@bp.post("/jobs/<int:job_id>/cancel")
@permission(Permission.REQUEST)
@documented(m.Job, tag="jobs")
def cancel(job_id: int) -> Response:
    """Cancel a job that has not started (queued or awaiting approval)."""
    session = db()
    job = cancel_job(session, job_id, actor=g.api_user.username, role=g.api_user.role, now=utcnow())
    session.commit()
    return jsonify(job_json(job))


@bp.get("/approvals")
@permission(Permission.VIEW)
@documented(list[m.Job], tag="approvals")
def pending_approvals() -> Response:
    """Jobs awaiting approval, oldest first."""
    return jsonify([job_json(j) for j in approvals.awaiting(db())])


@bp.post("/jobs/<int:job_id>/approve")
@permission(Permission.APPROVE)
@documented(m.Decision, tag="approvals")
def approve(job_id: int, json: m.Approve) -> Response:
    """Approve the plan with the ``plan_hash`` the caller reviewed (required)."""
    session, services = db(), services_of()
    decision = approvals.approve(
        session,
        services.jobs,
        job_id,
        actor=g.api_user.username,
        role=g.api_user.role,
        comment=json.comment or "",
        seen_plan=json.plan_hash or None,
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
@documented(m.Job, tag="approvals")
def reject(job_id: int, json: m.Reject) -> Response:
    """Reject a job awaiting approval (never your own); it will not run."""
    session = db()
    job = approvals.reject(
        session,
        job_id,
        actor=g.api_user.username,
        role=g.api_user.role,
        comment=json.comment or "",
        now=utcnow(),
    )
    session.commit()
    return jsonify(job_json(job))
