"""Target pages: state, current revision(s), pending list, recent snapshots, drift."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, url_for
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from migdash.engine.state import TargetState, offered_destinations
from migdash.jobs.drift import DriftKind, check_model_drift, latest_drift_checks
from migdash.jobs.locks import lease_of
from migdash.jobs.records import describe, list_jobs
from migdash.jobs.reference import check_history_drift
from migdash.jobs.reference_build import scratch_servers
from migdash.permissions import Permission
from migdash.services import services_of
from migdash.status import (
    PENDING_KNOWN,
    POSITION_UNKNOWN,
    cached_status,
    project_graph,
    refresh_status,
)
from migdash.store.models import Target, utcnow
from migdash.store.queries import recent_snapshots
from migdash.store.registry import get_target
from migdash.web.auth import requires
from migdash.web.db import db
from migdash.web.htmx import is_htmx, render_page_or_partial

bp = Blueprint("targets", __name__, url_prefix="/targets")


def _render(name: str, *, probe: bool, partial: str = "partials/targets/status.html") -> Response:
    session = db()
    services = services_of()
    target = get_target(session, name)
    (report,) = cached_status(session, [target])
    if probe or report.status.state is TargetState.NOT_PROBED:
        # a target never probed is probed on its first view: its page offers actions
        # from where it really is, not from a guess
        (report,) = refresh_status(session, services.catalog, services.probes, [target])
        session.commit()
    graph, problem = project_graph(services.catalog, target.project)
    return render_page_or_partial(
        "targets/detail.html",
        partial,
        target=target,
        report=report,
        graph=graph,
        problem=problem,
        snapshots=recent_snapshots(session, target.id),
        lease=lease_of(session, target.id),
        jobs=list_jobs(session, target=target.name, limit=10),
        describe=describe,
        destinations=offered_destinations(graph, report.status.current)
        if graph is not None and report.revisions_known
        else None,
        pending_known_states={state.value for state in PENDING_KNOWN},
        position_unknown_states={state.value for state in POSITION_UNKNOWN},
        **drift_context(session, target),
    )


@bp.get("/<name>")
@requires(Permission.VIEW)
def detail(name: str) -> Response:
    return _render(name, probe=False)


@bp.post("/<name>/probe")
@requires(Permission.VIEW)
def probe(name: str) -> Response:
    return _render(name, probe=True)


@bp.post("/<name>/drift")
@requires(Permission.REQUEST)
def check_drift(name: str) -> Response:
    """Compare the target with its project's models now (a child process runs env.py)."""
    session = db()
    target = get_target(session, name)
    check_model_drift(session, services_of().jobs, target, utcnow())
    session.commit()
    if not is_htmx():
        return redirect(url_for("targets.detail", name=name, _anchor="drift"), code=303)
    return _render(name, probe=False, partial="partials/targets/drift.html")


@bp.post("/<name>/drift-history")
@requires(Permission.REQUEST)
def check_history(name: str) -> Response:
    """Compare the live schema with what its revisions give (built on a scratch database)."""
    session, services = db(), services_of()
    target = get_target(session, name)
    check_history_drift(
        session, services.jobs, target, utcnow(), scratch=scratch_servers(services.settings)
    )
    session.commit()
    if not is_htmx():
        return redirect(url_for("targets.detail", name=name, _anchor="history-drift"), code=303)
    return _render(name, probe=False, partial="partials/targets/drift_history.html")


def drift_context(session: Session, target: Target) -> dict[str, Any]:
    """The latest check against the models, and its operations highlighted as the file would be."""
    check = latest_drift_checks(session, [target.id]).get(target.id)
    history = latest_drift_checks(session, [target.id], DriftKind.HISTORY).get(target.id)
    operations = check.detail.get("operations") if check is not None else None
    return {
        "history_drift": history,
        "drift": check,
        "drift_operations": Markup(  # noqa: S704 - Pygments escapes the code it formats
            highlight(operations, PythonLexer(), HtmlFormatter(cssclass="source"))
        )
        if operations
        else None,
    }
