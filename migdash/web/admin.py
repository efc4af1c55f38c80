"""Registry admin: add, edit and remove projects, environments and targets (admin role)."""

from __future__ import annotations

from pathlib import Path

from flask import (
    Blueprint,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from werkzeug.wrappers import Response

from migdash.errors import InvalidInput
from migdash.jobs import removal
from migdash.jobs.projects import init_project
from migdash.permissions import Permission
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import utcnow
from migdash.store.queries import all_environments, all_projects, find_targets
from migdash.web.auth import requires
from migdash.web.db import db
from migdash.web.forms import (
    DeleteForm,
    EnvironmentForm,
    InitProjectForm,
    ProjectForm,
    TargetForm,
)

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.get("/")
@requires(Permission.ADMIN)
def index() -> str:
    session = db()
    return render_template(
        "admin/index.html",
        projects=all_projects(session),
        environments=all_environments(session),
        targets=find_targets(session),
    )


@bp.route("/projects/new", methods=["GET", "POST"])
@bp.route("/projects/<name>/edit", methods=["GET", "POST"])
@requires(Permission.ADMIN)
def project_form(name: str | None = None) -> str | Response:
    session = db()
    project = registry.get_project(session, name) if name else None
    form = ProjectForm(obj=project)
    if form.validate_on_submit():
        fields = {k: v for k, v in form.data.items() if k != "csrf_token"}
        roots = current_app.config["MIGDASH_SCRIPT_ROOTS"]
        try:
            if project is None:
                registry.add_project(
                    session,
                    fields.pop("name"),
                    fields.pop("script_location"),
                    actor=current_user.username,
                    roots=roots,
                    **fields,
                )
            else:
                services_of().catalog.forget(project.script_location)
                registry.edit_project(
                    session, project, actor=current_user.username, roots=roots, **fields
                )
        except InvalidInput as exc:
            if exc.field != "script_location":
                raise
            # shown beside the field; nothing is committed, so nothing of the edit sticks
            form.script_location.errors = [exc.message, *([exc.hint] if exc.hint else [])]
            return make_response(
                render_template("admin/form.html", form=form, kind="project", existing=project),
                400,
            )
        session.commit()
        flash(f"Project {form.name.data} saved.")
        return redirect(url_for("admin.index"))
    return render_template("admin/form.html", form=form, kind="project", existing=project)


@bp.route("/projects/init", methods=["GET", "POST"])
@requires(Permission.ADMIN)
def init_project_form() -> str | Response:
    """Create a new Alembic environment (``alembic init``) and register it."""
    form = InitProjectForm()
    if form.validate_on_submit():
        session = db()
        root = Path(current_app.config["MIGDASH_PROJECTS_ROOT"])
        project = init_project(
            session,
            root,
            form.name.data or "",
            form.template.data or "generic",
            actor=current_user.username,
        )
        session.commit()
        flash(f"Created project {project.name} at {project.script_location}.")
        return redirect(url_for("projects.detail", name=project.name))
    return render_template(
        "admin/form.html", form=form, kind="project (alembic init)", existing=None
    )


@bp.route("/environments/new", methods=["GET", "POST"])
@bp.route("/environments/<name>/edit", methods=["GET", "POST"])
@requires(Permission.ADMIN)
def environment_form(name: str | None = None) -> str | Response:
    session = db()
    environment = registry.get_environment(session, name) if name else None
    form = EnvironmentForm(obj=environment)
    if form.validate_on_submit():
        if environment is None:
            registry.add_environment(
                session,
                form.name.data or "",
                protected=form.protected.data,
                position=form.position.data,
                required_approvals=form.required_approvals.data or 1,
                actor=current_user.username,
            )
        else:
            registry.edit_environment(
                session,
                environment,
                name=form.name.data,
                protected=form.protected.data,
                position=form.position.data,
                required_approvals=form.required_approvals.data,
                actor=current_user.username,
            )
        session.commit()
        flash(f"Environment {form.name.data} saved.")
        return redirect(url_for("admin.index"))
    return render_template("admin/form.html", form=form, kind="environment", existing=environment)


@bp.route("/targets/new", methods=["GET", "POST"])
@bp.route("/targets/<name>/edit", methods=["GET", "POST"])
@requires(Permission.ADMIN)
def target_form(name: str | None = None) -> str | Response:
    session = db()
    target = registry.get_target(session, name) if name else None
    form = TargetForm()
    form.project.choices = [(p.name, p.name) for p in all_projects(session)]
    form.environment.choices = [(e.name, e.name) for e in all_environments(session)]
    if target is not None and not form.is_submitted():
        form.name.data = target.name
        form.project.data = target.project.name
        form.environment.data = target.environment.name
        form.tags.data = ", ".join(target.tags)
        form.version_table.data = target.version_table
        form.version_table_schema.data = target.version_table_schema
    if form.validate_on_submit():
        tags = (form.tags.data or "").split(",")
        extra = {
            "version_table": form.version_table.data,
            "version_table_schema": form.version_table_schema.data,
        }
        if target is None:
            if not form.url.data:
                raise InvalidInput("a new target needs a database URL")
            registry.add_target(
                session,
                form.name.data or "",
                project=form.project.data or "",
                environment=form.environment.data or "",
                url=form.url.data,
                tags=tags,
                actor=current_user.username,
                **extra,
            )
        else:
            registry.edit_target(
                session,
                target,
                actor=current_user.username,
                name=form.name.data,
                url=form.url.data,
                project=form.project.data,
                environment=form.environment.data,
                tags=tags,
                **extra,
            )
        session.commit()
        flash(f"Target {form.name.data} saved.")
        return redirect(url_for("admin.index"))
    return render_template("admin/form.html", form=form, kind="target", existing=target)


REMOVABLE = {"projects": "project", "environments": "environment", "targets": "target"}
"""URL word -> the kind :mod:`migdash.jobs.removal` removes."""


def _removable(kind: str) -> str:
    if kind not in REMOVABLE:
        raise InvalidInput(f"cannot delete {kind!r}", hint="Projects, environments or targets.")
    return REMOVABLE[kind]


@bp.get("/<kind>/<name>/delete")
@requires(Permission.ADMIN)
def confirm_delete(kind: str, name: str) -> str:
    """What removing it takes with it (targets, pending jobs, approvals); changes nothing."""
    summary = removal.removal_summary(db(), _removable(kind), name)
    return render_template(
        "admin/confirm_delete.html", summary=summary, kind=kind, form=DeleteForm()
    )


@bp.post("/<kind>/<name>/delete")
@requires(Permission.ADMIN)
def delete(kind: str, name: str) -> Response:
    form = DeleteForm()
    if not form.validate_on_submit():
        raise InvalidInput("the form expired; reload the page and try again")
    session = db()
    done = removal.remove(
        session,
        _removable(kind),
        name,
        actor=current_user.username,
        role=current_user.role,
        now=utcnow(),
        seen=request.form.get("seen") or None,
    )
    session.commit()
    cancelled = ", ".join(str(job.id) for job in done.pending)
    flash(f"Removed {done.kind} {name}." + (f" Cancelled job(s) {cancelled}." if cancelled else ""))
    return redirect(url_for("admin.index"))
