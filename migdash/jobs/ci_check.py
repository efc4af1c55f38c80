"""The facts ``migdash check`` judges: each target's state and latest drift checks, each head.

One function gathers them for both ways the gate runs: locally on the
registry (``migdash check``) and on a server (``GET /api/v1/check``, read by
``migdash check --server``), so a pipeline gets the same verdict either way.
Targets are probed now unless the caller asks for the cached snapshots.
Drift checks are not run here (they run project code and take seconds per
target): the latest recorded ``models`` and ``history`` checks are reported,
with their time, as ``migdash drift`` / ``drift-history`` or the target page
left them.  Adds snapshots and flushes; the caller commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from migdash.jobs.context import JobServices
from migdash.jobs.drift import DriftKind, latest_drift_checks
from migdash.status import cached_status, project_graph, refresh_status
from migdash.store import registry
from migdash.store.models import Project, Target
from migdash.store.queries import all_projects, find_targets
from migdash.store.schema_models import DriftCheck


def gather_check_facts(
    session: Session,
    services: JobServices,
    *,
    project: str | None,
    environment: str | None,
    probe: bool,
    now: datetime,
) -> dict[str, Any]:
    """Targets (of *project* / in *environment*) and the projects concerned, as JSON data.

    :raises NotFound: *project* or *environment* names nothing (a typo must
        not pass a gate by matching no target).
    """
    projects = [registry.get_project(session, project)] if project else None
    if environment:
        registry.get_environment(session, environment)
    targets = find_targets(session, project=project, environment=environment)
    if probe:
        reports = refresh_status(session, services.catalog, services.probes, targets)
    else:
        reports = cached_status(session, targets)
    ids = [t.id for t in targets]
    drift = {kind: latest_drift_checks(session, ids, kind) for kind in DriftKind}
    return {
        "checked_at": now.isoformat() + "Z",
        "probed": probe,
        "project": project,
        "environment": environment,
        "projects": [
            _project_facts(services, row)
            for row in projects or _projects_of(session, targets, environment)
        ],
        "targets": [
            {
                **report.as_json(),
                "drift": {
                    kind.value: _drift_facts(drift[kind].get(report.target_id))
                    for kind in DriftKind
                },
            }
            for report in reports
        ],
    }


def _projects_of(
    session: Session, targets: Sequence[Target], environment: str | None
) -> Sequence[Project]:
    """Every project, or with an environment only those with a target there."""
    if not environment:
        return all_projects(session)
    return sorted({t.project_id: t.project for t in targets}.values(), key=lambda p: p.name)


def _project_facts(services: JobServices, project: Project) -> dict[str, Any]:
    graph, problem = project_graph(services.catalog, project)
    return {
        "project": project.name,
        "heads": list(graph.heads) if graph is not None else None,
        "error": problem,
    }


def _drift_facts(check: DriftCheck | None) -> dict[str, Any] | None:
    if check is None:
        return None
    return {
        "outcome": check.outcome,
        "summary": check.summary,
        "checked_at": check.checked_at.isoformat() + "Z",
    }
