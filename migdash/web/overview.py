"""The overview: every project x environment, each cell listing its targets' states."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, current_app, request
from werkzeug.wrappers import Response

from migdash.jobs.drift import DriftKind, latest_drift_checks
from migdash.jobs.schemas import fleet_groups, latest_schema_snapshots, schema_mismatches
from migdash.permissions import Permission
from migdash.services import services_of
from migdash.status import build_overview, cached_status
from migdash.store import registry
from migdash.store.queries import all_environments, all_projects, find_targets
from migdash.web.auth import requires
from migdash.web.db import db
from migdash.web.htmx import render_page_or_partial
from migdash.web.refresh import refresh_for_page

bp = Blueprint("overview", __name__)


def _filters() -> dict[str, str]:
    """``?project=`` and ``?environment=``: one row, one column, or one cell listed in full."""
    return {
        name: request.args[name].strip()
        for name in ("project", "environment")
        if request.args.get(name, "").strip()
    }


def _render(*, probe: bool, force: bool = False) -> Response:
    if probe:
        max_age = (
            None if force else timedelta(seconds=current_app.config["MIGDASH_REFRESH_SECONDS"])
        )
        refresh_for_page(db(), max_age)
    session = db()
    services = services_of()
    filters = _filters()
    if "project" in filters:
        registry.get_project(session, filters["project"])  # NotFound names it
    if "environment" in filters:
        registry.get_environment(session, filters["environment"])
    targets = find_targets(session, **filters)
    reports = cached_status(session, targets)
    environments = [
        e for e in all_environments(session) if e.name == filters.get("environment", e.name)
    ]
    projects = [p for p in all_projects(session) if p.name == filters.get("project", p.name)]
    ids = [t.id for t in targets]
    mismatches = schema_mismatches(fleet_groups(reports, latest_schema_snapshots(session, ids)))
    names = {t.id: t.name for t in targets}
    history = {
        names[target_id]: check
        for target_id, check in latest_drift_checks(session, ids, DriftKind.HISTORY).items()
        if check.outcome in ("drift", "stamped_not_applied")
    }
    rows = build_overview(
        services.catalog,
        projects,
        [e.id for e in environments],
        reports,
        targets,
        latest_drift_checks(session, ids),
        flagged=set(mismatches) | set(history),
        full=len(filters) == 2,
    )
    return render_page_or_partial(
        "overview/index.html",
        "partials/overview/matrix.html",
        rows=rows,
        mismatches=mismatches,
        history_drift=history,
        environments=environments,
        filters=filters,
        refresh_seconds=current_app.config["MIGDASH_REFRESH_SECONDS"],
    )


@bp.get("/")
@requires(Permission.VIEW)
def index() -> Response:
    """The page renders from snapshots at once; the matrix then refreshes itself."""
    return _render(probe=False)


@bp.get("/overview/matrix")
@requires(Permission.VIEW)
def matrix() -> Response:
    """The matrix fragment, re-probing targets whose snapshot is older than the refresh period.

    The probing runs in the background; the fragment waits for it at most
    ``MIGDASH_PAGE_WAIT_SECONDS`` and shows the snapshots recorded by then.
    """
    return _render(probe=True)


@bp.post("/overview/probe")
@requires(Permission.VIEW)
def probe_now() -> Response:
    """Probe every target now, whatever the age of its snapshot."""
    return _render(probe=True, force=True)
