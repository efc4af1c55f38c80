"""A target's history: revision files against what was applied, and its timeline."""

from __future__ import annotations

from flask import Blueprint, render_template

from migdash.jobs.history import target_history
from migdash.permissions import Permission
from migdash.services import services_of
from migdash.status import cached_status, project_graph
from migdash.store.registry import get_target
from migdash.web.auth import requires
from migdash.web.db import db

bp = Blueprint("history", __name__, url_prefix="/history")


@bp.get("/targets/<name>")
@requires(Permission.VIEW)
def target(name: str) -> str:
    session = db()
    row = get_target(session, name)
    (report,) = cached_status(session, [row])
    graph, problem = project_graph(services_of().catalog, row.project)
    current = report.status.current if report.revisions_known else None
    return render_template(
        "history/target.html",
        target=row,
        report=report,
        problem=problem,
        graph=graph,
        history=target_history(session, graph, row, current),
    )
