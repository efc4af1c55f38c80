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
from flask_wtf import FlaskForm
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from migdash.errors import Conflict, InvalidInput, MigdashError
from migdash.jobs import removal
from migdash.jobs.projects import init_project
from migdash.permissions import Permission
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import Target, utcnow
from migdash.store.queries import all_environments, all_projects, find_targets
from migdash.web.auth import requires
from migdash.web.db import db
from migdash.web.errors import classify
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


def _show_form(
    form: FlaskForm, kind: str, existing: object, error: MigdashError | None = None
) -> Response:
    """The form again, as typed (password fields come back empty), with what went wrong.

    *error*'s message goes beside the field it names, or above the form when it
    names none.  Nothing of a refused change is kept: the session is rolled back.
    A submitted form that is shown again answers 400 (409 for a name clash).
    """
    status = 200
    if error is not None:
        db().rollback()
        message = [error.message, *([error.hint] if error.hint else [])]
        field = getattr(error, "field", None)
        if field and field in form and field != "csrf_token":
            form[field].errors = [*form[field].errors, *message]
        else:
            form.form_errors.extend(message)
        status = classify(error)[1]
    elif form.is_submitted():
        status = 400
    html = render_template("admin/form.html", form=form, kind=kind, existing=existing)
    return make_response(html, status)


@bp.route("/environments/new", methods=["GET", "POST"])
@bp.route("/environments/<name>/edit", methods=["GET", "POST"])
@requires(Permission.ADMIN)
def environment_form(name: str | None = None) -> Response:
    session = db()
    environment = registry.get_environment(session, name) if name else None
    form = EnvironmentForm(obj=environment)
    if not form.validate_on_submit():
        return _show_form(form, "environment", environment)
    fields = {
        "protected": form.protected.data,
        "position": form.position.data,
        "promotion_rule": form.promotion_rule.data or "warn",
        "windows": form.windows.data or "",
        "actor": current_user.username,
    }
    try:
        if environment is None:
            registry.add_environment(
                session,
                form.name.data or "",
                required_approvals=_given(form.required_approvals.data, 1),
                **fields,
            )
        else:
            registry.edit_environment(
                session,
                environment,
                name=form.name.data,
                required_approvals=form.required_approvals.data,
                **fields,
            )
    except (InvalidInput, Conflict) as exc:
        return _show_form(form, "environment", environment, exc)
    session.commit()
    flash(f"Environment {form.name.data} saved.")
    return redirect(url_for("admin.index"))


@bp.route("/targets/new", methods=["GET", "POST"])
@bp.route("/targets/<name>/edit", methods=["GET", "POST"])
@requires(Permission.ADMIN)
def target_form(name: str | None = None) -> Response:
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
    if not form.validate_on_submit():
        return _show_form(form, "target", target)
    try:
        _save_target(session, target, form)
    except (InvalidInput, Conflict) as exc:
        return _show_form(form, "target", target, exc)
    session.commit()
    flash(f"Target {form.name.data} saved.")
    return redirect(url_for("admin.index"))


def _given(value: int | None, default: int) -> int:
    """An optional number as typed: 0 stays 0 (and is refused), only an empty field defaults."""
    return default if value is None else value


def _save_target(session: Session, target: Target | None, form: TargetForm) -> None:
    """Add or edit through the registry, as the CLI does; an empty URL keeps the stored one."""
    fields = {
        "project": form.project.data or "",
        "environment": form.environment.data or "",
        "tags": (form.tags.data or "").split(","),
        "version_table": form.version_table.data,
        "version_table_schema": form.version_table_schema.data,
        "actor": current_user.username,
    }
    if target is not None:
        registry.edit_target(session, target, name=form.name.data, url=form.url.data, **fields)
    elif not form.url.data:
        raise InvalidInput("a new target needs a database URL", field="url")
    else:
        registry.add_target(session, form.name.data or "", url=form.url.data, **fields)


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
