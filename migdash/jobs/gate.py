"""The approval gate, checked where the work happens: right before a job runs.

A request is checked when it is made; this module checks it again in the
worker, in the same transaction as the claim, with what is true *now*: the
environment's protection and required approvals as they are set today, the
target's current revision as just probed, and the revision files as they are
on disk.  A job that fails the gate ends ``refused`` and nothing runs.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from migdash.jobs.plans import hash_now
from migdash.store.models import Approval, ApprovalDecision, Environment, Job


def approvals_for(session: Session, job: Job, plan_hash: str | None) -> int:
    """Distinct people other than the requester who approved exactly *plan_hash*."""
    if plan_hash is None:
        return 0
    return int(
        session.scalar(
            sa.select(sa.func.count(sa.distinct(Approval.decided_by))).where(
                Approval.job_id == job.id,
                Approval.decision == ApprovalDecision.APPROVED,
                Approval.plan_hash == plan_hash,
                Approval.decided_by != job.requested_by,
            )
        )
        or 0
    )


def approval_shortfall(session: Session, job: Job) -> str | None:
    """Why the job may not run for lack of approvals (None when it may).

    Reads the environment now, locking its row where the database can, so an
    environment made protected after the request still gates the job.
    """
    if job.target is None:
        return "the target was removed after the request"
    environment = session.scalar(
        sa.select(Environment)
        .where(Environment.id == job.target.environment_id)
        .with_for_update(read=True)
    )
    if environment is None or not environment.protected:
        return None
    have = approvals_for(session, job, job.plan_hash)
    need = environment.required_approvals
    if have >= need:
        return None
    return (
        f"environment {environment.name} is protected and needs {need} approval(s) of this "
        f"plan from people other than the requester; it has {have}"
    )


def gate_refusal(session: Session, job: Job, current: tuple[str, ...]) -> str | None:
    """Why the worker must not run *job* with the target at *current* (None: run it)."""
    if job.target is None:
        return "the target was removed after the request"
    if job.plan is None or job.plan_hash is None:
        return "the job carries no plan (it predates plan checking); request it again"
    if hash_now(job.target.id, job.kind, job.plan, current) != job.plan_hash:
        planned = list(job.plan.get("current", []))
        if sorted(planned) != sorted(current):
            return (
                f"the target moved since the plan was made: planned from "
                f"{', '.join(planned) or '<base>'}, now at {', '.join(current) or '<base>'}"
            )
        return "a revision file or env.py changed since the plan was made"
    return approval_shortfall(session, job)
