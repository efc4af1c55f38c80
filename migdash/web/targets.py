"""Target pages: state, current revision(s), pending list, recent snapshots."""

from __future__ import annotations

from flask import Blueprint
from werkzeug.wrappers import Response

from migdash.engine.state import TargetState, offered_destinations
from migdash.jobs.locks import lease_of
from migdash.jobs.records import describe, list_jobs
from migdash.permissions import Permission
from migdash.services import services_of
from migdash.status import (
    PENDING_KNOWN,
    POSITION_UNKNOWN,
    cached_status,
    project_graph,
    refresh_status,
)
from migdash.store.queries import recent_snapshots
from migdash.store.registry import get_target
from migdash.web.auth import requires
from migdash.web.db import db
from migdash.web.htmx import render_page_or_partial

bp = Blueprint("targets", __name__, url_prefix="/targets")


def _render(name: str, *, probe: bool) -> Response:
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
        "partials/targets/status.html",
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
    )


@bp.get("/<name>")
@requires(Permission.VIEW)
def detail(name: str) -> Response:
    return _render(name, probe=False)


@bp.post("/<name>/probe")
@requires(Permission.VIEW)
def probe(name: str) -> Response:
    return _render(name, probe=True)
