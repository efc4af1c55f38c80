"""Approvals: jobs awaiting a decision, and one job's review page with Approve / Reject."""

from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, request, url_for
from flask_login import current_user

from migdash.errors import PlanRefused, TargetMoved, TargetUnreachable
from migdash.jobs import approvals
from migdash.jobs.gate import approvals_for
from migdash.jobs.plans import ActionPlan
from migdash.jobs.records import describe, get_job
from migdash.jobs.rollout_control import awaiting_rollouts
from migdash.jobs.schedule import environment_windows, wake_time
from migdash.permissions import Permission
from migdash.services import services_of
from migdash.status import project_graph
from migdash.store.models import JobState, utcnow
from migdash.web.auth import requires
from migdash.web.db import db

bp = Blueprint("approvals", __name__, url_prefix="/approvals")


@bp.get("/")
@requires(Permission.VIEW)
def index() -> str:
    session = db()
    waiting = approvals.awaiting(session)
    return render_template(
        "approvals/index.html",
        jobs=waiting,
        describe=describe,
        counts={j.id: approvals_for(session, j, j.plan_hash) for j in waiting},
        rollouts=awaiting_rollouts(session),
    )


@bp.get("/<int:job_id>")
@requires(Permission.VIEW)
def review(job_id: int, notice: str | None = None, status: int = 200) -> tuple[str, int]:
    """Target, current -> requested revision, the steps, the SQL; re-planned on every view."""
    session, services = db(), services_of()
    job = get_job(session, job_id)
    plan: ActionPlan | None = None
    plan_error = None
    if job.state == JobState.AWAITING_APPROVAL:
        try:
            plan = approvals.current_plan(services.jobs, job)
        except (TargetUnreachable, PlanRefused) as exc:
            plan_error = exc.message
    graph = project_graph(services.catalog, job.project)[0] if job.project else None
    page = render_template(
        "approvals/review.html",
        job=job,
        plan=plan,
        plan_error=plan_error,
        plan_changed=plan is not None and plan.hash != job.plan_hash,
        graph=graph,
        describe=describe,
        notice=notice,
        decisions=approvals.decisions(session, job_id),
        approved=approvals_for(session, job, job.plan_hash),
        required=job.target.environment.required_approvals if job.target else 1,
        windows=environment_windows(job.target.environment if job.target else None),
        wake=wake_time(job, utcnow()) if job.state == JobState.AWAITING_APPROVAL else None,
    )
    return page, status


@bp.post("/<int:job_id>/approve")
@requires(Permission.APPROVE)
def approve(job_id: int) -> Response | tuple[str, int]:
    session, services = db(), services_of()
    try:
        decision = approvals.approve(
            session,
            services.jobs,
            job_id,
            actor=current_user.username,
            role=current_user.role,
            comment=request.form.get("comment", "").strip(),
            seen_plan=request.form.get("plan_hash") or None,
            now=utcnow(),
        )
    except TargetMoved as moved:
        session.commit()  # the renewed plan is kept: old approvals stop counting
        return review(job_id, notice=f"{moved.message}. {moved.hint}", status=409)
    session.commit()
    if decision.queued:
        return redirect(url_for("jobs.detail", job_id=job_id))
    return redirect(url_for("approvals.review", job_id=job_id))


@bp.post("/<int:job_id>/reject")
@requires(Permission.APPROVE)
def reject(job_id: int) -> Response:
    session = db()
    approvals.reject(
        session,
        job_id,
        actor=current_user.username,
        role=current_user.role,
        comment=request.form.get("comment", "").strip(),
        now=utcnow(),
    )
    session.commit()
    return redirect(url_for("jobs.detail", job_id=job_id))
