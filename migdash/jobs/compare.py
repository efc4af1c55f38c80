"""What separates two environments or two targets, and what promoting one to the other involves.

A comparison takes two sides (two environments, or two targets) and lists
the revisions each side lacks, both ways, in the order ``alembic upgrade``
would apply them (:func:`migdash.engine.compare.compare_sides`), with which
databases of the lacking side lack each one.  Between two environments the
compare page also offers the promotions that would bring something, with
the promotion-order check (:func:`check_order`).

Reads only: statuses come from the snapshots, refreshed first when older
than *max_age*.  Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from migdash.engine.compare import compare_sides, held_by_any, held_by_every, tips
from migdash.engine.graph import RevisionGraph
from migdash.errors import InvalidInput, NotFound
from migdash.jobs.board import Board, build_board, project_environments, statuses
from migdash.jobs.context import JobServices
from migdash.status import TargetReport, placeable, project_graph
from migdash.store.models import Environment, Project, Target
from migdash.store.queries import find_targets


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
    split: bool = False
    """The placed databases do not all hold the same revisions."""

    @property
    def unknown(self) -> tuple[TargetReport, ...]:
        return tuple(r for r in self.reports if r not in self.placed)

    @property
    def agree(self) -> bool:
        """Every database of the side holds the same revisions (and none is unknown)."""
        return not self.unknown and not self.split

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


def make_side(graph: RevisionGraph, kind: str, name: str, reports: Sequence[TargetReport]) -> Side:
    """A side of *reports*: which ones *graph* can place, and what they hold together."""
    placed = tuple(r for r in reports if placeable(graph, r))
    held = held_by_any(graph, [r.status.current for r in placed])
    split = len({graph.ancestor_mask(r.status.current) for r in placed}) > 1
    return Side(kind, name, tuple(reports), placed, tips(graph, held), split)


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


@dataclass(frozen=True)
class PromotionOffer:
    """Bringing every target of *destination* to *source*'s revisions, as the page offers it."""

    source: str
    destination: str
    protected: bool
    revisions: tuple[LackedRevision, ...]
    order: OrderCheck
    blocked: str | None = None
    """Why the source has no one set of revisions to promote (its targets disagree, or are
    unknown)."""


@dataclass(frozen=True)
class ComparePage:
    board: Board
    comparison: Comparison | None = None
    offers: tuple[PromotionOffer, ...] = ()


def compare_page(
    session: Session,
    services: JobServices,
    project: Project,
    *,
    environments: tuple[Environment, Environment] | None = None,
    targets: tuple[Target, Target] | None = None,
    max_age: timedelta | None,
) -> ComparePage:
    """The board, and the comparison of two environments or two targets if chosen.

    Two environments also get their promotions, each way that brings something.
    """
    board = build_board(session, services, project, max_age=max_age)
    if targets is not None:
        comparison = compare_targets(session, services, project, *targets, max_age=max_age)
        return ComparePage(board, comparison)
    if environments is None:
        return ComparePage(board)
    comparison = compare_environments(session, services, project, *environments, max_age=max_age)
    graph, _ = project_graph(services.catalog, project)
    if graph is None or comparison.problem:
        return ComparePage(board, comparison)
    env_a, env_b = environments
    offers = [
        _offer(session, services, graph, project, source, destination, lacks, max_age)
        for source, destination, lacks in (
            (comparison.a, env_b, comparison.b_lacks),
            (comparison.b, env_a, comparison.a_lacks),
        )
        if lacks and env_a.id != env_b.id
    ]
    return ComparePage(board, comparison, tuple(offers))


def _offer(
    session: Session,
    services: JobServices,
    graph: RevisionGraph,
    project: Project,
    source: Side,
    destination: Environment,
    lacks: tuple[LackedRevision, ...],
    max_age: timedelta | None,
) -> PromotionOffer:
    promoted = [r.revision for r in lacks]
    order = check_order(session, services, graph, project, destination, promoted, max_age=max_age)
    blocked = None
    if not source.agree:
        blocked = f"the targets of {source.name} do not all hold the same revisions: " + "; ".join(
            f"{r.target} at {', '.join(r.status.current) or '<base>'}"
            if r in source.placed
            else f"{r.target} unknown ({r.status.state.value})"
            for r in source.reports
        )
    return PromotionOffer(
        source.name, destination.name, destination.protected, lacks, order, blocked
    )
