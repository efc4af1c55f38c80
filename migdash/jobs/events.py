"""What migdash announces to webhooks: job changes, drift, a second head, a lost target.

Each ``announce_*`` function builds the event's payload and calls
:func:`migdash.store.webhooks.emit` in the caller's transaction (it flushes,
never commits), so an announced event exists if and only if its cause
commits.  Payloads hold names, states and revisions: never a URL or secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from migdash.store.models import Job, JobState, Target
from migdash.store.webhooks import emit

MOVE_EVENTS = {
    JobState.AWAITING_APPROVAL: "job.awaiting_approval",
    JobState.RUNNING: "job.started",
    JobState.SUCCEEDED: "job.succeeded",
    JobState.FAILED: "job.failed",
    JobState.INTERRUPTED: "job.interrupted",
    JobState.REFUSED: "job.refused",
    JobState.REJECTED: "job.rejected",
    JobState.CANCELLED: "job.cancelled",
}
"""The event of a job entering each state (entering ``queued`` is "approved" only after a hold)."""
DRIFT_OUTCOMES = frozenset({"drift", "stamped_not_applied"})


def job_payload(job: Job, state: str) -> dict[str, Any]:
    target = job.target
    revision = job.arguments.get("revision") or job.arguments.get("head")
    return {
        "job": {
            "id": job.id,
            "kind": job.kind,
            "state": state,
            "project": job.project_name,
            "target": job.target_name,
            "environment": target.environment.name if target is not None else None,
            "revision": revision,
            "requested_by": job.requested_by,
            "from_revisions": job.from_revisions,
            "result_revisions": job.result_revisions,
            "failed_step": job.failed_step,
        },
    }


def _announce_job(session: Session, event: str, job: Job, state: str, now: datetime | None) -> None:
    target = job.target
    payload = job_payload(job, state)
    where = f" on {job.target_name}" if job.target_name else f" in {job.project_name}"
    payload["summary"] = f"job {job.id} ({job.kind}{where}): {event.removeprefix('job.')}"
    emit(
        session,
        event,
        payload,
        project_id=job.project_id,
        environment_id=target.environment_id if target is not None else None,
        now=now,
    )


def announce_new_job(session: Session, job: Job, now: datetime) -> None:
    """A job was requested (and, in a protected environment, now awaits approval)."""
    _announce_job(session, "job.requested", job, job.state.value, now)
    if job.state == JobState.AWAITING_APPROVAL:
        _announce_job(session, "job.awaiting_approval", job, job.state.value, now)


def announce_move(session: Session, job_id: int, from_state: JobState, to_state: JobState) -> None:
    """A job changed state (called by ``move_job`` after its compare-and-set counted)."""
    event = MOVE_EVENTS.get(to_state)
    if to_state == JobState.QUEUED and from_state == JobState.AWAITING_APPROVAL:
        event = "job.approved"
    if event is None:
        return
    job = session.get(Job, job_id)
    if job is not None:
        _announce_job(session, event, job, to_state.value, None)


def announce_drift(
    session: Session, target: Target, kind: str, outcome: str, summary: str, now: datetime
) -> None:
    """A drift check found drift (or a stamped revision whose schema is not there)."""
    if outcome not in DRIFT_OUTCOMES:
        return
    payload = {
        "target": target.name,
        "project": target.project.name,
        "environment": target.environment.name,
        "check": kind,
        "outcome": outcome,
        "summary": f"drift on {target.name} ({kind}): {summary}",
    }
    emit(
        session,
        "drift.detected",
        payload,
        project_id=target.project_id,
        environment_id=target.environment_id,
        now=now,
    )


def announce_heads(
    session: Session, project_id: int, project: str, heads: Sequence[str], now: datetime
) -> None:
    """A project's graph has more than one head: announced once per set of heads."""
    if len(heads) < 2:
        return
    ordered = sorted(heads)
    emit(
        session,
        "project.multiple_heads",
        {
            "project": project,
            "heads": ordered,
            "summary": f"project {project} has {len(ordered)} heads: {', '.join(ordered)}",
        },
        project_id=project_id,
        environment_id=None,
        now=now,
        dedupe_key=f"heads:{project_id}:{','.join(ordered)}"[:200],
    )


def announce_unreachable(
    session: Session, target: Target, error: str | None, now: datetime
) -> None:
    """A target became unreachable (its error is already scrubbed of secrets)."""
    emit(
        session,
        "target.unreachable",
        {
            "target": target.name,
            "project": target.project.name,
            "environment": target.environment.name,
            "error": error,
            "summary": f"target {target.name} is unreachable",
        },
        project_id=target.project_id,
        environment_id=target.environment_id,
        now=now,
    )
