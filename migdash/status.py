"""Probe targets, judge their state against their project's graph, and keep snapshots.

This is the one place where the engine (graphs, probes) meets the store
(targets, snapshots); the overview, the target page, ``migdash status`` and
``migdash current`` all go through :func:`refresh_status` or
:func:`cached_status`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from migdash.engine.catalog import GraphCatalog
from migdash.engine.graph import RevisionGraph
from migdash.engine.probe import ProbePool, ProbeRequest, TargetProbe, VersionTable
from migdash.engine.scrub import scrub_text, url_secrets
from migdash.engine.state import TargetState, TargetStatus, assess_target
from migdash.errors import BrokenProject
from migdash.jobs.events import announce_heads, announce_unreachable
from migdash.store.models import Project, Snapshot, Target, utcnow
from migdash.store.queries import SnapshotRow, latest_snapshot_rows, latest_snapshots
from migdash.store.schema_models import DriftCheck

POSITION_UNKNOWN = frozenset({TargetState.UNREACHABLE, TargetState.NOT_PROBED})
"""States in which nobody knows which revisions the database holds (it has not answered)."""
PENDING_KNOWN = frozenset({TargetState.UP_TO_DATE, TargetState.BEHIND, TargetState.UNINITIALISED})
"""States whose pending list is a fact; in every other state it is unknown, not empty."""


@dataclass(frozen=True)
class TargetReport:
    """One target's status with what it belongs to, ready for a page or JSON."""

    target: str
    project: str
    environment: str
    status: TargetStatus
    checked_at: datetime | None
    target_id: int = 0

    @property
    def revisions_known(self) -> bool:
        """False when the database has not answered: its ``current`` is unknown, not empty."""
        return self.status.state not in POSITION_UNKNOWN

    @property
    def pending_known(self) -> bool:
        """False when an empty pending list would mean "we cannot tell", not "nothing to do"."""
        return self.status.state in PENDING_KNOWN

    def as_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "environment": self.environment,
            "target": self.target,
            "state": self.status.state.value,
            # null, not [], where the database has not told us: [] would claim "nothing"
            "current": list(self.status.current) if self.revisions_known else None,
            "heads": list(self.status.heads),
            "pending": list(self.status.pending) if self.pending_known else None,
            "error": self.status.error,
            "checked_at": self.checked_at.isoformat() + "Z" if self.checked_at else None,
        }


def project_graph(
    catalog: GraphCatalog, project: Project, *, background: bool = False
) -> tuple[RevisionGraph | None, str | None]:
    """The project's graph, or None and the reason it cannot be loaded.

    With *background* a big project still loading gives (None, None) at once
    instead of making a page wait for thousands of revision files.
    """
    try:
        if background:
            return catalog.graph_or_none(project.script_location), None
        return catalog.graph(project.script_location), None
    except BrokenProject as exc:
        return None, str(exc)


def probe_request(target: Target) -> ProbeRequest:
    """What to probe for *target*: its URL and its (possibly overridden) version table."""
    return ProbeRequest(
        url=target.url,
        version_table=VersionTable(
            name=target.version_table or target.project.version_table,
            schema=target.version_table_schema or target.project.version_table_schema,
        ),
    )


def refresh_status(
    session: Session,
    catalog: GraphCatalog,
    pool: ProbePool,
    targets: Sequence[Target],
    *,
    max_age: timedelta | None = None,
) -> list[TargetReport]:
    """Probe *targets* (all, or only those whose snapshot is older than *max_age*) and record.

    Probes run concurrently, each bounded on its own; each result is judged
    against its project's cached graph and stored as a snapshot.  The caller
    commits.
    """
    stale, snapshots = stale_targets(session, targets, max_age)
    if stale:  # the steady state of an auto-refresh probes and writes nothing
        probes = pool.probe_many([probe_request(t) for t in stale])
        record_probes(session, catalog, list(zip(stale, probes, strict=True)), snapshots)
        session.flush()
    # Read back rather than reuse what was read before probing: a job or another page may
    # have recorded a newer snapshot meanwhile, and every page must show the same latest one.
    return cached_status(session, targets)


def stale_targets(
    session: Session, targets: Sequence[Target], max_age: timedelta | None
) -> tuple[list[Target], dict[int, Snapshot]]:
    """The *targets* whose latest snapshot is older than *max_age* (all when None), and the
    latest snapshots of those (read as rows first, so a fresh fleet costs no ORM objects)."""
    now = utcnow()
    seen = latest_snapshot_rows(session, [t.id for t in targets])
    stale = [
        t
        for t in targets
        if max_age is None or t.id not in seen or now - seen[t.id].checked_at > max_age
    ]
    return stale, (latest_snapshots(session, [t.id for t in stale]) if stale else {})


def record_probes(
    session: Session,
    catalog: GraphCatalog,
    probed: Sequence[tuple[Target, TargetProbe]],
    snapshots: Mapping[int, Snapshot],
) -> None:
    """Judge each probe against its project's cached graph and store it as a snapshot."""
    now = utcnow()
    graphs: dict[int, tuple[RevisionGraph | None, str | None]] = {}
    for target, probe in probed:
        if target.project_id not in graphs:
            graphs[target.project_id] = project_graph(catalog, target.project)
            loaded = graphs[target.project_id][0]
            if loaded is not None:
                announce_heads(session, target.project_id, target.project.name, loaded.heads, now)
        graph, problem = graphs[target.project_id]
        status = assess_target(graph, probe, track=target.project.track, project_error=problem)
        record_snapshot(session, target, status, probe, snapshots.get(target.id), now)
    session.flush()


def cached_status(session: Session, targets: Sequence[Target]) -> list[TargetReport]:
    """Reports from the latest snapshots only (no probing); unprobed targets say so."""
    return reports_from(targets, latest_snapshot_rows(session, [t.id for t in targets]))


def reports_from(
    targets: Sequence[Target], snapshots: Mapping[int, SnapshotRow]
) -> list[TargetReport]:
    reports = []
    for target in targets:
        snapshot = snapshots.get(target.id)
        if snapshot is None:
            status = TargetStatus(TargetState.NOT_PROBED, (), (), (), None)
            reports.append(
                TargetReport(
                    target.name,
                    target.project.name,
                    target.environment.name,
                    status,
                    None,
                    target.id,
                )
            )
        else:
            reports.append(report_from_snapshot(target, snapshot))
    return reports


def record_snapshot(
    session: Session,
    target: Target,
    status: TargetStatus,
    probe: TargetProbe,
    previous: Snapshot | None,
    now: datetime,
) -> Snapshot:
    """Store *status*; an unchanged state only moves the previous row's ``checked_at``."""
    error = scrub_text(status.error, url_secrets(target.url)) if status.error else None
    fields = {
        "state": status.state.value,
        "current": list(status.current),
        "heads": list(status.heads),
        "pending": list(status.pending),
        "error": error,
    }
    if previous is not None and all(getattr(previous, k) == v for k, v in fields.items()):
        previous.checked_at = now
        previous.elapsed_ms = int(probe.elapsed * 1000)
        return previous
    snapshot = Snapshot(
        target_id=target.id,
        taken_at=now,
        checked_at=now,
        elapsed_ms=int(probe.elapsed * 1000),
        **fields,
    )
    session.add(snapshot)
    if status.state is TargetState.UNREACHABLE and (
        previous is None or previous.state != TargetState.UNREACHABLE.value
    ):
        announce_unreachable(session, target, error, now)
    return snapshot


def record_status(
    session: Session, target: Target, status: TargetStatus, probe: TargetProbe, now: datetime
) -> Snapshot:
    """Store a status assessed outside :func:`refresh_status` (a plan's probe, a worker's)."""
    previous = latest_snapshots(session, [target.id]).get(target.id)
    return record_snapshot(session, target, status, probe, previous, now)


def report_from_snapshot(target: Target, snapshot: SnapshotRow) -> TargetReport:
    status = TargetStatus(
        state=TargetState(snapshot.state),
        current=tuple(snapshot.current),
        heads=tuple(snapshot.heads),
        pending=tuple(snapshot.pending),
        error=snapshot.error,
    )
    return TargetReport(
        target.name,
        target.project.name,
        target.environment.name,
        status,
        snapshot.checked_at,
        target.id,
    )


CELL_LISTS_ALL = 12
"""A cell of at most this many targets lists every one of them."""
ATTENTION_LIMIT = 25
"""A bigger cell lists at most this many of the targets that need attention."""


@dataclass(frozen=True)
class OverviewCell:
    """The targets of one project in one environment.

    A fleet cell (hundreds of tenants) lists the targets that need attention
    (not up to date, or flagged) and counts the rest by state, so the page
    stays readable and cheap; ``?project=&environment=`` lists a cell in full.
    """

    reports: tuple[TargetReport, ...]
    """The targets listed, each with its state and revisions."""
    drift: Mapping[str, DriftCheck] = field(default_factory=dict)
    """Target name -> its latest check against the models, for targets that drifted."""
    folded: tuple[tuple[str, int], ...] = ()
    """(state, count) of the targets not listed, most frequent first."""
    total: int = 0
    """Every target of the cell, listed or not."""


def fold_cell(
    reports: Sequence[TargetReport],
    drift: Mapping[str, DriftCheck],
    flagged: frozenset[str] | set[str],
    *,
    full: bool = False,
) -> OverviewCell:
    """List a small cell (or a *full* one) whole; in a big one, list who needs attention."""
    if full or len(reports) <= CELL_LISTS_ALL:
        return OverviewCell(tuple(reports), drift, (), len(reports))
    attention = [
        r
        for r in reports
        if r.status.state is not TargetState.UP_TO_DATE or r.target in flagged or r.target in drift
    ][:ATTENTION_LIMIT]
    listed = {r.target for r in attention}
    counts: dict[str, int] = {}
    for report in reports:
        if report.target not in listed:
            counts[report.status.state.value] = counts.get(report.status.state.value, 0) + 1
    folded = tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    return OverviewCell(tuple(attention), drift, folded, len(reports))


@dataclass(frozen=True)
class OverviewRow:
    project: Project
    cells: tuple[OverviewCell, ...]
    messages: dict[str, str]
    """Revision id -> message, for the revisions targets in this row sit at."""
    problem: str | None


def build_overview(
    catalog: GraphCatalog,
    projects: Sequence[Project],
    environment_ids: Sequence[int],
    reports: Sequence[TargetReport],
    targets: Sequence[Target],
    drift: Mapping[int, DriftCheck] | None = None,
    *,
    flagged: frozenset[str] | set[str] = frozenset(),
    full: bool = False,
) -> list[OverviewRow]:
    """Arrange reports into the projects x environments matrix the overview draws.

    *drift* maps target ids to their latest check against the models (read
    in one query by the caller); a cell badges the targets whose check found
    drift.  *flagged* names other targets a big cell must list (schema or
    history flags); *full* lists every target of every cell.
    """
    drifted = {i: c for i, c in (drift or {}).items() if c.outcome == "drift"}
    placement = {t.id: (t.project_id, t.environment_id) for t in targets}
    grouped: dict[tuple[int, int], list[TargetReport]] = {}
    for report in reports:
        grouped.setdefault(placement[report.target_id], []).append(report)
    rows = []
    for project in projects:
        graph, problem = project_graph(catalog, project, background=True)
        messages: dict[str, str] = {}
        cells = []
        for env_id in environment_ids:
            cell_drift = {
                r.target: drifted[r.target_id]
                for r in grouped.get((project.id, env_id), ())
                if r.target_id in drifted
            }
            cell = fold_cell(grouped.get((project.id, env_id), ()), cell_drift, flagged, full=full)
            for report in cell.reports:
                for rev in report.status.current:
                    if graph is not None and rev in graph.nodes:
                        messages[rev] = graph.nodes[rev].message
            cells.append(cell)
        rows.append(OverviewRow(project, tuple(cells), messages, problem))
    return rows


@dataclass(frozen=True)
class AppliedSplit:
    """Where one revision is applied: yes, no, and "cannot tell" (never folded into "no")."""

    applied: list[TargetReport] = field(default_factory=list)
    missing: list[TargetReport] = field(default_factory=list)
    unknown: list[TargetReport] = field(default_factory=list)
    """Targets that did not answer, or sit at revisions this project does not contain."""


def split_by_applied(
    graph: RevisionGraph, revision: str, reports: Sequence[TargetReport]
) -> AppliedSplit:
    """Targets that have *revision* applied (it is at or below their current), lack it, or may."""
    split = AppliedSplit()
    for report in reports:
        current = list(report.status.current)
        if not placeable(graph, report):
            split.unknown.append(report)
        elif current and graph.in_mask(graph.ancestor_mask(current), revision):
            split.applied.append(report)
        else:
            split.missing.append(report)
    return split


def placeable(graph: RevisionGraph, report: TargetReport) -> bool:
    """Whether *graph* can say where the target sits: it answered, at revisions *graph* has."""
    return report.revisions_known and all(rev in graph.nodes for rev in report.status.current)


def unplaced(graph: RevisionGraph, reports: Sequence[TargetReport]) -> list[TargetReport]:
    """Targets no marker can place on *graph*; pages list them as "position unknown"."""
    return [report for report in reports if not placeable(graph, report)]


def targets_by_head(graph: RevisionGraph, reports: Sequence[TargetReport]) -> dict[str, list[str]]:
    """For a forked project: each head -> targets whose current revisions all lead to it."""
    placed: dict[str, list[str]] = {head: [] for head in graph.heads}
    for report in reports:
        known = list(report.status.current)
        if not known or not placeable(graph, report):
            continue
        for head in graph.heads:
            if all(graph.is_ancestor(rev, head) for rev in known):
                placed[head].append(report.target)
    return placed
