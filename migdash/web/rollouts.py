"""Rollouts: the list with a create form, one rollout's page with live progress per wave.

Views are thin: parse and authorise, one ``migdash.jobs.rollouts`` call,
render.  The worker moves rollouts; these pages only show and control them.
The progress fragment polls every ``MIGDASH_REFRESH_SECONDS`` (the page
includes it with no ``load`` trigger, so a swap never re-triggers itself) and
answers 286 once nothing can change any more.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from migdash.errors import InvalidInput
from migdash.jobs.rollout_control import (
    approve_rollout,
    cancel_rollout,
    pause_rollout,
    reject_rollout,
    resume_rollout,
    rollout_approvals,
)
from migdash.jobs.rollout_progress import eta_seconds, progress
from migdash.jobs.rollouts import create_rollout, get_rollout, list_rollouts
from migdash.permissions import Permission
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import utcnow
from migdash.store.queries import all_environments, all_projects
from migdash.store.rollout_models import MemberState, Rollout, RolloutState
from migdash.web.auth import requires
from migdash.web.db import db
from migdash.web.htmx import is_htmx, render_page_or_partial, stop_polling
from migdash.web.inputs import int_arg

bp = Blueprint("rollouts", __name__, url_prefix="/rollouts")

FINAL = (RolloutState.SUCCEEDED, RolloutState.FAILED, RolloutState.CANCELLED)


def _words(name: str, *, required: bool, limit: int = 100) -> list[str]:
    """Comma-separated names from the form (environments, tags)."""
    raw = request.form.get(name, "")
    words = [w.strip() for w in raw.split(",") if w.strip()]
    if required and not words:
        raise InvalidInput(f"{name} is required", field=name)
    if any(len(w) > limit for w in words) or len(words) > 50:
        raise InvalidInput(f"{name}: at most 50 names of {limit} characters", field=name)
    return words


@bp.get("/")
@requires(Permission.VIEW)
def index() -> str:
    session = db()
    return render_template(
        "rollouts/index.html",
        rollouts=list_rollouts(session),
        projects=all_projects(session),
        environments=all_environments(session),
    )


@bp.post("/")
@requires(Permission.REQUEST)
def create() -> Response:
    session, services = db(), services_of()
    revision = request.form.get("revision", "").strip()
    if not revision or len(revision) > 200:
        raise InvalidInput("revision is required (at most 200 characters)", field="revision")
    on_failure = request.form.get("on_failure", "halt")
    made = create_rollout(
        session,
        services.jobs,
        registry.get_project(session, request.form.get("project", "").strip()),
        revision,
        environments=_words("environment", required=True),
        tags=_words("tags", required=False),
        canary=int_arg("canary", 2, high=10_000),
        wave_size=int_arg("wave", 10, low=1, high=10_000),
        concurrency=int_arg("concurrency", 4, low=1, high=1_000),
        on_failure=on_failure if on_failure in ("halt", "continue") else "",
        actor=current_user.username,
        role=current_user.role,
        now=utcnow(),
    )
    session.commit()
    return redirect(url_for("rollouts.detail", rollout_id=made.id))


@bp.get("/<int:rollout_id>")
@requires(Permission.VIEW)
def detail(rollout_id: int) -> Response:
    """The page, or (for htmx) the progress fragment; 286 once the rollout cannot change."""
    session = db()
    found = get_rollout(session, rollout_id)
    settled = found.state in FINAL and not any(
        m.state == MemberState.RUNNING for m in found.members
    )
    response = render_page_or_partial(
        "rollouts/detail.html",
        "partials/rollouts/progress.html",
        rollout=found,
        waves=progress(found),
        eta=eta_seconds(found),
        approvals=rollout_approvals(session, found),
        settled=settled,
        refresh_seconds=current_app.config["MIGDASH_REFRESH_SECONDS"],
    )
    return stop_polling(response) if is_htmx() and settled else response


def _control(verb: Callable[..., Rollout], rollout_id: int, **kwargs: object) -> Response:
    session = db()
    verb(
        session,
        rollout_id,
        actor=current_user.username,
        role=current_user.role,
        now=utcnow(),
        **kwargs,
    )
    session.commit()
    return redirect(url_for("rollouts.detail", rollout_id=rollout_id))


@bp.post("/<int:rollout_id>/pause")
@requires(Permission.REQUEST)
def pause(rollout_id: int) -> Response:
    return _control(pause_rollout, rollout_id)


@bp.post("/<int:rollout_id>/resume")
@requires(Permission.REQUEST)
def resume(rollout_id: int) -> Response:
    return _control(resume_rollout, rollout_id)


@bp.post("/<int:rollout_id>/cancel")
@requires(Permission.REQUEST)
def cancel(rollout_id: int) -> Response:
    return _control(cancel_rollout, rollout_id)


@bp.post("/<int:rollout_id>/approve")
@requires(Permission.APPROVE)
def approve(rollout_id: int) -> Response:
    return _control(
        approve_rollout,
        rollout_id,
        comment=request.form.get("comment", "").strip()[:2000],
        seen=request.form.get("fingerprint") or None,
    )


@bp.post("/<int:rollout_id>/reject")
@requires(Permission.APPROVE)
def reject(rollout_id: int) -> Response:
    return _control(
        reject_rollout, rollout_id, comment=request.form.get("comment", "").strip()[:2000]
    )
