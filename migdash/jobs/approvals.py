"""Four-eyes approval of jobs on protected environments.

A mutating job on a protected environment starts ``awaiting_approval`` with
the fingerprint of its plan (current revision, steps, offline SQL).  An
approver other than the requester approves by button after reading that
plan; when the environment's ``required_approvals`` distinct approvals for
the *current* plan are in, the job is queued.  If the target moved since the
request, the plan is re-computed and shown again, and approvals given for
the old plan no longer count.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from migdash.engine.catalog import GraphCatalog
from migdash.engine.probe import ProbePool
from migdash.errors import Conflict, MigdashError
from migdash.jobs.preview import SqlPreview, preview_sql
from migdash.jobs.requests import add_log, audit_job, describe, get_job, move_job
from migdash.permissions import FourEyesViolation, Permission, require
from migdash.store.models import Approval, Job, JobState, Role


class TargetMoved(MigdashError):
    """The target's revision changed since the plan was made; the plan was renewed."""

    hint = "Read the new plan below and approve again if it is still what you want."


@dataclass(frozen=True)
class Decision:
    job: Job
    approvals: int
    required: int
    queued: bool


def plan_fingerprint(preview: SqlPreview) -> str:
    """SHA-256 of what an approver reads: where the target is, the steps, the SQL."""
    material = json.dumps(
        {
            "current": list(preview.plan.current),
            "steps": list(preview.plan.steps),
            "sql": preview.sql or "",
            "error": preview.error or "",
        },
        sort_keys=True,
    )
    return hashlib.sha256(material.encode()).hexdigest()


def current_plan(
    session: Session, catalog: GraphCatalog, probes: ProbePool, job: Job
) -> SqlPreview:
    """Re-probe the job's target and plan it afresh (what the approval page shows)."""
    if job.target is None:
        raise Conflict(f"job {job.id} has no target any more")
    return preview_sql(
        session, catalog, probes, job.target, job.kind, str(job.arguments.get("revision"))
    )


def hold_for_approval(
    session: Session, catalog: GraphCatalog, probes: ProbePool, job: Job, now: datetime
) -> SqlPreview:
    """Put a freshly requested job on a protected environment into ``awaiting_approval``."""
    preview = current_plan(session, catalog, probes, job)
    job.state = JobState.AWAITING_APPROVAL.value
    job.plan_hash = plan_fingerprint(preview)
    job.from_revisions = list(preview.plan.current)
    add_log(session, job.id, "awaiting approval: the environment is protected", now)
    return preview


def approve(
    session: Session,
    catalog: GraphCatalog,
    probes: ProbePool,
    job_id: int,
    *,
    actor: str,
    role: Role | str,
    comment: str,
    seen_plan: str | None,
    now: datetime,
) -> Decision:
    """Record *actor*'s approval; queue the job once enough approvals for this plan exist.

    :raises FourEyesViolation: the actor requested the job.
    :raises TargetMoved: the plan changed since it was shown (it is renewed first).
    """
    require(role, Permission.APPROVE, actor=actor)
    job = _awaiting(session, job_id)
    if actor == job.requested_by:
        # the refusal is a fact worth keeping: record it before saying no
        audit_job(
            session,
            actor,
            "job.approve_refused",
            job,
            now,
            detail={"reason": "four-eyes: the requester cannot approve"},
        )
        session.commit()
        raise FourEyesViolation(f"{actor} requested job {job.id} and cannot approve it")
    preview = current_plan(session, catalog, probes, job)
    if not preview.reachable:
        raise Conflict(
            f"job {job.id}: {preview.error}",
            hint="Nothing can be reviewed or run until the target answers again.",
        )
    fingerprint = plan_fingerprint(preview)
    if fingerprint != job.plan_hash or (seen_plan and seen_plan != fingerprint):
        moved = fingerprint != job.plan_hash
        job.plan_hash, job.from_revisions = fingerprint, list(preview.plan.current)
        add_log(
            session,
            job.id,
            "the plan changed (the target moved); approvals given for the old plan no longer count",
            now,
        )
        session.commit()
        at = ", ".join(preview.plan.current) or "<base>"
        raise TargetMoved(
            f"job {job.id}: the target is now at {at}"
            + (
                " (it moved since the request)"
                if moved
                else " (the plan shown to you is out of date)"
            )
        )
    mine = session.scalar(
        sa.select(Approval).where(Approval.job_id == job.id, Approval.decided_by == actor)
    )
    if mine is not None and mine.plan_hash == fingerprint:
        raise Conflict(f"{actor} has already decided on job {job.id}")
    if mine is None:
        session.add(
            Approval(
                job_id=job.id,
                decision="approved",
                decided_by=actor,
                decided_at=now,
                comment=comment,
                plan_hash=fingerprint,
            )
        )
    else:  # given for a plan that no longer holds; the audit trail keeps the first one
        mine.decided_at, mine.comment, mine.plan_hash = now, comment, fingerprint
    session.flush()
    required = job.target.environment.required_approvals if job.target else 1
    count = (
        session.scalar(
            sa.select(sa.func.count())
            .select_from(Approval)
            .where(
                Approval.job_id == job.id,
                Approval.decision == "approved",
                Approval.plan_hash == fingerprint,
            )
        )
        or 0
    )
    add_log(
        session,
        job.id,
        f"approved by {actor} ({count} of {required})" + (f": {comment}" if comment else ""),
        now,
    )
    _audit(session, job, actor, "job.approve", comment, preview, now)
    queued = False
    if count >= required:
        queued = move_job(session, job.id, JobState.AWAITING_APPROVAL, JobState.QUEUED)
        if queued:
            add_log(session, job.id, "approved: queued", now)
    session.refresh(job)
    return Decision(job, count, required, queued)


def reject(
    session: Session, job_id: int, *, actor: str, role: Role | str, comment: str, now: datetime
) -> Job:
    """Reject a job awaiting approval; it ends ``rejected`` and never runs."""
    require(role, Permission.APPROVE, actor=actor)
    job = _awaiting(session, job_id)
    session.add(
        Approval(
            job_id=job.id,
            decision="rejected",
            decided_by=actor,
            decided_at=now,
            comment=comment,
            plan_hash=job.plan_hash,
        )
    )
    if not move_job(
        session, job.id, JobState.AWAITING_APPROVAL, JobState.REJECTED, finished_at=now
    ):
        raise Conflict(f"job {job.id} is no longer awaiting approval")
    add_log(session, job.id, f"rejected by {actor}" + (f": {comment}" if comment else ""), now)
    audit_job(
        session,
        actor,
        "job.reject",
        job,
        now,
        from_revisions=job.from_revisions,
        to_revision=str(job.arguments.get("revision")),
        detail={"comment": comment},
    )
    session.refresh(job)
    return job


def decisions(session: Session, job_id: int) -> list[Approval]:
    return list(
        session.scalars(sa.select(Approval).where(Approval.job_id == job_id).order_by(Approval.id))
    )


def awaiting(session: Session) -> list[Job]:
    return list(
        session.scalars(
            sa.select(Job).where(Job.state == JobState.AWAITING_APPROVAL.value).order_by(Job.id)
        )
    )


def _awaiting(session: Session, job_id: int) -> Job:
    job = get_job(session, job_id)
    if job.state != JobState.AWAITING_APPROVAL.value:
        raise Conflict(f"job {job.id} is {job.state}, not awaiting approval")
    return job


def _audit(
    session: Session,
    job: Job,
    actor: str,
    action: str,
    comment: str,
    preview: SqlPreview,
    now: datetime,
) -> None:
    audit_job(
        session,
        actor,
        action,
        job,
        now,
        environment=job.target.environment.name if job.target else None,
        from_revisions=preview.plan.current,
        to_revision=str(job.arguments.get("revision")),
        sql=preview.sql,
        detail={"comment": comment, "describe": describe(job)},
    )
