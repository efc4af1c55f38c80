"""Action routes of ``/api/v1``: project merges and new revisions, promotions, fleet rollouts.

Each is one call into the ``migdash.jobs`` function the web view (and the CLI)
uses, with the same permission, and commits once; nothing is decided here.
They sit on :data:`migdash.web.api.bp` (token authentication, JSON errors);
``register_web`` imports this module before registering the blueprint.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Response, g, jsonify

from migdash.jobs.promote import plan_promotion, request_promotion
from migdash.jobs.records import job_json
from migdash.jobs.requests import request_project_action
from migdash.jobs.rollout_control import (
    approve_rollout,
    cancel_rollout,
    pause_rollout,
    reject_rollout,
    resume_rollout,
)
from migdash.jobs.rollout_progress import rollout_json
from migdash.jobs.rollouts import create_rollout, get_rollout, list_rollouts
from migdash.permissions import Permission
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import Environment, Project, utcnow
from migdash.store.rollout_models import Rollout
from migdash.web import api_action_models as a
from migdash.web import api_models as m
from migdash.web.api import bp, permission
from migdash.web.db import db
from migdash.web.openapi import documented


def _project_action(name: str, kind: str, arguments: dict[str, object]) -> tuple[Response, int]:
    session, services = db(), services_of()
    job = request_project_action(
        session,
        services.jobs,
        registry.get_project(session, name),
        kind,
        arguments,
        actor=g.api_user.username,
        role=g.api_user.role,
        now=utcnow(),
    )
    session.commit()
    return jsonify(job_json(job)), 201


@bp.post("/projects/<name>/merge")
@permission(Permission.REQUEST)
@documented(m.Job, tag="projects", status=201)
def merge(name: str, json: a.CreateMerge) -> tuple[Response, int]:
    """Request a merge revision of the project's heads (a job that writes the file)."""
    return _project_action(name, "merge", {"message": json.message, "heads": json.heads or []})


@bp.post("/projects/<name>/revision")
@permission(Permission.REQUEST)
@documented(m.Job, tag="projects", status=201)
def new_revision(name: str, json: a.CreateRevision) -> tuple[Response, int]:
    """Request a new, empty revision file (on a head, a new branch, with dependencies)."""
    arguments: dict[str, object] = {
        "message": json.message,
        "head": json.head or None,
        "branch_label": json.branch_label or None,
        "depends_on": json.depends_on or "",
        "autogenerate": False,
    }
    return _project_action(name, "revision", arguments)


def _environments(
    name: str, source: str, destination: str
) -> tuple[Project, Environment, Environment]:
    session = db()
    found = registry.get_project(session, name)
    return (
        found,
        registry.get_environment(session, source),
        registry.get_environment(session, destination),
    )


@bp.get("/compare/<name>/promote")
@permission(Permission.REQUEST)
@documented(a.PromotionPlan, tag="compare")
def promotion(name: str, query: a.PromotionQuery) -> Response:
    """What promoting *from* to *to* would request: each target's plan, and the fingerprint."""
    session, services = db(), services_of()
    found, source, destination = _environments(name, query.from_, query.to)
    plan = plan_promotion(session, services.jobs, found, source, destination)
    session.commit()
    return jsonify(plan.as_json())


@bp.post("/compare/<name>/promote")
@permission(Permission.REQUEST)
@documented(list[m.Job], tag="compare", status=201, also={200: a.PromotionNothingToDo})
def promote(name: str, json: a.RequestPromotion) -> tuple[Response, int]:
    """One upgrade job per receiving target that lacks something: all of them, or none."""
    session, services = db(), services_of()
    found, source, destination = _environments(name, json.from_, json.to)
    jobs = request_promotion(
        session,
        services.jobs,
        found,
        source,
        destination,
        actor=g.api_user.username,
        role=g.api_user.role,
        now=utcnow(),
        seen=json.fingerprint or None,
    )
    session.commit()
    if not jobs:
        return jsonify({"nothing_to_do": True}), 200
    return jsonify([job_json(j) for j in jobs]), 201


@bp.get("/rollouts")
@permission(Permission.VIEW)
@documented(list[a.RolloutSummary], tag="rollouts")
def rollouts() -> Response:
    """The newest rollouts and their states."""
    return jsonify(
        [
            {
                "id": r.id,
                "project": r.project_name,
                "destination": r.destination,
                "state": r.state.value,
                "requested_by": r.requested_by,
                "requested_at": r.requested_at.isoformat() + "Z",
            }
            for r in list_rollouts(db())
        ]
    )


@bp.get("/rollouts/<int:rollout_id>")
@permission(Permission.VIEW)
@documented(a.Rollout, tag="rollouts")
def rollout(rollout_id: int) -> Response:
    """One rollout: progress per wave, the ETA, each member and the distinct plans."""
    return jsonify(rollout_json(get_rollout(db(), rollout_id)))


@bp.post("/rollouts")
@permission(Permission.REQUEST)
@documented(a.Rollout, tag="rollouts", status=201)
def rollout_create(json: a.CreateRollout) -> tuple[Response, int]:
    """Plan every selected target and roll out in waves (awaiting approval where protected)."""
    session, services = db(), services_of()
    made = create_rollout(
        session,
        services.jobs,
        registry.get_project(session, json.project),
        json.revision,
        environments=json.environments,
        tags=json.tags,
        canary=json.canary,
        wave_size=json.wave,
        concurrency=json.concurrency,
        on_failure=json.on_failure,
        actor=g.api_user.username,
        role=g.api_user.role,
        now=utcnow(),
    )
    session.commit()
    return jsonify(rollout_json(made)), 201


def _control(verb: Callable[..., Rollout], rollout_id: int, **kwargs: object) -> Response:
    session = db()
    changed = verb(
        session,
        rollout_id,
        actor=g.api_user.username,
        role=g.api_user.role,
        now=utcnow(),
        **kwargs,
    )
    session.commit()
    return jsonify(rollout_json(changed))


@bp.post("/rollouts/<int:rollout_id>/pause")
@permission(Permission.REQUEST)
@documented(a.Rollout, tag="rollouts")
def rollout_pause(rollout_id: int) -> Response:
    """Start no new member job; running ones finish."""
    return _control(pause_rollout, rollout_id)


@bp.post("/rollouts/<int:rollout_id>/resume")
@permission(Permission.REQUEST)
@documented(a.Rollout, tag="rollouts")
def rollout_resume(rollout_id: int) -> Response:
    """Go on with a paused or halted rollout."""
    return _control(resume_rollout, rollout_id)


@bp.post("/rollouts/<int:rollout_id>/cancel")
@permission(Permission.REQUEST)
@documented(a.Rollout, tag="rollouts")
def rollout_cancel(rollout_id: int) -> Response:
    """Stop the rollout: waiting members are cancelled, running ones finish."""
    return _control(cancel_rollout, rollout_id)


@bp.post("/rollouts/<int:rollout_id>/approve")
@permission(Permission.APPROVE)
@documented(a.Rollout, tag="rollouts")
def rollout_approve(rollout_id: int, json: a.ApproveRollout) -> Response:
    """Approve every plan of the rollout (never your own); it starts when enough are in."""
    return _control(
        approve_rollout, rollout_id, comment=json.comment or "", seen=json.fingerprint or None
    )


@bp.post("/rollouts/<int:rollout_id>/reject")
@permission(Permission.APPROVE)
@documented(a.Rollout, tag="rollouts")
def rollout_reject(rollout_id: int, json: a.RejectRollout) -> Response:
    """Reject a rollout awaiting approval: it ends cancelled and requests no job."""
    return _control(reject_rollout, rollout_id, comment=json.comment or "")
