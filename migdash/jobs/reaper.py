"""After a job, or after its worker died: re-probe honestly, and mark lapsed jobs interrupted.

A job whose worker stopped sending heartbeats (``kill -9``, a lost machine)
is never run again: any worker's reaper marks it ``interrupted``, frees the
target's lease and records where the target really is now.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from migdash.jobs.context import JobServices
from migdash.jobs.records import add_log, audit_job, move_job
from migdash.status import refresh_status
from migdash.store.models import Job, JobState, Target, TargetLease, utcnow


def reap_interrupted(session: Session, services: JobServices, ttl: timedelta) -> list[int]:
    """Running jobs with no heartbeat for *ttl* become ``interrupted``; never re-run.

    Flushes; the reaper pass (:meth:`Worker.reap`) commits.
    """
    now = utcnow()
    stale = session.scalars(
        sa.select(Job).where(Job.state == JobState.RUNNING, Job.heartbeat_at < now - ttl)
    ).all()
    reaped = []
    for job in stale:
        changed = move_job(
            session,
            job.id,
            JobState.RUNNING,
            JobState.INTERRUPTED,
            Job.heartbeat_at == job.heartbeat_at,
            finished_at=now,
            error=f"worker {job.worker} stopped sending heartbeats after "
            f"{job.heartbeat_at:%H:%M:%S} UTC; the job was not re-run",
        )
        if not changed:
            continue
        session.execute(sa.delete(TargetLease).where(TargetLease.job_id == job.id))
        current = None
        if job.target is not None:
            current = reprobe(session, services, job.target)
            job.result_revisions = current
        audit_job(
            session,
            "reaper",
            "job.interrupted",
            job,
            now,
            from_revisions=job.from_revisions,
            to_revision=",".join(current) if current is not None else None,
            detail={"worker": job.worker},
        )
        add_log(
            session,
            job.id,
            f"interrupted: worker {job.worker} stopped responding; the "
            f"lock was released and the job will not run again; target now at "
            f"{', '.join(current or []) or '<base>'}",
            now,
        )
        reaped.append(job.id)
    session.flush()
    return reaped


def reprobe(session: Session, services: JobServices, target: Target) -> list[str] | None:
    """The target's revisions after a job, or None when it cannot be read right now.

    None is honest where an empty list would claim the database sits at base.
    """
    (report,) = refresh_status(session, services.catalog, services.probes, [target])
    if report.status.state.value == "unreachable":
        return None
    return list(report.status.current)
