"""Deciding on and steering a rollout: approve or reject it once, pause, resume, cancel.

Approval follows the jobs' rules (:mod:`migdash.jobs.approvals`): the
approver role, four eyes (the requester cannot approve, and the refusal is
audited), distinct approvers counted for exactly what was shown (here the
rollout's fingerprint: every member's plan hash).  Every state change is a
compare-and-set on the rollout row (:func:`~migdash.jobs.rollouts.move_rollout`),
so these interleave safely with the worker's advance step.  Functions here
flush; the boundary commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from migdash.errors import Conflict, FourEyesViolation
from migdash.jobs.records import add_log, audit_job, move_job
from migdash.jobs.rollouts import get_rollout, move_rollout
from migdash.permissions import Permission, require
from migdash.store import audit
from migdash.store.models import Job, JobState, Role
from migdash.store.rollout_models import (
    MemberState,
    Rollout,
    RolloutApproval,
    RolloutMember,
    RolloutState,
)
from migdash.store.session import rows_changed


def awaiting_rollouts(session: Session) -> Sequence[Rollout]:
    """Rollouts waiting for approval, for the approvals page."""
    return session.scalars(
        sa.select(Rollout)
        .where(Rollout.state == RolloutState.AWAITING_APPROVAL)
        .order_by(Rollout.id)
    ).all()


def approve_rollout(
    session: Session,
    rollout_id: int,
    *,
    actor: str,
    role: Role | str,
    comment: str = "",
    seen: str | None = None,
    now: datetime,
) -> Rollout:
    """Record *actor*'s approval of every plan of the rollout; start it when enough are in.

    The four-eyes rule of jobs holds: the requester cannot approve (the
    refusal is audited), and approvals count per distinct person.

    :raises Conflict: the rollout is not awaiting approval, *seen* is not its
        fingerprint, or *actor* already decided.
    """
    require(role, Permission.APPROVE, actor=actor)
    rollout = _awaiting(session, rollout_id)
    if actor == rollout.requested_by:
        _audit(
            session,
            rollout,
            actor,
            "rollout.approve_refused",
            now,
            reason="four-eyes: the requester cannot approve",
        )
        raise FourEyesViolation(f"{actor} requested rollout {rollout.id} and cannot approve it")
    if seen and seen != rollout.fingerprint:
        raise Conflict(f"rollout {rollout.id}: the plans shown to you are not the rollout's plans")
    _decide(session, rollout, actor, "approved", comment, now)
    count = rollout_approvals(session, rollout)
    _audit(
        session,
        rollout,
        actor,
        "rollout.approve",
        now,
        comment=comment,
        approvals=count,
        required=rollout.required_approvals,
    )
    if count >= rollout.required_approvals:
        move_rollout(
            session,
            rollout.id,
            [RolloutState.AWAITING_APPROVAL],
            RolloutState.RUNNING,
            started_at=now,
            updated_at=now,
            note=None,
        )
    session.refresh(rollout)
    return rollout


def reject_rollout(
    session: Session, rollout_id: int, *, actor: str, role: Role | str, comment: str, now: datetime
) -> Rollout:
    """Reject a rollout awaiting approval: it ends cancelled and no member job is requested."""
    require(role, Permission.APPROVE, actor=actor)
    rollout = _awaiting(session, rollout_id)
    _decide(session, rollout, actor, "rejected", comment, now)
    if not move_rollout(
        session,
        rollout.id,
        [RolloutState.AWAITING_APPROVAL],
        RolloutState.CANCELLED,
        finished_at=now,
        updated_at=now,
        note=f"rejected by {actor}",
    ):
        raise Conflict(f"rollout {rollout.id} is no longer awaiting approval")
    _cancel_waiting(session, rollout.id, now)
    _audit(session, rollout, actor, "rollout.reject", now, comment=comment)
    session.refresh(rollout)
    return rollout


def rollout_approvals(session: Session, rollout: Rollout) -> int:
    """Distinct people other than the requester who approved the rollout's fingerprint."""
    return int(
        session.scalar(
            sa.select(sa.func.count(sa.distinct(RolloutApproval.decided_by))).where(
                RolloutApproval.rollout_id == rollout.id,
                RolloutApproval.decision == "approved",
                RolloutApproval.fingerprint == rollout.fingerprint,
                RolloutApproval.decided_by != rollout.requested_by,
            )
        )
        or 0
    )


def _decide(
    session: Session, rollout: Rollout, actor: str, decision: str, comment: str, now: datetime
) -> None:
    mine = session.scalar(
        sa.select(RolloutApproval).where(
            RolloutApproval.rollout_id == rollout.id, RolloutApproval.decided_by == actor
        )
    )
    if mine is not None:
        raise Conflict(f"{actor} has already decided on rollout {rollout.id}")
    session.add(
        RolloutApproval(
            rollout_id=rollout.id,
            decision=decision,
            decided_by=actor,
            decided_at=now,
            comment=comment,
            fingerprint=rollout.fingerprint,
        )
    )
    session.flush()


def _awaiting(session: Session, rollout_id: int) -> Rollout:
    rollout = get_rollout(session, rollout_id)
    if rollout.state != RolloutState.AWAITING_APPROVAL:
        raise Conflict(f"rollout {rollout.id} is {rollout.state}, not awaiting approval")
    return rollout


def pause_rollout(
    session: Session, rollout_id: int, *, actor: str, role: Role | str, now: datetime
) -> Rollout:
    """Start no further member; jobs already requested finish as they would."""
    require(role, Permission.REQUEST, actor=actor)
    rollout = get_rollout(session, rollout_id)
    if not move_rollout(
        session,
        rollout.id,
        [RolloutState.RUNNING],
        RolloutState.PAUSED,
        updated_at=now,
        note=f"paused by {actor}",
    ):
        raise Conflict(f"rollout {rollout.id} is {rollout.state}; only a running one pauses")
    _audit(session, rollout, actor, "rollout.pause", now)
    session.refresh(rollout)
    return rollout


def resume_rollout(
    session: Session, rollout_id: int, *, actor: str, role: Role | str, now: datetime
) -> Rollout:
    """Run again from where it stopped: failed and interrupted members wait for a new start.

    A member that succeeded is never started again.  A waiting member is
    planned afresh when its turn comes, so one whose target is already at
    the destination (an interrupted job that did finish its migration) is
    done without a job.
    """
    require(role, Permission.REQUEST, actor=actor)
    rollout = get_rollout(session, rollout_id)
    resumable = [RolloutState.PAUSED, RolloutState.HALTED, RolloutState.FAILED]
    if not move_rollout(
        session,
        rollout.id,
        resumable,
        RolloutState.RUNNING,
        updated_at=now,
        note=None,
        finished_at=None,
    ):
        raise Conflict(
            f"rollout {rollout.id} is {rollout.state}; only a paused, halted or failed one resumes"
        )
    retried = rows_changed(
        session,
        sa.update(RolloutMember)
        .where(
            RolloutMember.rollout_id == rollout.id,
            RolloutMember.state.in_([MemberState.FAILED, MemberState.INTERRUPTED]),
        )
        .values(state=MemberState.WAITING, finished_at=None),
    )
    _audit(session, rollout, actor, "rollout.resume", now, retried=retried)
    session.refresh(rollout)
    return rollout


def cancel_rollout(
    session: Session, rollout_id: int, *, actor: str, role: Role | str, now: datetime
) -> Rollout:
    """Start nothing more; member jobs not yet started are cancelled, running ones finish."""
    require(role, Permission.REQUEST, actor=actor)
    rollout = get_rollout(session, rollout_id)
    live = [s for s in RolloutState if not s.terminal]
    if not move_rollout(
        session,
        rollout.id,
        live,
        RolloutState.CANCELLED,
        updated_at=now,
        finished_at=now,
        note=f"cancelled by {actor}",
    ):
        raise Conflict(f"rollout {rollout.id} is {rollout.state} and can no longer be cancelled")
    _cancel_waiting(session, rollout.id, now)
    for member in rollout.members:
        job = session.get(Job, member.job_id) if member.job_id else None
        if member.state != MemberState.RUNNING or job is None:
            continue
        if any(
            move_job(session, job.id, s, JobState.CANCELLED, finished_at=now, note=None)
            for s in (JobState.QUEUED, JobState.SCHEDULED, JobState.AWAITING_APPROVAL)
        ):
            add_log(session, job.id, f"cancelled with rollout {rollout.id} by {actor}", now)
            audit_job(session, actor, "job.cancel", job, now, detail={"rollout": rollout.id})
    _audit(session, rollout, actor, "rollout.cancel", now)
    session.refresh(rollout)
    return rollout


def _cancel_waiting(session: Session, rollout_id: int, now: datetime) -> None:
    session.execute(
        sa.update(RolloutMember)
        .where(
            RolloutMember.rollout_id == rollout_id,
            RolloutMember.state.in_([MemberState.WAITING, MemberState.INTERRUPTED]),
        )
        .values(state=MemberState.CANCELLED, finished_at=now)
    )


def _audit(
    session: Session, rollout: Rollout, actor: str, action: str, now: datetime, **detail: object
) -> None:
    audit.record(
        session,
        actor,
        action,
        project=rollout.project_name,
        environment=", ".join(rollout.environments)[:100],
        to_revision=rollout.destination,
        detail={"rollout": rollout.id, "fingerprint": rollout.fingerprint, **detail},
        now=now,
    )
