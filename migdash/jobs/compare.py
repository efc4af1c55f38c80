"""Environments side by side, and what separates two of them (compare page, ``migdash compare``).

The board is one column per environment holding the project's targets, in
the environments' order: each target's current revisions, pending count,
state and latest schema fingerprint.  A comparison takes two sides (two
environments, or two targets) and lists the revisions each side lacks, both
ways, in the order ``alembic upgrade`` would apply them
(:func:`migdash.engine.compare.compare_sides`), with which databases of the
lacking side lack each one.

Reads only: statuses come from the snapshots, refreshed first when older
than *max_age*, like the overview's matrix.  Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from migdash.engine.compare import compare_sides, held_by_any, held_by_every, tips
from migdash.engine.graph import RevisionGraph
from migdash.errors import InvalidInput, NotFound
from migdash.jobs.context import JobServices
from migdash.status import TargetReport, placeable, project_graph, refresh_status
from migdash.store.models import Environment, Project, Target
from migdash.store.queries import find_targets
from migdash.store.schema_models import SchemaSnapshot


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


@dataclass(frozen=True)
class Side:
    """One side of a comparison: an environment's targets, or one target."""

    kind: str
    """``environment`` or ``target``."""
    name: str
    reports: tuple[TargetReport, ...]
    placed: tuple[TargetReport, ...]
    """The reports whose revisions the graph can place (the others are unknown)."""
    revisions: tuple[str, ...]
    """What its databases hold, as the fewest revisions: their common destination."""

    @property
    def unknown(self) -> tuple[TargetReport, ...]:
        return tuple(r for r in self.reports if r not in self.placed)

    @property
    def agree(self) -> bool:
        """Every database of the side holds the same revisions (and none is unknown)."""
        return not self.unknown and len({r.status.current for r in self.placed}) <= 1

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "revisions": list(self.revisions),
            "agree": self.agree,
            "targets": [r.as_json() for r in self.reports],
            "unknown": [r.target for r in self.unknown],
        }


@dataclass(frozen=True)
class LackedRevision:
    revision: str
    message: str
    lacked_by: tuple[str, ...]
    """The targets of the lacking side that do not hold it."""

    def as_json(self) -> dict[str, Any]:
        return {"revision": self.revision, "message": self.message, "lacked_by": self.lacked_by}


@dataclass(frozen=True)
class Comparison:
    """What each of two sides lacks of the other, in apply order."""

    project: str
    a: Side
    b: Side
    a_lacks: tuple[LackedRevision, ...] = ()
    b_lacks: tuple[LackedRevision, ...] = ()
    problem: str | None = None
    """Why nothing could be compared (a broken project, a side nobody can place)."""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def same(self) -> bool:
        return self.problem is None and not self.a_lacks and not self.b_lacks

    def as_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "a": self.a.as_json(),
            "b": self.b.as_json(),
            "a_lacks": [r.as_json() for r in self.a_lacks],
            "b_lacks": [r.as_json() for r in self.b_lacks],
            "same": self.same,
            "problem": self.problem,
            "notes": list(self.notes),
        }


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


def latest_fingerprints(session: Session, target_ids: Sequence[int]) -> dict[int, SchemaSnapshot]:
    """The newest schema snapshot of each target (targets never snapshotted are absent)."""
    if not target_ids:
        return {}
    newest = (
        sa.select(SchemaSnapshot.target_id, sa.func.max(SchemaSnapshot.id).label("id"))
        .where(SchemaSnapshot.target_id.in_(target_ids))
        .group_by(SchemaSnapshot.target_id)
        .subquery()
    )
    rows = session.scalars(
        sa.select(SchemaSnapshot).join(newest, SchemaSnapshot.id == newest.c.id)
    ).all()
    return {row.target_id: row for row in rows}


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
    prints = latest_fingerprints(session, [t.id for t in targets])
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


def make_side(graph: RevisionGraph, kind: str, name: str, reports: Sequence[TargetReport]) -> Side:
    placed = tuple(r for r in reports if placeable(graph, r))
    held = held_by_any(graph, [r.status.current for r in placed])
    return Side(kind, name, tuple(reports), placed, tips(graph, held))


def compare_reports(
    graph: RevisionGraph | None,
    project: str,
    sides: tuple[tuple[str, str, Sequence[TargetReport]], tuple[str, str, Sequence[TargetReport]]],
    problem: str | None = None,
) -> Comparison:
    """Compare two sides given as (kind, name, reports); a pure function of the statuses."""
    if graph is None:
        empty = [Side(kind, name, tuple(reports), (), ()) for kind, name, reports in sides]
        return Comparison(project, empty[0], empty[1], problem=problem)
    a, b = (make_side(graph, kind, name, reports) for kind, name, reports in sides)
    notes = tuple(_unknown_note(side) for side in (a, b) if side.unknown)
    for side in (a, b):
        if not side.placed:
            return Comparison(
                project, a, b, problem=f"nothing is known of {side.kind} {side.name}", notes=notes
            )
    result = compare_sides(
        graph, [r.status.current for r in a.placed], [r.status.current for r in b.placed]
    )
    return Comparison(
        project,
        a,
        b,
        a_lacks=_lacked(graph, result.a_lacks, a),
        b_lacks=_lacked(graph, result.b_lacks, b),
        notes=notes,
    )


def _lacked(
    graph: RevisionGraph, revisions: Sequence[str], side: Side
) -> tuple[LackedRevision, ...]:
    masks = {r.target: graph.ancestor_mask(r.status.current) for r in side.placed}
    return tuple(
        LackedRevision(
            rev,
            graph.nodes[rev].message,
            tuple(name for name, mask in masks.items() if not graph.in_mask(mask, rev)),
        )
        for rev in revisions
    )


def _unknown_note(side: Side) -> str:
    names = ", ".join(f"{r.target} ({r.status.state.value})" for r in side.unknown)
    return f"left out of {side.kind} {side.name}, their revisions are not known: {names}"


def compare_environments(
    session: Session,
    services: JobServices,
    project: Project,
    env_a: Environment,
    env_b: Environment,
    *,
    max_age: timedelta | None,
) -> Comparison:
    """What each of two environments lacks of the other, for *project*'s targets in them."""
    sides = []
    for env in (env_a, env_b):
        targets = find_targets(session, project=project.name, environment=env.name)
        if not targets:
            raise NotFound(f"project {project.name} has no targets in environment {env.name}")
        sides.append(("environment", env.name, statuses(session, services, targets, max_age)))
    graph, problem = project_graph(services.catalog, project)
    return compare_reports(graph, project.name, (sides[0], sides[1]), problem)


def compare_targets(
    session: Session,
    services: JobServices,
    project: Project,
    target_a: Target,
    target_b: Target,
    *,
    max_age: timedelta | None,
) -> Comparison:
    """What each of two targets of *project* lacks of the other."""
    for target, field_name in ((target_a, "target_a"), (target_b, "target_b")):
        if target.project_id != project.id:
            raise InvalidInput(
                f"target {target.name} belongs to project {target.project.name}, "
                f"not {project.name}",
                field=field_name,
            )
    report_a, report_b = statuses(session, services, [target_a, target_b], max_age)
    graph, problem = project_graph(services.catalog, project)
    return compare_reports(
        graph,
        project.name,
        (("target", target_a.name, [report_a]), ("target", target_b.name, [report_b])),
        problem,
    )


@dataclass(frozen=True)
class OrderCheck:
    """Promotion order: what a promotion would bring *environment* that the one before lacks."""

    environment: str
    rule: str
    """The environment's promotion rule: ``warn`` or ``refuse``."""
    previous: str | None
    """The nearest earlier environment holding targets of the project (None: it is the first)."""
    out_of_order: tuple[str, ...] = ()
    """Revisions to promote that some target of *previous* does not hold yet."""
    unknown: tuple[str, ...] = ()
    """Targets of *previous* whose revisions are not known: nothing can be confirmed there."""

    @property
    def refused(self) -> bool:
        return bool(self.out_of_order) and self.rule == "refuse"


def previous_environment(
    session: Session, project: Project, environment: Environment
) -> Environment | None:
    """The environment just before *environment* (by position) among *project*'s environments."""
    earlier = [
        env
        for env in project_environments(session, project)
        if (env.position, env.id) < (environment.position, environment.id)
    ]
    return earlier[-1] if earlier else None


def check_order(
    session: Session,
    services: JobServices,
    graph: RevisionGraph,
    project: Project,
    environment: Environment,
    promoted: Sequence[str],
    *,
    max_age: timedelta | None,
) -> OrderCheck:
    """Which of *promoted* the environment before *environment* does not hold yet.

    A target there whose revisions are unknown cannot vouch for anything, so
    then every promoted revision counts as not there yet.
    """
    previous = previous_environment(session, project, environment)
    if previous is None or not promoted:
        return OrderCheck(environment.name, environment.promotion_rule, None)
    targets = find_targets(session, project=project.name, environment=previous.name)
    reports = statuses(session, services, targets, max_age)
    unknown = tuple(r.target for r in reports if not placeable(graph, r))
    held = set() if unknown else held_by_every(graph, [r.status.current for r in reports])
    return OrderCheck(
        environment.name,
        environment.promotion_rule,
        previous.name,
        tuple(rev for rev in promoted if rev not in held),
        unknown,
    )
