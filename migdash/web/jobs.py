"""Jobs: the list with filters, one job's page with its live log, cancel."""

from __future__ import annotations

from flask import Blueprint, request
from flask_login import current_user
from werkzeug.wrappers import Response

from migdash.jobs.records import describe, get_job, job_log, list_jobs
from migdash.jobs.requests import cancel_job
from migdash.permissions import Permission
from migdash.store.models import JobState, utcnow
from migdash.web.auth import requires
from migdash.web.db import db
from migdash.web.htmx import is_htmx, render_page_or_partial, stop_polling

bp = Blueprint("jobs", __name__, url_prefix="/jobs")


@bp.get("/")
@requires(Permission.VIEW)
def index() -> Response:
    session = db()
    filters = {k: request.args.get(k) or None for k in ("state", "project", "target")}
    jobs = list_jobs(session, **filters, limit=200)
    live = any(not JobState(j.state).terminal for j in jobs)
    response = render_page_or_partial(
        "jobs/index.html",
        "partials/jobs/table.html",
        jobs=jobs,
        filters=filters,
        states=[s.value for s in JobState],
        live=live,
    )
    return stop_polling(response) if is_htmx() and not live else response


@bp.get("/<int:job_id>")
@requires(Permission.VIEW)
def detail(job_id: int) -> Response:
    return _live(job_id)


@bp.get("/<int:job_id>/live")
@requires(Permission.VIEW)
def live(job_id: int) -> Response:
    """The polling fragment: state, steps and log; answers 286 once the job is over."""
    return _live(job_id)


def _live(job_id: int) -> Response:
    session = db()
    job = get_job(session, job_id)
    response = render_page_or_partial(
        "jobs/detail.html",
        "partials/jobs/live.html",
        job=job,
        log=job_log(session, job_id),
        describe=describe,
        dialect=(job.target.url.split(":", 1)[0] if job.target else ""),
    )
    if is_htmx() and JobState(job.state).terminal:
        return stop_polling(response)
    return response


@bp.post("/<int:job_id>/cancel")
@requires(Permission.REQUEST)
def cancel(job_id: int) -> Response:
    session = db()
    cancel_job(session, job_id, actor=current_user.username, role=current_user.role, now=utcnow())
    session.commit()
    return _live(job_id)
