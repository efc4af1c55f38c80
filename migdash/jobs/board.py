"""The compare page's board: one column per environment holding a project's targets, in order.

Each target shows its current revisions, pending count and state (from the
snapshots, refreshed first when older than *max_age*, as the overview's
matrix does) and the fingerprint of its latest schema snapshot.  Reads only;
nothing here commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from migdash.jobs.context import JobServices
from migdash.jobs.schemas import latest_schema_snapshots
from migdash.status import TargetReport, project_graph, refresh_status
from migdash.store.models import Environment, Project, Target
from migdash.store.queries import find_targets


@dataclass(frozen=True)
class BoardEntry:
    """One target in its environment's column."""

    report: TargetReport
    fingerprint: str | None = None
    """The latest schema snapshot's fingerprint; None when no snapshot was taken yet."""
    fingerprint_at: datetime | None = None


@dataclass(frozen=True)
class EnvironmentColumn:
    name: str
    position: int
    protected: bool
    promotion_rule: str
    entries: tuple[BoardEntry, ...]


@dataclass(frozen=True)
class Board:
    """The project's environments as columns, in their order."""

    project: str
    columns: tuple[EnvironmentColumn, ...]
    messages: Mapping[str, str]
    """Revision id -> message, for every revision a target sits at."""
    problem: str | None
    """Why the project's revisions cannot be read (the board still shows the targets)."""


def project_environments(session: Session, project: Project) -> list[Environment]:
    """Environments holding targets of *project*, in order (position, then age)."""
    return list(
        session.scalars(
            sa.select(Environment)
            .where(
                Environment.id.in_(
                    sa.select(Target.environment_id).filter_by(project_id=project.id)
                )
            )
            .order_by(Environment.position, Environment.id)
        ).all()
    )


def statuses(
    session: Session, services: JobServices, targets: Sequence[Target], max_age: timedelta | None
) -> list[TargetReport]:
    """Reports from snapshots no older than *max_age* (older ones are probed first)."""
    return refresh_status(session, services.catalog, services.probes, targets, max_age=max_age)


def build_board(
    session: Session, services: JobServices, project: Project, *, max_age: timedelta | None
) -> Board:
    """The compare page's columns: each environment's targets with state and fingerprint."""
    targets = find_targets(session, project=project.name)
    reports = {r.target_id: r for r in statuses(session, services, targets, max_age)}
    prints = latest_schema_snapshots(session, [t.id for t in targets])
    graph, problem = project_graph(services.catalog, project)
    columns = []
    for env in project_environments(session, project):
        entries = tuple(
            BoardEntry(
                reports[t.id],
                prints[t.id].fingerprint if t.id in prints else None,
                prints[t.id].taken_at if t.id in prints else None,
            )
            for t in targets
            if t.environment_id == env.id
        )
        columns.append(
            EnvironmentColumn(env.name, env.position, env.protected, env.promotion_rule, entries)
        )
    messages = {
        rev: graph.nodes[rev].message
        for r in reports.values()
        for rev in r.status.current
        if graph is not None and rev in graph.nodes
    }
    return Board(project.name, tuple(columns), messages, problem)
