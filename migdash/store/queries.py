"""Named reads of the metadata database, shared by web pages, the CLI and the API."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from migdash.store.models import Environment, Project, Snapshot, Target


def all_projects(session: Session) -> Sequence[Project]:
    return session.scalars(sa.select(Project).order_by(Project.name)).all()


def all_environments(session: Session) -> Sequence[Environment]:
    return session.scalars(
        sa.select(Environment).order_by(Environment.position, Environment.id)
    ).all()


def find_targets(
    session: Session, *, project: str | None = None, environment: str | None = None
) -> Sequence[Target]:
    """Targets, optionally of one project and/or environment, in a stable order."""
    query = (
        sa.select(Target)
        .join(Target.project)
        .join(Target.environment)
        .options(selectinload(Target.project), selectinload(Target.environment))
        .order_by(Project.name, Environment.position, Target.name)
    )
    if project:
        query = query.where(Project.name == project)
    if environment:
        query = query.where(Environment.name == environment)
    return session.scalars(query).all()


def latest_snapshots(session: Session, target_ids: Sequence[int]) -> dict[int, Snapshot]:
    """The newest snapshot of each target (targets never probed are absent)."""
    if not target_ids:
        return {}
    newest = (
        sa.select(Snapshot.target_id, sa.func.max(Snapshot.id).label("id"))
        .where(Snapshot.target_id.in_(target_ids))
        .group_by(Snapshot.target_id)
        .subquery()
    )
    rows = session.scalars(sa.select(Snapshot).join(newest, Snapshot.id == newest.c.id)).all()
    return {row.target_id: row for row in rows}


class SnapshotRow(Protocol):
    """What a report needs of a snapshot: an ORM :class:`Snapshot` or a plain row of it."""

    target_id: int
    state: str
    current: list[str]
    heads: list[str]
    pending: list[str]
    error: str | None
    checked_at: datetime


def latest_snapshot_rows(session: Session, target_ids: Sequence[int]) -> dict[int, SnapshotRow]:
    """:func:`latest_snapshots` as plain rows, for reading only: a thousand-target overview
    pays no ORM identity map for them."""
    if not target_ids:
        return {}
    newest = (
        sa.select(sa.func.max(Snapshot.id).label("id"))
        .where(Snapshot.target_id.in_(target_ids))
        .group_by(Snapshot.target_id)
        .subquery()
    )
    columns = [
        Snapshot.target_id,
        Snapshot.state,
        Snapshot.current,
        Snapshot.heads,
        Snapshot.pending,
        Snapshot.error,
        Snapshot.checked_at,
    ]
    rows = session.execute(sa.select(*columns).join(newest, Snapshot.id == newest.c.id))
    return {row.target_id: row for row in rows}


def recent_snapshots(session: Session, target_id: int, limit: int = 20) -> Sequence[Snapshot]:
    return session.scalars(
        sa.select(Snapshot)
        .where(Snapshot.target_id == target_id)
        .order_by(Snapshot.id.desc())
        .limit(limit)
    ).all()


def targets_at(session: Session, project_id: int) -> dict[str, list[Target]]:
    """Revision id -> targets whose latest snapshot says they sit there."""
    targets = session.scalars(sa.select(Target).where(Target.project_id == project_id)).all()
    snapshots = latest_snapshots(session, [t.id for t in targets])
    placed: dict[str, list[Target]] = {}
    for target in targets:
        snapshot = snapshots.get(target.id)
        for revision in snapshot.current if snapshot else []:
            placed.setdefault(revision, []).append(target)
    return placed
