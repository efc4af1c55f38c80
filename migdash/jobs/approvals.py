"""Four-eyes approval of jobs on protected environments.

A mutating job on a protected environment starts ``awaiting_approval`` with
its plan and the plan's fingerprint (:func:`migdash.jobs.plans.plan_hash`).
An approver other than the requester approves by button after reading that
plan; when the environment's ``required_approvals`` distinct approvals for
the *current* plan are in, the job is queued.  If the target moved since the
request, the plan is made afresh and shown again, and approvals given for
the old plan no longer count.  The worker checks all of this again right
before it runs the job (:mod:`migdash.jobs.gate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from migdash.errors import Conflict, FourEyesViolation, InvalidInput, TargetMoved
from migdash.jobs.context import JobServices, enqueue_after_commit
from migdash.jobs.gate import approvals_for
from migdash.jobs.plans import ActionPlan, make_plan
from migdash.jobs.records import add_log, audit_job, describe, get_job, move_job
from migdash.jobs.schedule import hold_job
from migdash.permissions import Permission, require
from migdash.status import record_status
from migdash.store.models import Approval, ApprovalDecision, Job, JobState, Role


@dataclass(frozen=True)
class Decision:
    job: Job
    approvals: int
    required: int
    queued: bool


def current_plan(services: JobServices, job: Job) -> ActionPlan:
    """Re-probe the job's target and plan it afresh (what the approval page shows)."""
    if job.target is None:
        raise Conflict(f"job {job.id} has no target any more")
    return make_plan(
        services,
        job.target,
        job.kind,
        str(job.arguments.get("revision")),
        purge=bool(job.arguments.get("purge")),
    )


def approve(
    session: Session,
    services: JobServices,
    job_id: int,
    *,
    actor: str,
    role: Role | str,
    comment: str,
    seen_plan: str | None,
    now: datetime,
    require_seen_plan: bool = False,
) -> Decision:
    """Record *actor*'s approval; queue the job once enough approvals for this plan exist.

    :raises FourEyesViolation: the actor requested the job (the refusal is audited).
    :raises TargetMoved: the plan changed since it was shown (it is renewed first).
    :raises TargetUnreachable: the target cannot be read, so there is no plan to approve.
    """
    require(role, Permission.APPROVE, actor=actor)
    job = _awaiting(session, job_id)
    if actor == job.requested_by:
        audit_job(
            session,
            actor,
            "job.approve_refused",
            job,
            now,
            detail={"reason": "four-eyes: the requester cannot approve"},
        )
        raise FourEyesViolation(f"{actor} requested job {job.id} and cannot approve it")
    if require_seen_plan and not seen_plan:
        raise InvalidInput(
            "plan_hash is required: approve the plan you reviewed",
            hint=f"Read it with GET /api/v1/jobs/{job.id}/plan and send its plan_hash.",
            field="plan_hash",
        )
    plan = current_plan(services, job)
    if plan.status is not None and plan.probe is not None and job.target is not None:
        record_status(session, job.target, plan.status, plan.probe, now)
    _check_plan(session, job, plan, seen_plan, now)
    _record_approval(session, job, actor, comment, plan.hash, now)
    required = job.target.environment.required_approvals if job.target else 1
    count = approvals_for(session, job, plan.hash)
    add_log(
        session,
        job.id,
        f"approved by {actor} ({count} of {required})" + (f": {comment}" if comment else ""),
        now,
    )
    _audit(session, job, actor, "job.approve", comment, plan, now)
    queued = False
    if count >= required:
        queued = move_job(
            session, job.id, JobState.AWAITING_APPROVAL, JobState.QUEUED, queued_at=now
        )
        if queued:
            add_log(session, job.id, "approved: queued", now)
            session.refresh(job)
            hold_job(session, job, now)
            enqueue_after_commit(session, job.id)
    session.refresh(job)
    return Decision(job, count, required, queued)


def _check_plan(
    session: Session, job: Job, plan: ActionPlan, seen_plan: str | None, now: datetime
) -> None:
    """Renew a plan that no longer holds (old approvals stop counting) and refuse this one."""
    if plan.hash != job.plan_hash:
        job.plan_hash, job.plan = plan.hash, plan.to_json()
        job.from_revisions = list(plan.current)
        add_log(
            session,
            job.id,
            "the plan changed (the target moved or a file changed); approvals given for "
            "the old plan no longer count",
            now,
        )
        session.flush()
        raise TargetMoved(
            f"job {job.id}: the target is now at {', '.join(plan.current) or '<base>'} and "
            "the plan was renewed"
        )
    if seen_plan and seen_plan != plan.hash:
        raise TargetMoved(f"job {job.id}: the plan shown to you is out of date")


def _record_approval(
    session: Session, job: Job, actor: str, comment: str, fingerprint: str, now: datetime
) -> None:
    mine = session.scalar(
        sa.select(Approval).where(Approval.job_id == job.id, Approval.decided_by == actor)
    )
    if mine is not None and mine.plan_hash == fingerprint:
        raise Conflict(f"{actor} has already decided on job {job.id}")
    if mine is None:
        session.add(
            Approval(
                job_id=job.id,
                decision=ApprovalDecision.APPROVED,
                decided_by=actor,
                decided_at=now,
                comment=comment,
                plan_hash=fingerprint,
            )
        )
    else:  # given for a plan that no longer holds; the audit trail keeps the first one
        mine.decided_at, mine.comment, mine.plan_hash = now, comment, fingerprint
    session.flush()


def reject(
    session: Session, job_id: int, *, actor: str, role: Role | str, comment: str, now: datetime
) -> Job:
    """Reject a job awaiting approval; it ends ``rejected`` and never runs."""
    require(role, Permission.APPROVE, actor=actor)
    job = _awaiting(session, job_id)
    if not move_job(
        session, job.id, JobState.AWAITING_APPROVAL, JobState.REJECTED, finished_at=now
    ):
        raise Conflict(f"job {job.id} is no longer awaiting approval")
    existing = session.scalar(
        sa.select(Approval).where(Approval.job_id == job.id, Approval.decided_by == actor)
    )
    if existing is not None:
        existing.decision, existing.decided_at, existing.comment = (
            ApprovalDecision.REJECTED,
            now,
            comment,
        )
    else:
        session.add(
            Approval(
                job_id=job.id,
                decision=ApprovalDecision.REJECTED,
                decided_by=actor,
                decided_at=now,
                comment=comment,
                plan_hash=job.plan_hash,
            )
        )
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
            sa.select(Job).where(Job.state == JobState.AWAITING_APPROVAL).order_by(Job.id)
        )
    )


def _awaiting(session: Session, job_id: int) -> Job:
    job = get_job(session, job_id)
    if job.state != JobState.AWAITING_APPROVAL:
        raise Conflict(f"job {job.id} is {job.state}, not awaiting approval")
    return job


def _audit(
    session: Session,
    job: Job,
    actor: str,
    action: str,
    comment: str,
    plan: ActionPlan,
    now: datetime,
) -> None:
    audit_job(
        session,
        actor,
        action,
        job,
        now,
        environment=job.target.environment.name if job.target else None,
        from_revisions=list(plan.current),
        to_revision=str(job.arguments.get("revision")),
        sql=plan.sql,
        detail={"comment": comment, "describe": describe(job), "plan_hash": plan.hash},
    )
