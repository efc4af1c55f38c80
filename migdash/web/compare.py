"""Compare environments side by side, and promote one environment's revisions to another."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from migdash.errors import InvalidInput
from migdash.jobs.compare import compare_page
from migdash.jobs.promote import plan_promotion, request_promotion
from migdash.permissions import Permission
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import Environment, Project, Target, utcnow
from migdash.store.queries import all_projects
from migdash.web.auth import requires
from migdash.web.db import db
from migdash.web.htmx import render_page_or_partial

bp = Blueprint("compare", __name__, url_prefix="/compare")


@bp.get("/")
@requires(Permission.VIEW)
def index() -> str:
    return render_template("compare/index.html", projects=all_projects(db()))


PAIRS = {"a": "environment a", "b": "environment b", "target_a": "target a", "target_b": "target b"}
"""The compare form's fields, as its messages name them."""


def _pair(first: str, second: str) -> tuple[str, str] | None:
    """Two names from the query, both or neither (400 naming the one missing)."""
    values = (request.args.get(first, "").strip(), request.args.get(second, "").strip())
    if not any(values):
        return None
    for name, value in zip((first, second), values, strict=True):
        if not value:
            raise InvalidInput(f"choose {PAIRS[name]} too: two sides are compared", field=name)
    return values


@bp.get("/<name>")
@requires(Permission.VIEW)
def project(name: str) -> Response:
    """The board; with ``a`` and ``b`` (environments) or ``target_a`` and ``target_b``, what
    each side lacks of the other and the promotions between them."""
    session, services = db(), services_of()
    found = registry.get_project(session, name)
    targets: tuple[Target, Target] | None = None
    environments: tuple[Environment, Environment] | None = None
    if (chosen := _pair("target_a", "target_b")) is not None:
        targets = (registry.get_target(session, chosen[0]), registry.get_target(session, chosen[1]))
    elif (chosen := _pair("a", "b")) is not None:
        environments = (
            registry.get_environment(session, chosen[0]),
            registry.get_environment(session, chosen[1]),
        )
    page = compare_page(
        session,
        services.jobs,
        found,
        environments=environments,
        targets=targets,
        max_age=timedelta(seconds=current_app.config["MIGDASH_REFRESH_SECONDS"]),
    )
    session.commit()
    return render_page_or_partial(
        "compare/project.html", "compare/comparison.html", project=found, view=page
    )


def _promotion_args(name: str) -> tuple[Project, Environment, Environment]:
    session = db()
    found = registry.get_project(session, name)
    names = {}
    for field in ("from", "to"):
        names[field] = request.values.get(field, "").strip()
        if not names[field]:
            raise InvalidInput(f"say which environment to promote {field}", field=field)
    source = registry.get_environment(session, names["from"])
    return found, source, registry.get_environment(session, names["to"])


@bp.get("/<name>/promote")
@requires(Permission.REQUEST)
def promotion(name: str) -> str:
    """The confirm page: each receiving target's plan (steps, SQL), order warnings."""
    session, services = db(), services_of()
    found, source, destination = _promotion_args(name)
    plan = plan_promotion(session, services.jobs, found, source, destination)
    session.commit()
    return render_template("compare/promote.html", project=found, promotion=plan)


@bp.post("/<name>/promote")
@requires(Permission.REQUEST)
def promote(name: str) -> Response:
    session, services = db(), services_of()
    found, source, destination = _promotion_args(name)
    jobs = request_promotion(
        session,
        services.jobs,
        found,
        source,
        destination,
        actor=current_user.username,
        role=current_user.role,
        now=utcnow(),
        seen=request.form.get("seen") or None,
    )
    session.commit()
    if not jobs:
        flash(f"Nothing to do: every target of {destination.name} holds {source.name}'s revisions.")
        return redirect(url_for("compare.project", name=name, a=source.name, b=destination.name))
    held = " (awaiting approval)" if destination.protected else ""
    flash(f"Promotion from {source.name} to {destination.name}: {len(jobs)} job(s) requested{held}")
    return redirect(url_for("jobs.index", project=name))
