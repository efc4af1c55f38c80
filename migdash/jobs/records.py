"""Job rows: state changes by compare-and-set, log lines, audit events, reads, JSON.

Every state change of a job goes through :func:`move_job`, so "the row count
decides" (a job is claimed, approved, refused or cancelled once) is one rule.
Functions here flush at most; the boundary commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from migdash.errors import NotFound
from migdash.jobs.events import announce_move
from migdash.store import audit
from migdash.store.models import Job, JobLogLine, JobState
from migdash.store.session import rows_changed

TARGET_ACTIONS = ("upgrade", "downgrade", "stamp")
PROJECT_ACTIONS = ("merge", "revision")
PENDING_STATES = (
    JobState.AWAITING_APPROVAL,
    JobState.QUEUED,
    JobState.SCHEDULED,
    JobState.RUNNING,
)
"""A target action in one of these holds the target: a second request is refused."""


def move_job(
    session: Session,
    job_id: int,
    from_state: JobState,
    to_state: JobState,
    *conditions: sa.ColumnElement[bool],
    **values: Any,
) -> bool:
    """Compare-and-set a job's state: only a job still in *from_state* moves."""
    statement = (
        sa.update(Job)
        .where(Job.id == job_id, Job.state == from_state, *conditions)
        .values(state=to_state, **values)
    )
    moved = rows_changed(session, statement) == 1
    if moved:
        announce_move(session, job_id, from_state, to_state)
    return moved


def audit_job(
    session: Session,
    actor: str,
    action: str,
    job: Job,
    now: datetime,
    **fields: Any,
) -> None:
    """An audit event about *job*: its project, target and id filled in from the row."""
    audit.record(
        session,
        actor,
        action,
        project=job.project_name,
        target=job.target_name,
        job_id=job.id,
        now=now,
        **fields,
    )


def add_log(session: Session, job_id: int, line: str, now: datetime) -> None:
    session.add(JobLogLine(job_id=job_id, at=now, line=line))


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


def pending_job(session: Session, target_id: int) -> Job | None:
    """The target action waiting for approval, queued or running on *target_id*, if any."""
    return session.scalar(
        sa.select(Job)
        .where(
            Job.target_id == target_id,
            Job.kind.in_(TARGET_ACTIONS),
            Job.state.in_(PENDING_STATES),
        )
        .order_by(Job.id)
        .limit(1)
    )


def list_jobs(
    session: Session,
    *,
    state: str | None = None,
    project: str | None = None,
    target: str | None = None,
    limit: int = 100,
) -> Sequence[Job]:
    query = sa.select(Job).order_by(Job.id.desc()).limit(limit)
    if state:
        if state not in {s.value for s in JobState}:
            return []
        query = query.where(Job.state == state)
    if project:
        query = query.where(Job.project_name == project)
    if target:
        query = query.where(Job.target_name == target)
    return session.scalars(query).all()


def job_log(session: Session, job_id: int, after: int = 0) -> Sequence[JobLogLine]:
    return session.scalars(
        sa.select(JobLogLine)
        .where(JobLogLine.job_id == job_id, JobLogLine.id > after)
        .order_by(JobLogLine.id)
    ).all()


def describe(job: Job) -> str:
    """One line a person reads: "upgrade shop-eu to heads", "merge shop heads a, b"."""
    args = job.arguments
    if job.kind in TARGET_ACTIONS:
        extra = " --purge" if args.get("purge") else ""
        return f"{job.kind} {job.target_name} to {args.get('revision')}{extra}"
    if job.kind == "merge":
        heads = ", ".join(args.get("heads", []))
        return f"merge {job.project_name} heads {heads}: {args.get('message')}"
    auto = f" --autogenerate against {job.target_name}" if args.get("autogenerate") else ""
    return f"revision {job.project_name} -m {args.get('message')!r}{auto}"


def job_json(job: Job) -> dict[str, object]:
    """A job as plain data, for ``--json`` and the API (no URLs: nothing secret)."""
    plan = job.plan or {}
    return {
        "id": job.id,
        "kind": job.kind,
        "project": job.project_name,
        "target": job.target_name,
        "arguments": job.arguments,
        "state": job.state,
        "note": job.note,
        "requested_by": job.requested_by,
        "requested_at": _iso(job.requested_at),
        "queued_at": _iso(job.queued_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "worker": job.worker,
        "from_revisions": job.from_revisions,
        "planned_steps": [s["label"] for s in plan.get("steps", [])],
        "result_revisions": job.result_revisions,
        "failed_step": job.failed_step,
        "error": job.error,
        "output": job.output,
        "plan_hash": job.plan_hash,
        "not_before": _iso(job.not_before),
        "scheduled_for": _iso(job.scheduled_for),
    }


def _iso(moment: datetime | None) -> str | None:
    return f"{moment.isoformat()}Z" if moment is not None else None
