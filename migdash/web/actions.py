"""Plan, preview and request actions: target and environment upgrades, merges, new revisions."""

from __future__ import annotations

from flask import Blueprint, Response, make_response, redirect, render_template, request, url_for
from flask_login import current_user

from migdash.errors import InvalidInput
from migdash.jobs import requests as job_requests
from migdash.jobs.preview import preview_sql
from migdash.jobs.submit import (
    submit_environment_action,
    submit_project_action,
    submit_target_action,
)
from migdash.permissions import Permission
from migdash.services import services_of
from migdash.status import cached_status, project_graph
from migdash.store import registry
from migdash.store.queries import find_targets
from migdash.web.auth import requires
from migdash.web.db import db

bp = Blueprint("actions", __name__, url_prefix="/actions")


def _action_args() -> tuple[str, str, bool]:
    kind = request.values.get("action", "upgrade")
    if kind not in job_requests.TARGET_ACTIONS:
        raise InvalidInput(f"unknown action {kind!r}")
    return kind, request.values.get("revision", "heads").strip(), request.values.get("purge") == "y"


@bp.get("/targets/<name>")
@requires(Permission.REQUEST)
def plan_target(name: str) -> str:
    """The confirm page: current -> destination, the revisions, the offline SQL, warnings."""
    session, services = db(), services_of()
    target = registry.get_target(session, name)
    kind, revision, purge = _action_args()
    graph = services.catalog.graph(target.project.script_location)
    job_requests.check_destination(graph, kind, revision)
    preview = preview_sql(session, services.catalog, services.probes, target, kind, revision)
    return render_template(
        "actions/plan.html",
        target=target,
        kind=kind,
        revision=revision,
        purge=purge,
        preview=preview,
        graph=graph,
    )


@bp.get("/targets/<name>/plan.sql")
@requires(Permission.REQUEST)
def plan_sql(name: str) -> Response:
    session, services = db(), services_of()
    target = registry.get_target(session, name)
    kind, revision, _ = _action_args()
    preview = preview_sql(session, services.catalog, services.probes, target, kind, revision)
    if preview.sql is None:
        raise InvalidInput(preview.error or "this plan has no SQL (stamp runs no DDL)")
    response = make_response(preview.sql)
    response.mimetype = "application/sql"
    filename = f"{target.name}-{kind}-{revision.replace(':', '_')}.sql"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.post("/targets/<name>")
@requires(Permission.REQUEST)
def request_target(name: str) -> Response:
    session, services = db(), services_of()
    target = registry.get_target(session, name)
    kind, revision, purge = _action_args()
    job = submit_target_action(
        session,
        services.catalog,
        services.probes,
        services.queue,
        target,
        kind,
        revision,
        actor=current_user.username,
        role=current_user.role,
        purge=purge,
    )
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
        submit_environment_action(
            session,
            services.catalog,
            services.probes,
            services.queue,
            env,
            project,
            kind,
            revision,
            actor=current_user.username,
            role=current_user.role,
        )
        return redirect(url_for("jobs.index", project=project.name))
    graph, problem = project_graph(services.catalog, project)
    if graph is not None:
        job_requests.check_destination(graph, kind, revision)
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
    job = submit_project_action(
        session,
        services.catalog,
        services.queue,
        project,
        "merge",
        {"message": request.form.get("message", ""), "heads": request.form.getlist("heads")},
        actor=current_user.username,
        role=current_user.role,
    )
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
        "depends_on": [d for d in request.form.get("depends_on", "").split(",") if d.strip()],
        "autogenerate": request.form.get("autogenerate") == "y",
    }
    if arguments["autogenerate"] and request.form.get("confirmed") != "y":
        from migdash.jobs.autogenerate import preview_autogenerate

        result = preview_autogenerate(project, against, arguments)
        return render_template(
            "actions/autogenerate.html",
            project=project,
            against=against,
            arguments=arguments,
            result=result,
        )
    job = submit_project_action(
        session,
        services.catalog,
        services.queue,
        project,
        "revision",
        arguments,
        actor=current_user.username,
        role=current_user.role,
        against=against,
    )
    return redirect(url_for("jobs.detail", job_id=job.id))
