"""A target's history as migdash saw it: files it applied, edits made after, and a timeline.

When a job upgrades a target, the text of every revision file it ran is
kept (:func:`record_applied`).  A later change to one of those files flags
the targets that ran it, and no others, with the diff
(:func:`edited_after_apply`); a change that only touches line endings,
whitespace or comments does not count.  Revisions a target holds that
migdash never applied are "not recorded", never "unchanged".

:func:`timeline` puts observed revisions (status snapshots) and schema
fingerprints (schema snapshots) in time order, each change attributed to
the migdash job that made it, or marked "outside migdash".
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from migdash.engine.graph import RevisionGraph
from migdash.engine.source import content_hashes
from migdash.store.models import Job, JobState, Snapshot, Target
from migdash.store.schema_models import AppliedRevision, SchemaSnapshot

KNOWN_STATES = ("up_to_date", "behind", "diverged", "uninitialised")
"""Snapshot states whose revisions were really read (not unreachable, not unknown)."""


def record_applied(
    session: Session,
    target_id: int,
    job_id: int | None,
    applied: Sequence[dict[str, str]],
    now: datetime,
) -> list[AppliedRevision]:
    """Keep each applied revision's text and hashes (flushes; the worker loop commits)."""
    rows = []
    for item in applied:
        hashes = content_hashes(item["content"])
        rows.append(
            AppliedRevision(
                target_id=target_id,
                revision=item["revision"],
                job_id=job_id,
                applied_at=now,
                path=item["path"],
                raw_hash=hashes.raw,
                ast_hash=hashes.ast,
                content=item["content"],
            )
        )
    session.add_all(rows)
    session.flush()
    return rows


@dataclass(frozen=True)
class RevisionRecord:
    """One revision a target holds, against what migdash recorded when applying it."""

    revision: str
    status: str
    """``unchanged``, ``edited`` (the file's syntax tree changed since), ``not recorded``
    (applied before migdash knew it, or outside migdash) or ``file gone``."""
    applied_at: datetime | None = None
    job_id: int | None = None
    diff: str = ""
    """A unified diff from the file as applied to the file as it is now (``edited`` only)."""


def edited_after_apply(
    session: Session, graph: RevisionGraph, target: Target, current: Sequence[str]
) -> list[RevisionRecord]:
    """Every revision at or below *current*, newest first, with its record's verdict."""
    known = [rev for rev in current if rev in graph.nodes]
    held = graph.revisions_in(graph.ancestor_mask(known))
    latest = _latest_applied(session, target.id, held)
    records = []
    for revision in (rev for rev in graph.history if rev in held):
        row = latest.get(revision)
        if row is None:
            records.append(RevisionRecord(revision, "not recorded"))
            continue
        path = Path(graph.nodes[revision].path)
        try:
            now_text = path.read_text(errors="replace")
        except OSError:
            records.append(RevisionRecord(revision, "file gone", row.applied_at, row.job_id))
            continue
        if content_hashes(now_text).ast == row.ast_hash:
            records.append(RevisionRecord(revision, "unchanged", row.applied_at, row.job_id))
            continue
        diff = "".join(
            difflib.unified_diff(
                row.content.splitlines(keepends=True),
                now_text.splitlines(keepends=True),
                fromfile=f"{path.name} (as applied)",
                tofile=f"{path.name} (now)",
            )
        )
        records.append(RevisionRecord(revision, "edited", row.applied_at, row.job_id, diff))
    return records


def _latest_applied(
    session: Session, target_id: int, revisions: set[str]
) -> dict[str, AppliedRevision]:
    rows = session.scalars(
        sa.select(AppliedRevision)
        .where(AppliedRevision.target_id == target_id)
        .order_by(AppliedRevision.applied_at, AppliedRevision.id)
    )
    return {row.revision: row for row in rows if row.revision in revisions}


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    what: str
    """``revisions`` or ``schema``."""
    before: tuple[str, ...] | str | None
    after: tuple[str, ...] | str
    job_id: int | None
    """The migdash job that made the change; None: outside migdash (or the first sight)."""
    first: bool = False

    @property
    def attribution(self) -> str:
        if self.first:
            return "first seen"
        return f"job {self.job_id}" if self.job_id is not None else "outside migdash"


def timeline(session: Session, target: Target) -> list[TimelineEntry]:
    """Revision and schema changes of *target*, oldest first, each attributed."""
    jobs = list(
        session.scalars(
            sa.select(Job)
            .where(Job.target_id == target.id, Job.state == JobState.SUCCEEDED)
            .order_by(Job.finished_at)
        )
    )
    entries = _revision_changes(session, target, jobs) + _schema_changes(session, target)
    return sorted(entries, key=lambda e: (e.at, e.what))


def _revision_changes(session: Session, target: Target, jobs: list[Job]) -> list[TimelineEntry]:
    snapshots = session.scalars(
        sa.select(Snapshot)
        .where(Snapshot.target_id == target.id, Snapshot.state.in_(KNOWN_STATES))
        .order_by(Snapshot.taken_at, Snapshot.id)
    )
    entries: list[TimelineEntry] = []
    previous: tuple[str, ...] | None = None
    seen_at: datetime | None = None
    for snapshot in snapshots:
        current = tuple(sorted(snapshot.current))
        if previous is not None and current == previous:
            seen_at = snapshot.checked_at
            continue
        job = _job_between(jobs, seen_at, snapshot.taken_at, current)
        entries.append(
            TimelineEntry(
                snapshot.taken_at,
                "revisions",
                previous,
                current,
                job.id if job else None,
                first=previous is None,
            )
        )
        previous, seen_at = current, snapshot.checked_at
    return entries


def _job_between(
    jobs: list[Job], since: datetime | None, until: datetime, result: tuple[str, ...]
) -> Job | None:
    """The job that finished in (since, until] leaving the target at *result*, if any."""
    for job in reversed(jobs):
        finished = job.finished_at
        if finished is None or finished > until or (since is not None and finished < since):
            continue
        if tuple(sorted(job.result_revisions or [])) == result:
            return job
    return None


def _schema_changes(session: Session, target: Target) -> list[TimelineEntry]:
    """Fingerprint changes; a snapshot taken after a job is that job's doing."""
    rows = session.scalars(
        sa.select(SchemaSnapshot)
        .where(SchemaSnapshot.target_id == target.id)
        .order_by(SchemaSnapshot.taken_at, SchemaSnapshot.id)
    )
    entries: list[TimelineEntry] = []
    previous: str | None = None
    for row in rows:
        if previous is not None and row.fingerprint == previous:
            continue
        entries.append(
            TimelineEntry(
                row.taken_at,
                "schema",
                previous,
                row.fingerprint,
                row.job_id,
                first=previous is None,
            )
        )
        previous = row.fingerprint
    return entries


@dataclass(frozen=True)
class TargetHistory:
    """What the history page and ``migdash timeline`` show for one target."""

    target: str
    revisions_known: bool
    records: list[RevisionRecord]
    entries: list[TimelineEntry]

    @property
    def edited(self) -> list[RevisionRecord]:
        return [r for r in self.records if r.status == "edited"]

    def to_json(self) -> dict[str, object]:
        return {
            "target": self.target,
            "revisions_known": self.revisions_known,
            "revisions": [
                {
                    "revision": r.revision,
                    "status": r.status,
                    "applied_at": _iso(r.applied_at),
                    "job": r.job_id,
                    "diff": r.diff or None,
                }
                for r in self.records
            ],
            "timeline": [
                {
                    "at": _iso(e.at),
                    "what": e.what,
                    "before": list(e.before) if isinstance(e.before, tuple) else e.before,
                    "after": list(e.after) if isinstance(e.after, tuple) else e.after,
                    "attribution": e.attribution,
                    "job": e.job_id,
                }
                for e in self.entries
            ],
        }


def target_history(
    session: Session, graph: RevisionGraph | None, target: Target, current: Sequence[str] | None
) -> TargetHistory:
    """Revision files against what was applied (when the current revision is known), timeline."""
    records = (
        edited_after_apply(session, graph, target, current)
        if graph is not None and current is not None
        else []
    )
    return TargetHistory(target.name, current is not None, records, timeline(session, target))


def _iso(moment: datetime | None) -> str | None:
    return f"{moment.isoformat()}Z" if moment is not None else None
