"""The audit trail: who did what, when, to which target, from which revision to which.

Rows are only ever inserted.  Nothing in migdash updates or deletes them: the
ORM refuses it (:func:`forbid_changes`), and the migration adds database
triggers that refuse it too, so not even a hand-written ``UPDATE`` slips by.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from migdash.errors import MigdashError
from migdash.store.models import AuditEvent, utcnow

EXPORT_FIELDS = (
    "id",
    "at",
    "actor",
    "action",
    "project",
    "environment",
    "target",
    "job_id",
    "from_revisions",
    "to_revision",
    "sql_hash",
    "detail",
    "ip",
)


class AuditImmutable(MigdashError):
    """An attempt to change or delete an audit row."""


def record(
    session: Session,
    actor: str,
    action: str,
    *,
    project: str | None = None,
    environment: str | None = None,
    target: str | None = None,
    job_id: int | None = None,
    from_revisions: Iterable[str] | None = None,
    to_revision: str | None = None,
    sql: str | None = None,
    detail: dict[str, Any] | None = None,
    ip: str | None = None,
    now: datetime | None = None,
) -> AuditEvent:
    """Append one event (flushed with the caller's transaction)."""
    event = AuditEvent(
        at=now or utcnow(),
        actor=actor,
        action=action,
        project=project,
        environment=environment,
        target=target,
        job_id=job_id,
        from_revisions=list(from_revisions) if from_revisions is not None else None,
        to_revision=to_revision,
        sql_hash=sql_hash(sql) if sql else None,
        detail=detail or {},
        ip=ip,
    )
    session.add(event)
    return event


def sql_hash(sql: str) -> str:
    return hashlib.sha256(sql.encode()).hexdigest()


def find_events(
    session: Session,
    *,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    project: str | None = None,
    since: datetime | None = None,
    limit: int = 500,
    before: int | None = None,
) -> Sequence[AuditEvent]:
    """Newest first; *before* (an event id) pages back past the events already read."""
    query = sa.select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if before is not None:
        query = query.where(AuditEvent.id < before)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if action:
        query = query.where(AuditEvent.action.startswith(action))
    if target:
        query = query.where(AuditEvent.target == target)
    if project:
        query = query.where(AuditEvent.project == project)
    if since:
        query = query.where(AuditEvent.at >= since)
    return session.scalars(query).all()


def event_json(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": event.at.isoformat() + "Z",
        "actor": event.actor,
        "action": event.action,
        "project": event.project,
        "environment": event.environment,
        "target": event.target,
        "job_id": event.job_id,
        "from_revisions": event.from_revisions,
        "to_revision": event.to_revision,
        "sql_hash": event.sql_hash,
        "detail": event.detail,
        "ip": event.ip,
    }


def export_csv(events: Sequence[AuditEvent]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS)
    writer.writeheader()
    for event in events:
        row = event_json(event)
        row["from_revisions"] = " ".join(row["from_revisions"] or [])
        row["detail"] = json.dumps(row["detail"], sort_keys=True)
        writer.writerow({key: _inert(value) for key, value in row.items()})
    return buffer.getvalue()


def _inert(value: Any) -> Any:
    """Spreadsheets run cells starting with = + - @ as formulas; make them plain text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def forbid_changes(session: Session, _context: Any, _instances: Any) -> None:
    """``before_flush`` hook: audit rows may be added, never modified or deleted."""
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEvent):
            raise AuditImmutable("audit events are append-only; nothing may change or delete one")
