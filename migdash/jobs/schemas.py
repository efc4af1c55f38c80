"""Targets' live schemas: snapshots after every job and on demand, diffs, and the fleet view.

A schema snapshot reflects the target through one bounded, read-only
connection (:func:`migdash.engine.schema.snapshot_schema`): no project code
runs, so it happens in this process.  It is never taken on the hot status
path: after each job (by the worker loop), when a person asks, and for a
diff.  Functions here flush; the boundary commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from migdash.engine.probe import create_probe_engine
from migdash.engine.schema import SchemaDiff, SchemaSnapshot, diff_schemas, snapshot_schema
from migdash.engine.scrub import scrub_text, url_secrets
from migdash.errors import TargetUnreachable
from migdash.status import TargetReport
from migdash.store.models import Target
from migdash.store.schema_models import SchemaSnapshot as SchemaSnapshotRow

SNAPSHOT_TIMEOUT = 10.0


def reflect_target(target: Target, timeout: float = SNAPSHOT_TIMEOUT) -> SchemaSnapshot:
    """The target's live schema, its version table left out.

    :raises TargetUnreachable: the database cannot be read (secrets scrubbed).
    """
    url = target.url
    version_table = target.version_table or target.project.version_table
    schema = target.version_table_schema or target.project.version_table_schema
    db_engine = create_probe_engine(url, timeout)
    try:
        with db_engine.connect() as connection:
            return snapshot_schema(connection, ignore_tables=(version_table,), schema=schema)
    except (SQLAlchemyError, OSError) as exc:
        reason = scrub_text(str(getattr(exc, "orig", None) or exc).strip(), url_secrets(url))
        raise TargetUnreachable(
            f"cannot read the schema of {target.name}: {reason.splitlines()[0] if reason else ''}"
        ) from None
    finally:
        db_engine.dispose()


def take_schema_snapshot(
    session: Session,
    target: Target,
    *,
    revisions: Sequence[str],
    now: datetime,
    job_id: int | None = None,
) -> SchemaSnapshotRow:
    """Reflect *target* now and keep the snapshot (asked for)."""
    return keep_schema_snapshot(
        session, target.id, reflect_target(target), revisions=revisions, now=now, job_id=job_id
    )


def keep_schema_snapshot(
    session: Session,
    target_id: int,
    snapshot: SchemaSnapshot,
    *,
    revisions: Sequence[str],
    now: datetime,
    job_id: int | None = None,
) -> SchemaSnapshotRow:
    """Keep *snapshot*, read from the target at *revisions*, as its newest schema snapshot."""
    row = SchemaSnapshotRow(
        target_id=target_id,
        taken_at=now,
        job_id=job_id,
        revisions=sorted(revisions),
        dialect=snapshot.dialect,
        server_major=snapshot.server_major,
        normaliser_version=snapshot.normaliser_version,
        fingerprint=snapshot.fingerprint,
        schema=snapshot.to_json(),
    )
    session.add(row)
    session.flush()
    return row


def stored_snapshot(row: SchemaSnapshotRow) -> SchemaSnapshot:
    return SchemaSnapshot.from_json(row.schema)


def latest_schema_snapshots(
    session: Session, target_ids: Iterable[int]
) -> dict[int, SchemaSnapshotRow]:
    """The newest schema snapshot of each target that has one (one query)."""
    ids = list(target_ids)
    if not ids:
        return {}
    newest = (
        sa.select(
            SchemaSnapshotRow.target_id,
            sa.func.max(SchemaSnapshotRow.id).label("id"),
        )
        .where(SchemaSnapshotRow.target_id.in_(ids))
        .group_by(SchemaSnapshotRow.target_id)
        .subquery()
    )
    rows = session.scalars(
        sa.select(SchemaSnapshotRow).join(newest, SchemaSnapshotRow.id == newest.c.id)
    )
    return {row.target_id: row for row in rows}


@dataclass(frozen=True)
class TargetDiff:
    """Two targets' live schemas, compared now."""

    left: str
    right: str
    left_snapshot: SchemaSnapshot
    right_snapshot: SchemaSnapshot
    diff: SchemaDiff

    def to_json(self) -> dict[str, object]:
        return {
            "left": {
                "target": self.left,
                "dialect": self.left_snapshot.dialect,
                "fingerprint": self.left_snapshot.fingerprint,
            },
            "right": {
                "target": self.right,
                "dialect": self.right_snapshot.dialect,
                "fingerprint": self.right_snapshot.fingerprint,
            },
            **self.diff.to_json(),
        }


def diff_targets(left: Target, right: Target) -> TargetDiff:
    """Reflect both targets now and diff them (left is "before", right "after")."""
    a, b = reflect_target(left), reflect_target(right)
    return TargetDiff(left.name, right.name, a, b, diff_schemas(a, b))


@dataclass(frozen=True)
class FleetGroup:
    """Targets of one project at the same revisions; their schema fingerprints."""

    project: str
    revisions: tuple[str, ...]
    by_fingerprint: dict[str, list[str]]
    """Fingerprint -> target names; targets with no snapshot yet are left out."""

    @property
    def differs(self) -> bool:
        """Same revision, different schema: somebody changed one of them by hand."""
        return len(self.by_fingerprint) > 1


def fleet_groups(
    reports: Sequence[TargetReport], snapshots: dict[int, SchemaSnapshotRow]
) -> list[FleetGroup]:
    """Group targets by (project, revisions) and split each group by schema fingerprint.

    Only snapshots taken at the revisions the target is at now count: a
    snapshot older than the last migration says nothing about today's schema.
    """
    groups: dict[tuple[str, tuple[str, ...]], dict[str, list[str]]] = {}
    for report in reports:
        if not report.revisions_known:
            continue
        revisions = tuple(sorted(report.status.current))
        row = snapshots.get(report.target_id)
        key = (report.project, revisions)
        groups.setdefault(key, {})
        if row is not None and tuple(row.revisions) == revisions:
            groups[key].setdefault(row.fingerprint, []).append(report.target)
    return [
        FleetGroup(project, revisions, by_fingerprint)
        for (project, revisions), by_fingerprint in sorted(groups.items())
    ]


def schema_mismatches(groups: Sequence[FleetGroup]) -> dict[str, str]:
    """For each target whose group differs: another target at the same revisions, other schema.

    What the overview links its "same revision, different schema" flag to.
    """
    found: dict[str, str] = {}
    for group in groups:
        if not group.differs:
            continue
        buckets = list(group.by_fingerprint.values())
        for index, names in enumerate(buckets):
            other = buckets[(index + 1) % len(buckets)][0]
            for name in names:
                found[name] = other
    return found
