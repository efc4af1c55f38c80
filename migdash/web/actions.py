"""Plan, preview and request actions: target and environment upgrades, merges, new revisions."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user

from migdash.engine.revision_files import check_revision_request
from migdash.errors import AmbiguousHead, InvalidInput, UnknownRevision
from migdash.jobs.autogenerate import preview_autogenerate
from migdash.jobs.plans import make_plan
from migdash.jobs.records import TARGET_ACTIONS
from migdash.jobs.requests import (
    check_destination,
    request_environment_action,
    request_project_action,
    request_target_action,
)
from migdash.jobs.schedule import parse_not_before
from migdash.permissions import Permission
from migdash.services import services_of
from migdash.status import cached_status, project_graph, record_status
from migdash.store import registry
from migdash.store.models import utcnow
from migdash.store.queries import find_targets
from migdash.web.auth import requires
from migdash.web.db import db
from migdash.web.projects import render_form_again

bp = Blueprint("actions", __name__, url_prefix="/actions")

FORM_ERRORS = (InvalidInput, UnknownRevision, AmbiguousHead)
"""What a person typed wrong in the project page's merge and revision forms: shown beside
the field (an unknown revision in "depends on" too), not on an error page."""


def _action_args() -> tuple[str, str, bool]:
    kind = request.values.get("action", "upgrade")
    if kind not in TARGET_ACTIONS:
        raise InvalidInput(f"unknown action {kind!r}", field="action")
    revision = request.values.get("revision", "heads").strip()
    return kind, revision, request.values.get("purge") == "y"


@bp.get("/targets/<name>")
@requires(Permission.REQUEST)
def plan_target(name: str) -> str:
    """The confirm page: current -> destination, the steps, the offline SQL, warnings."""
    session, services = db(), services_of()
    target = registry.get_target(session, name)
    kind, revision, purge = _action_args()
    plan = make_plan(services.jobs, target, kind, revision, purge=purge)
    if plan.status is not None and plan.probe is not None:
        record_status(session, target, plan.status, plan.probe, utcnow())
    session.commit()
    return render_template(
        "actions/plan.html",
        target=target,
        kind=kind,
        revision=revision,
        purge=purge,
        plan=plan,
        graph=services.catalog.graph(target.project.script_location),
        dialect=target.url.split(":", 1)[0].split("+", 1)[0],
    )


@bp.get("/targets/<name>/plan.sql")
@requires(Permission.REQUEST)
def plan_sql(name: str) -> Response:
    session, services = db(), services_of()
    target = registry.get_target(session, name)
    kind, revision, purge = _action_args()
    plan = make_plan(services.jobs, target, kind, revision, purge=purge)
    if plan.sql is None:
        raise InvalidInput(
            plan.sql_error or ("stamp runs no DDL" if kind == "stamp" else "this plan has no SQL")
        )
    response = make_response(plan.sql)
    response.mimetype = "application/sql"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in revision)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{target.name}-{kind}-{safe}.sql"'
    )
    return response


@bp.post("/targets/<name>")
@requires(Permission.REQUEST)
def request_target(name: str) -> Response:
    session, services = db(), services_of()
    target = registry.get_target(session, name)
    kind, revision, purge = _action_args()
    job = request_target_action(
        session,
        services.jobs,
        target,
        kind,
        revision,
        actor=current_user.username,
        role=current_user.role,
        now=utcnow(),
        purge=purge,
        seen_plan=request.form.get("plan_hash") or None,
        not_before=parse_not_before(request.form.get("not_before")),
    )
    session.commit()
    if job is None:
        flash(f"Nothing to do: {target.name} is already at {revision}.")
        return redirect(url_for("targets.detail", name=target.name))
    return redirect(url_for("jobs.detail", job_id=job.id))


@bp.route("/environment", methods=["GET", "POST"])
@requires(Permission.REQUEST)
def environment() -> str | Response:
    """ "Bring every target of a project in an environment to a revision": one job each."""
    session, services = db(), services_of()
    env = registry.get_environment(session, request.values.get("environment", ""))
    project = registry.get_project(session, request.values.get("project", ""))
    kind, revision, _ = _action_args()
    if request.method == "POST":
        request_environment_action(
            session,
            services.jobs,
            env,
            project,
            kind,
            revision,
            actor=current_user.username,
            role=current_user.role,
            now=utcnow(),
        )
        session.commit()
        return redirect(url_for("jobs.index", project=project.name))
    graph, problem = project_graph(services.catalog, project)
    if graph is not None:
        check_destination(graph, kind, revision)
    reports = cached_status(
        session, find_targets(session, project=project.name, environment=env.name)
    )
    return render_template(
        "actions/environment.html",
        environment=env,
        project=project,
        kind=kind,
        revision=revision,
        reports=reports,
        graph=graph,
        problem=problem,
    )


@bp.post("/projects/<name>/merge")
@requires(Permission.REQUEST)
def merge(name: str) -> Response:
    session, services = db(), services_of()
    project = registry.get_project(session, name)
    try:
        job = request_project_action(
            session,
            services.jobs,
            project,
            "merge",
            {"message": request.form.get("message", ""), "heads": request.form.getlist("heads")},
            actor=current_user.username,
            role=current_user.role,
            now=utcnow(),
        )
    except FORM_ERRORS as exc:
        return render_form_again(name, "merge", exc)
    session.commit()
    return redirect(url_for("jobs.detail", job_id=job.id))


@bp.post("/projects/<name>/revision")
@requires(Permission.REQUEST)
def revision(name: str) -> str | Response:
    """A new revision; with autogenerate, the detected operations are shown before writing."""
    session, services = db(), services_of()
    project = registry.get_project(session, name)
    against_name = request.form.get("against") or None
    against = registry.get_target(session, against_name) if against_name else None
    arguments = {
        "message": request.form.get("message", ""),
        "head": request.form.get("head") or None,
        "branch_label": request.form.get("branch_label") or None,
        "depends_on": request.form.get("depends_on", ""),
        "autogenerate": request.form.get("autogenerate") == "y",
    }
    try:
        if arguments["autogenerate"] and request.form.get("confirmed") != "y":
            graph = services.catalog.graph(project.script_location)
            checked = check_revision_request(graph, "revision", arguments)
            return render_template(
                "actions/autogenerate.html",
                project=project,
                against=against,
                arguments=checked,
                result=preview_autogenerate(project, against, checked),
            )
        job = request_project_action(
            session,
            services.jobs,
            project,
            "revision",
            arguments,
            actor=current_user.username,
            role=current_user.role,
            now=utcnow(),
            against=against,
        )
    except FORM_ERRORS as exc:
        return render_form_again(name, "revision", exc)
    session.commit()
    return redirect(url_for("jobs.detail", job_id=job.id))
