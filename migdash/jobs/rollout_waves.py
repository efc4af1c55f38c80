"""The advance step of a rollout: follow member jobs, end waves, start the next members.

Called by the worker (after each job, and on every reaper pass), never by a
web request, so a rollout moves with no browser open.  It is idempotent and
safe to run in several threads and processes at once: every change is a
compare-and-set on the member or rollout row (:func:`sync_rollout`), and a
member is started in a transaction of its own (:func:`start_member`) that
requests its job, re-checks under the rollout row's lock that the rollout
is still running and the concurrency limit holds, and moves the member from
``waiting`` to ``running``; a second advance doing the same loses on the row
count (or on the one-pending-job-per-target index) and the worker rolls it
back.  Functions here flush; the worker loop commits.

A member whose job was interrupted (its worker was killed) pauses the
rollout: a job is never run again silently.  Resume makes it wait again;
when its turn comes it is planned afresh, which probes the target: already
at the destination (the killed job did finish its migration) means done
with no job, otherwise a new job is requested.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from migdash.errors import MigdashError
from migdash.jobs.context import JobServices, enqueue_after_commit
from migdash.jobs.plans import ActionPlan
from migdash.jobs.records import PENDING_STATES, add_log, audit_job, move_job
from migdash.jobs.requests import request_target_action
from migdash.jobs.rollouts import PlanCache, move_rollout, plan_fleet
from migdash.store.models import Approval, ApprovalDecision, Job, JobState, Role
from migdash.store.rollout_models import (
    MemberState,
    Rollout,
    RolloutApproval,
    RolloutMember,
    RolloutState,
)
from migdash.store.session import rows_changed

FAILED_JOB = (JobState.FAILED, JobState.REFUSED, JobState.REJECTED, JobState.CANCELLED)


class MemberNotStarted(MigdashError):
    """Another advance started the member, or the rollout stopped meanwhile: roll back."""


def live_rollouts(session: Session) -> list[int]:
    """Rollouts that may need a step: running ones, and any with a member job in flight."""
    in_flight = sa.select(RolloutMember.rollout_id).where(
        RolloutMember.state == MemberState.RUNNING
    )
    return list(
        session.scalars(
            sa.select(Rollout.id)
            .where(sa.or_(Rollout.state == RolloutState.RUNNING, Rollout.id.in_(in_flight)))
            .order_by(Rollout.id)
        )
    )


def rollout_of_job(session: Session, job_id: int) -> int | None:
    return session.scalar(
        sa.select(RolloutMember.rollout_id).where(RolloutMember.job_id == job_id).limit(1)
    )


def sync_rollout(session: Session, rollout_id: int, now: datetime) -> list[int]:
    """Record how member jobs ended, end the wave or the rollout, and name members to start.

    Returns the ids of waiting members to start now (the next of the
    current wave, up to the concurrency limit); none unless running.  It
    runs after every member job, so it reads plain rows: the members whose
    job has ended (one query, joined to their jobs), then every member's
    wave and state (one query).
    """
    rollout = session.get(Rollout, rollout_id)
    if rollout is None:
        return []
    ended = session.execute(
        sa.select(
            RolloutMember.id, RolloutMember.job_id, RolloutMember.target_name, Job.state, Job.error
        )
        .outerjoin(Job, Job.id == RolloutMember.job_id)
        .where(
            RolloutMember.rollout_id == rollout_id,
            RolloutMember.state == MemberState.RUNNING,
            RolloutMember.job_id.is_not(None),
            sa.or_(Job.id.is_(None), Job.state.not_in(PENDING_STATES)),
        )
    ).all()
    for member_id, job_id, target_name, job_state, job_error in ended:
        _follow_job(session, rollout, (member_id, job_id, target_name), job_state, job_error, now)
    session.flush()
    session.refresh(rollout)
    if rollout.state != RolloutState.RUNNING:
        return []
    members = member_rows(session, rollout_id)
    active = _active_wave(session, rollout, members, now)
    if active is None:
        return []
    running = sum(m.state == MemberState.RUNNING for m in members)
    waiting = [m for m in active if m.state == MemberState.WAITING]
    return [m.id for m in waiting[: max(0, rollout.concurrency - running)]]


MemberRow = sa.Row[int, int, MemberState, str]


def member_rows(session: Session, rollout_id: int) -> Sequence[MemberRow]:
    """(id, wave, state, target_name) of every member, in wave and position order."""
    return session.execute(
        sa.select(
            RolloutMember.id, RolloutMember.wave, RolloutMember.state, RolloutMember.target_name
        )
        .where(RolloutMember.rollout_id == rollout_id)
        .order_by(RolloutMember.wave, RolloutMember.position)
    ).all()


def _follow_job(
    session: Session,
    rollout: Rollout,
    member: tuple[int, int | None, str],
    job_state: str | None,
    job_error: str | None,
    now: datetime,
) -> None:
    """Record how the member's ended job went (*member*: id, job id, target name).

    :func:`sync_rollout` passes only members whose job is no longer pending.

    A job row that is gone counts as cancelled.
    """
    member_id, job_id, target_name = member
    state = JobState(job_state) if job_state is not None else JobState.CANCELLED
    values: dict[str, object] = {"finished_at": now}
    if state == JobState.SUCCEEDED:
        values["state"], values["error"] = MemberState.SUCCEEDED, None
    elif state == JobState.INTERRUPTED:
        values["state"] = MemberState.INTERRUPTED
        values["error"] = job_error or "its job was interrupted"
    elif rollout.state == RolloutState.CANCELLED and state == JobState.CANCELLED:
        values["state"] = MemberState.CANCELLED
    else:
        values["state"] = MemberState.FAILED
        values["error"] = job_error or f"its job ended {state.value}"
    moved = rows_changed(
        session,
        sa.update(RolloutMember)
        .where(
            RolloutMember.id == member_id,
            RolloutMember.state == MemberState.RUNNING,
            RolloutMember.job_id == job_id,
        )
        .values(**values),
    )
    if moved and state == JobState.INTERRUPTED:
        move_rollout(
            session,
            rollout.id,
            [RolloutState.RUNNING],
            RolloutState.PAUSED,
            updated_at=now,
            note=f"paused: job {job_id} of {target_name} was interrupted (its "
            "worker stopped); resume probes the target and runs it again only if needed",
        )


def _active_wave(
    session: Session, rollout: Rollout, members: Sequence[MemberRow], now: datetime
) -> list[MemberRow] | None:
    """The first wave with unfinished members; or halt, or finish the rollout, and None."""
    waves: dict[int, list[MemberRow]] = {}
    for member in members:
        if member.wave >= 0:
            waves.setdefault(member.wave, []).append(member)
    for number in sorted(waves):
        wave = waves[number]
        if any(not MemberState(m.state).finished for m in wave):
            return wave
        failed = [m.target_name for m in wave if m.state == MemberState.FAILED]
        if failed and rollout.on_failure == "halt":
            move_rollout(
                session,
                rollout.id,
                [RolloutState.RUNNING],
                RolloutState.HALTED,
                updated_at=now,
                note=f"halted after {wave_name(number)}: {len(failed)} target(s) failed: "
                + ", ".join(failed)[:400],
            )
            return None
    failed_any = any(m.state == MemberState.FAILED for m in members)
    move_rollout(
        session,
        rollout.id,
        [RolloutState.RUNNING],
        RolloutState.FAILED if failed_any else RolloutState.SUCCEEDED,
        updated_at=now,
        finished_at=now,
        note=None,
    )
    return None


def wave_name(number: int) -> str:
    if number < 0:
        return "already there"
    return "the canary" if number == 0 else f"wave {number}"


def plan_members(
    session: Session,
    services: JobServices,
    member_ids: Sequence[int],
    cache: PlanCache | None = None,
) -> dict[int, ActionPlan]:
    """Plans for the targets of *member_ids*, one child process per distinct starting point.

    A target that cannot be planned is left out: :func:`start_member` plans
    it alone and meets the same refusal, which the caller records.
    """
    members = [m for i in member_ids if (m := session.get(RolloutMember, i)) is not None]
    targets = [m.target for m in members if m.target is not None]
    if not members or not targets:
        return {}
    plans, _problems = plan_fleet(services, targets, members[0].rollout.destination, cache)
    return plans


def start_member(
    session: Session,
    services: JobServices,
    member_id: int,
    now: datetime,
    plan: ActionPlan | None = None,
) -> str:
    """Request the member's job and mark it running; say what happened.

    *plan*, from :func:`plan_members` just now, spares the job request a
    child process of its own to plan the target (the worker's gate checks
    it against the target before the job runs, as for every job).

    :raises MemberNotStarted: it was started elsewhere, or the rollout no
        longer runs, or the limit is reached: the caller rolls back.
    :raises MigdashError: the target cannot be planned now; the caller rolls
        back and records it with :func:`fail_member`.
    """
    member = session.get(RolloutMember, member_id)
    if member is None or member.state != MemberState.WAITING or member.target is None:
        raise MemberNotStarted(f"member {member_id} is not waiting")
    rollout = member.rollout
    job = request_target_action(
        session,
        services,
        member.target,
        "upgrade",
        rollout.destination,
        actor=rollout.requested_by,
        role=Role.OPERATOR,
        now=now,
        plan=plan,
    )
    _hold_rollout(session, rollout, now)
    values: dict[str, object] = {"started_at": now, "error": None}
    if job is None:
        values.update(state=MemberState.SUCCEEDED, finished_at=now)
    else:
        values.update(state=MemberState.RUNNING, job_id=job.id, jobs=RolloutMember.jobs + 1)
    if not rows_changed(
        session,
        sa.update(RolloutMember)
        .where(RolloutMember.id == member.id, RolloutMember.state == MemberState.WAITING)
        .values(**values),
    ):
        raise MemberNotStarted(f"member {member_id} was started by another worker")
    running = session.scalar(
        sa.select(sa.func.count()).where(
            RolloutMember.rollout_id == rollout.id, RolloutMember.state == MemberState.RUNNING
        )
    )
    if job is not None and (running or 0) > rollout.concurrency:
        raise MemberNotStarted(f"rollout {rollout.id} already runs {rollout.concurrency} job(s)")
    if job is None:
        return f"{member.target_name}: already at {rollout.destination}, no job needed"
    add_log(session, job.id, f"part of rollout {rollout.id} ({wave_name(member.wave)})", now)
    if job.state == JobState.AWAITING_APPROVAL:
        return _carry_approval(session, rollout, member, job, now)
    return f"{member.target_name}: job {job.id} queued"


def _hold_rollout(session: Session, rollout: Rollout, now: datetime) -> None:
    """Lock the rollout row and insist it still runs (a pause or cancel wins from here on)."""
    if not rows_changed(
        session,
        sa.update(Rollout)
        .where(Rollout.id == rollout.id, Rollout.state == RolloutState.RUNNING)
        .values(updated_at=now),
    ):
        raise MemberNotStarted(f"rollout {rollout.id} is no longer running")


def _carry_approval(
    session: Session, rollout: Rollout, member: RolloutMember, job: Job, now: datetime
) -> str:
    """Give the member's job the rollout's approvals, if its plan is the one approved."""
    if job.plan_hash != member.plan_hash:
        note = (
            f"the plan of job {job.id} differs from the one approved with rollout {rollout.id} "
            "(the target moved or a file changed): it needs its own approval"
        )
        add_log(session, job.id, note, now)
        member.error = note
        return f"{member.target_name}: {note}"
    approvals = session.scalars(
        sa.select(RolloutApproval).where(
            RolloutApproval.rollout_id == rollout.id,
            RolloutApproval.decision == "approved",
            RolloutApproval.fingerprint == rollout.fingerprint,
            RolloutApproval.decided_by != job.requested_by,
        )
    ).all()
    for given in approvals:
        session.add(
            Approval(
                job_id=job.id,
                decision=ApprovalDecision.APPROVED,
                decided_by=given.decided_by,
                decided_at=given.decided_at,
                comment=f"approved with rollout {rollout.id}: {given.comment}".rstrip(": "),
                plan_hash=job.plan_hash,
            )
        )
        audit_job(
            session,
            given.decided_by,
            "job.approve",
            job,
            now,
            detail={"rollout": rollout.id, "plan_hash": job.plan_hash},
        )
    session.flush()
    needed = job.target.environment.required_approvals if job.target else 1
    if len(approvals) >= needed and move_job(
        session, job.id, JobState.AWAITING_APPROVAL, JobState.QUEUED, queued_at=now
    ):
        add_log(session, job.id, f"approved with rollout {rollout.id}: queued", now)
        enqueue_after_commit(session, job.id)
        return f"{member.target_name}: job {job.id} approved with the rollout and queued"
    return f"{member.target_name}: job {job.id} awaits approval"


def fail_member(session: Session, member_id: int, reason: str, now: datetime) -> bool:
    """A waiting member whose target could not be planned when its turn came."""
    return bool(
        rows_changed(
            session,
            sa.update(RolloutMember)
            .where(RolloutMember.id == member_id, RolloutMember.state == MemberState.WAITING)
            .values(state=MemberState.FAILED, error=reason, started_at=now, finished_at=now),
        )
    )
