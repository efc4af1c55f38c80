"""When a job may start: its environment's rollout windows and its own ``not_before``.

A target action that is due (unprotected, or approved) while its
environment's window is closed, or before its ``not_before``, waits as
``scheduled`` with ``scheduled_for`` set to when it will start.  The
worker decides this where it claims a job (:meth:`Worker.execute`), with
its injectable clock; requests and approvals apply the same rule at once so
people see "scheduled" right away.  When the time comes the job goes back to
``queued`` and through the normal gate: scheduling never bypasses it.
Functions here flush at most; the boundary commits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from migdash.errors import InvalidInput
from migdash.jobs.records import TARGET_ACTIONS, add_log, move_job
from migdash.store.models import Environment, Job, JobState
from migdash.windows import HORIZON, describe_windows, next_opening, parse_windows

MAX_DELAY = 3600.0
"""A delayed queue message wakes the job at most this many seconds later (then it re-checks)."""


def environment_windows(environment: Environment | None) -> str:
    """The environment's windows as people read them ("always" when it has none)."""
    if environment is None or not environment.windows:
        return "always"
    return describe_windows(parse_windows(environment.windows))


def wake_time(job: Job, now: datetime) -> datetime | None:
    """When *job* may start, if not at *now* (None: it may start now).

    Only target actions wait: merge and revision write files, not databases.
    """
    if job.kind not in TARGET_ACTIONS or job.target is None:
        return None
    start = max(now, job.not_before) if job.not_before else now
    windows = parse_windows(job.target.environment.windows or "")
    opening = next_opening(windows, start)
    if opening is None:  # nothing opens soon: look again then
        opening = start + HORIZON
    return opening if opening > now else None


def hold_job(session: Session, job: Job, now: datetime) -> datetime | None:
    """Move a queued or scheduled *job* to ``scheduled`` until its wake time; None: it may run.

    Logs once per wake time, so repeated passes do not flood the job's log.
    """
    wake = wake_time(job, now)
    if wake is None or job.state not in (JobState.QUEUED, JobState.SCHEDULED):
        return None
    if job.state == JobState.QUEUED:
        if not move_job(session, job.id, JobState.QUEUED, JobState.SCHEDULED, scheduled_for=wake):
            return None
        session.refresh(job)
    elif job.scheduled_for == wake:
        return wake
    else:
        job.scheduled_for = wake  # the window or not_before changed while it waited
    add_log(session, job.id, f"scheduled: starts at {wake:%Y-%m-%d %H:%M} UTC ({why(job)})", now)
    session.flush()
    return wake


def release_job(session: Session, job: Job, now: datetime) -> bool:
    """A scheduled job whose time came goes back to ``queued`` (False: someone else moved it)."""
    released = move_job(
        session, job.id, JobState.SCHEDULED, JobState.QUEUED, scheduled_for=None, note=None
    )
    session.refresh(job)
    if released:
        add_log(session, job.id, "its start time came: queued for the gate", now)
        session.flush()
    return released


def why(job: Job) -> str:
    """ "window Mon-Fri 22:00-02:00 UTC" and/or "not before 2026-11-28 09:00 UTC"."""
    reasons = []
    environment = job.target.environment if job.target is not None else None
    if environment is not None and environment.windows:
        reasons.append(f"window {environment_windows(environment)}")
    if job.not_before is not None:
        reasons.append(f"not before {job.not_before:%Y-%m-%d %H:%M} UTC")
    return "; ".join(reasons) or "no window"


def parse_not_before(text: str | None) -> datetime | None:
    """A start time typed by a person: ISO-8601 (``2026-11-28T22:00``, offset optional: UTC).

    Empty means none.  Range checks are the request's (``check_not_before``).
    """
    if text is None or not text.strip():
        return None
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(
            f"not_before {text.strip()[:40]!r} is not a date and time",
            hint="ISO-8601, e.g. 2026-11-28T22:00 (UTC unless an offset is given).",
            field="not_before",
        ) from exc


def delay_until(wake: datetime, now: datetime) -> float:
    """Seconds a queue message should wait for *wake*, at least 1 and at most MAX_DELAY."""
    return min(max((wake - now).total_seconds(), 1.0), MAX_DELAY)
