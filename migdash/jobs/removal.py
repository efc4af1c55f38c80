"""Removing a project, environment or target on purpose: say what goes, then do exactly that.

A removal used to be one click that deleted the rows and left their
pending jobs behind: an approval for a target that no longer exists can be
neither approved nor rejected, so it sat in Approvals for good.  Here the
web confirmation page and the CLI prompt first read :func:`removal_summary`
(the targets, their waiting and queued jobs, the approvals given so far,
any running job), and :func:`remove` then cancels every waiting or queued
job (compare-and-set, logged and audited like any cancellation) before the
registry rows go.  A running job refuses the removal: the worker holds the
target, and pulling the rows from under it would leave no honest record.

Like every ``jobs`` function this flushes and never commits: the boundary
commits once, so the cancellations and the removal land together or not at
all.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from migdash.errors import Conflict, InvalidInput
from migdash.jobs.records import add_log, audit_job, describe, move_job
from migdash.permissions import Permission, require
from migdash.store import registry
from migdash.store.models import Approval, Job, JobState, Role, Target

KINDS = ("project", "environment", "target")
CANCELLABLE = (JobState.AWAITING_APPROVAL, JobState.QUEUED, JobState.SCHEDULED)
"""Tried in this order, so a job approved (awaiting -> queued) meanwhile is still caught."""


@dataclass(frozen=True)
class GivenApproval:
    """A decision already recorded on a job that the removal cancels."""

    decided_by: str
    decision: str
    decided_at: datetime


@dataclass(frozen=True)
class AffectedJob:
    id: int
    state: JobState
    description: str
    """What the job does, as the jobs pages say it ("upgrade shop-prod to heads")."""
    target: str | None
    requested_by: str
    approvals: tuple[GivenApproval, ...] = ()


@dataclass(frozen=True)
class AffectedTarget:
    name: str
    project: str
    environment: str


@dataclass(frozen=True)
class RemovalSummary:
    """Everything a removal would take with it, read before anyone confirms."""

    kind: str
    name: str
    targets: tuple[AffectedTarget, ...]
    """The targets that go (a project's targets; the target itself; an environment's)."""
    pending: tuple[AffectedJob, ...]
    """Jobs awaiting approval or queued: the removal cancels each of them."""
    running: tuple[AffectedJob, ...]
    """Running jobs: any one of them refuses the removal."""
    kept_jobs: int
    """Finished jobs of what goes; their history, logs and audit rows stay."""
    refusal: str | None
    """Why the removal cannot happen now, or None."""

    @property
    def approvals(self) -> tuple[tuple[AffectedJob, GivenApproval], ...]:
        return tuple((job, given) for job in self.pending for given in job.approvals)

    @property
    def fingerprint(self) -> str:
        """Identifies what was shown, so a confirmation cannot stand for a different removal."""
        shown = {
            "subject": [self.kind, self.name],
            "targets": sorted(t.name for t in self.targets),
            "pending": sorted((j.id, j.state.value) for j in self.pending),
            "running": sorted(j.id for j in self.running),
        }
        return hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()

    def consequences(self) -> tuple[str, ...]:
        """What confirming does, one sentence each (the web page and the CLI show these)."""
        if self.refusal is not None:
            return (f"Nothing can be removed now: {self.refusal}",)
        names = ", ".join(t.name for t in self.targets)
        if self.kind == "project":
            what = f"Project {self.name} is unregistered with its {len(self.targets)} target(s)"
            lines = [f"{what}{': ' + names if names else ''}."]
        else:
            lines = [f"{self.kind.capitalize()} {self.name} is unregistered."]
        lines.extend(
            f"Job {job.id} ({job.description}, {job.state.value}) is cancelled"
            + (f"; its {len(job.approvals)} approval(s) no longer count." if job.approvals else ".")
            for job in self.pending
        )
        if self.kept_jobs:
            lines.append(f"{self.kept_jobs} finished job(s) stay in the history.")
        if self.kind != "environment":
            lines.append("No file and no database is touched; the audit trail keeps everything.")
        return tuple(lines)


def removal_summary(session: Session, kind: str, name: str) -> RemovalSummary:
    """Read what removing *kind* *name* takes with it; changes nothing.

    :raises InvalidInput: *kind* is not one of :data:`KINDS`.
    :raises NotFound: nothing of that kind has that name.
    """
    targets, condition = _subject(session, kind, name)
    jobs = list(session.scalars(sa.select(Job).where(condition).order_by(Job.id)))
    given = _approvals(session, [j.id for j in jobs if j.state in CANCELLABLE])
    pending = tuple(_affected(j, given.get(j.id, ())) for j in jobs if j.state in CANCELLABLE)
    running = tuple(_affected(j, ()) for j in jobs if j.state == JobState.RUNNING)
    return RemovalSummary(
        kind=kind,
        name=name,
        targets=tuple(AffectedTarget(t.name, t.project.name, t.environment.name) for t in targets),
        pending=pending,
        running=running,
        kept_jobs=len(jobs) - len(pending) - len(running),
        refusal=_refusal(kind, name, targets, running),
    )


def refuse_if_blocked(summary: RemovalSummary) -> None:
    """Raise the refusal a summary carries, with what to do about it.

    :raises Conflict: a job is running on what would go, or an environment still holds targets.
    """
    if summary.refusal is None:
        return
    hint = (
        "Move or remove its targets first."
        if summary.kind == "environment"
        else "Wait for the running job to end (its page shows it live), then remove again."
    )
    raise Conflict(summary.refusal, hint=hint)


def remove(
    session: Session,
    kind: str,
    name: str,
    *,
    actor: str,
    role: Role | str,
    now: datetime,
    seen: str | None = None,
) -> RemovalSummary:
    """Cancel the pending jobs of what goes, then unregister it.

    Returns the summary of what was done: ``pending`` holds the jobs this
    removal cancelled (not those that ended on their own meanwhile).

    :param seen: the :attr:`RemovalSummary.fingerprint` the actor confirmed;
        if what the removal affects changed since, nothing is removed.
    :raises Forbidden: the role is not admin.
    :raises Conflict: a job is running (or starts running) on what would go;
        an environment still holds targets; the summary changed since *seen*.
    """
    require(role, Permission.ADMIN, actor=actor)
    summary = removal_summary(session, kind, name)
    refuse_if_blocked(summary)
    if seen is not None and seen != summary.fingerprint:
        raise Conflict(
            f"what removing {kind} {name} affects changed since it was shown to you",
            hint="Read the summary again and confirm again.",
        )
    reason = f"{kind} {name} removed by {actor}"
    cancelled = tuple(
        affected
        for affected in summary.pending
        if _cancel(session, affected, summary, actor=actor, reason=reason, now=now)
    )
    _unregister(session, kind, name, actor)
    return replace(summary, pending=cancelled)


def _subject(session: Session, kind: str, name: str) -> tuple[list[Target], sa.ColumnElement[bool]]:
    """The targets that go, and which jobs belong to what goes."""
    if kind == "project":
        project = registry.get_project(session, name)
        targets = list(project.targets)
        ids = [t.id for t in targets]
        return targets, sa.or_(Job.project_id == project.id, Job.target_id.in_(ids))
    if kind == "environment":
        targets = list(registry.get_environment(session, name).targets)
    elif kind == "target":
        targets = [registry.get_target(session, name)]
    else:
        raise InvalidInput(f"cannot remove {kind!r}", hint=f"One of {', '.join(KINDS)}.")
    return targets, Job.target_id.in_([t.id for t in targets])


def _approvals(session: Session, job_ids: list[int]) -> dict[int, tuple[GivenApproval, ...]]:
    found: dict[int, list[GivenApproval]] = {}
    rows = session.scalars(
        sa.select(Approval).where(Approval.job_id.in_(job_ids)).order_by(Approval.id)
    )
    for row in rows:
        given = GivenApproval(row.decided_by, row.decision.value, row.decided_at)
        found.setdefault(row.job_id, []).append(given)
    return {job_id: tuple(items) for job_id, items in found.items()}


def _affected(job: Job, approvals: tuple[GivenApproval, ...]) -> AffectedJob:
    return AffectedJob(
        id=job.id,
        state=JobState(job.state),
        description=describe(job),
        target=job.target_name,
        requested_by=job.requested_by,
        approvals=approvals,
    )


def _refusal(
    kind: str, name: str, targets: list[Target], running: tuple[AffectedJob, ...]
) -> str | None:
    if kind == "environment" and targets:
        return f"environment {name!r} still holds {len(targets)} target(s)"
    if running:
        jobs = "; ".join(f"job {j.id} ({j.description}) is running" for j in running)
        return f"{jobs}: {kind} {name} cannot be removed while it runs"
    return None


def _cancel(
    session: Session,
    affected: AffectedJob,
    summary: RemovalSummary,
    *,
    actor: str,
    reason: str,
    now: datetime,
) -> bool:
    """Cancel one job by compare-and-set; one that started running meanwhile refuses all."""
    cancelled = any(
        move_job(session, affected.id, state, JobState.CANCELLED, finished_at=now, note=None)
        for state in CANCELLABLE
    )
    job = session.get(Job, affected.id, populate_existing=True)
    if job is None:  # jobs are never deleted; a vanished row means the data is not ours
        raise Conflict(f"job {affected.id} disappeared while {summary.name} was being removed")
    if not cancelled:
        if job.state == JobState.RUNNING:
            raise Conflict(
                f"job {job.id} ({affected.description}) started running while "
                f"{summary.kind} {summary.name} was being removed; nothing was removed",
                hint="Wait for it to end, then remove again.",
            )
        return False  # it ended on its own (cancelled or rejected by someone else)
    add_log(session, job.id, f"cancelled by {actor}: {reason}", now)
    audit_job(session, actor, "job.cancel", job, now, detail={"reason": reason})
    return True


def _unregister(session: Session, kind: str, name: str, actor: str) -> None:
    if kind == "project":
        registry.remove_project(session, registry.get_project(session, name), actor=actor)
    elif kind == "environment":
        registry.remove_environment(session, registry.get_environment(session, name), actor=actor)
    else:
        registry.remove_target(session, registry.get_target(session, name), actor=actor)
