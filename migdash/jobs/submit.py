"""The one path from "a person asks" to "a job exists": permission, approval, audit, queue.

Web views, API routes and CLI commands all call these, so the rules (who
may request, which environments need approval, what is audited) live once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from migdash.engine.catalog import GraphCatalog
from migdash.engine.probe import ProbePool
from migdash.errors import NotFound
from migdash.jobs import requests
from migdash.jobs.approvals import hold_for_approval
from migdash.jobs.queue import JobQueue
from migdash.permissions import Permission, require
from migdash.store import audit
from migdash.store.models import Environment, Job, JobState, Project, Role, Target, utcnow
from migdash.store.queries import find_targets


def submit_target_action(
    session: Session,
    catalog: GraphCatalog,
    probes: ProbePool,
    queue: JobQueue,
    target: Target,
    kind: str,
    revision: str,
    *,
    actor: str,
    role: Role | str,
    purge: bool = False,
) -> Job:
    """Request *kind* of *target*; queue it now, or hold it for approval if protected."""
    require(role, Permission.REQUEST, actor=actor)
    now = utcnow()
    job = requests.request_target_action(
        session, catalog, target, kind, revision, actor=actor, now=now, purge=purge
    )
    sql = None
    if target.environment.protected:
        sql = hold_for_approval(session, catalog, probes, job, now).sql
    audit.record(
        session,
        actor,
        "job.request",
        project=target.project.name,
        environment=target.environment.name,
        target=target.name,
        job_id=job.id,
        from_revisions=job.from_revisions,
        to_revision=revision,
        sql=sql,
        detail={"kind": kind, "state": job.state, "purge": purge},
        now=now,
    )
    session.commit()
    if job.state == JobState.QUEUED.value:
        queue.submit([job.id])
    return job


def submit_environment_action(
    session: Session,
    catalog: GraphCatalog,
    probes: ProbePool,
    queue: JobQueue,
    environment: Environment,
    project: Project,
    kind: str,
    revision: str,
    *,
    actor: str,
    role: Role | str,
) -> list[Job]:
    """One job per target of *project* in *environment* (each held if protected)."""
    require(role, Permission.REQUEST, actor=actor)
    targets = find_targets(session, project=project.name, environment=environment.name)
    if not targets:
        raise NotFound(f"project {project.name} has no targets in {environment.name}")
    return [
        submit_target_action(
            session, catalog, probes, queue, t, kind, revision, actor=actor, role=role
        )
        for t in targets
    ]


def submit_project_action(
    session: Session,
    catalog: GraphCatalog,
    queue: JobQueue,
    project: Project,
    kind: str,
    arguments: dict[str, Any],
    *,
    actor: str,
    role: Role | str,
    against: Target | None = None,
) -> Job:
    """A merge or a new revision file; these write files, not databases, so no approval."""
    require(role, Permission.REQUEST, actor=actor)
    now = utcnow()
    job = requests.request_project_action(
        session, catalog, project, kind, arguments, actor=actor, now=now, against=against
    )
    audit.record(
        session,
        actor,
        "job.request",
        project=project.name,
        target=against.name if against else None,
        job_id=job.id,
        detail={"kind": kind, "message": arguments.get("message")},
        now=now,
    )
    session.commit()
    queue.submit([job.id])
    return job


def cancel(session: Session, job_id: int, *, actor: str, role: Role | str) -> Job:
    require(role, Permission.REQUEST, actor=actor)
    now = utcnow()
    job = requests.cancel_job(session, job_id, actor=actor, now=now)
    requests.audit_job(session, actor, "job.cancel", job, now)
    session.commit()
    return job
