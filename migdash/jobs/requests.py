"""The one path from "a person asks" to "a job exists": permission, plan, hold, audit, queue.

Web views, API routes and CLI commands all call these, so the rules (who
may request, one pending job per target, the plan that was shown, which
environments need approval, what is audited) live once.

Transaction rule: nothing under ``migdash.jobs`` commits (except the worker
loop and the reaper pass, which are boundaries themselves).  A request adds
its job, its approval hold, its log lines and its ``job.request`` audit row
to the caller's session and flushes; the boundary commits once, and only
then does the job id reach the queue (:func:`enqueue_after_commit`).  A
request therefore creates everything or nothing.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from migdash.engine.graph import RevisionGraph
from migdash.engine.revision_files import check_revision_request
from migdash.errors import (
    Conflict,
    InvalidInput,
    JobPending,
    MigdashError,
    NotFound,
    TargetMoved,
)
from migdash.jobs.context import JobServices, enqueue_after_commit
from migdash.jobs.events import announce_new_job
from migdash.jobs.plans import ActionPlan, make_plan
from migdash.jobs.records import (
    PROJECT_ACTIONS,
    TARGET_ACTIONS,
    add_log,
    audit_job,
    describe,
    move_job,
    pending_job,
)
from migdash.jobs.schedule import hold_job
from migdash.permissions import Permission, require
from migdash.status import record_status
from migdash.store import audit
from migdash.store.models import Environment, Job, JobState, Project, Role, Target
from migdash.store.queries import find_targets

RELATIVE = re.compile(r"^(?:[\w.-]+@)?[+-]\d+$")
SYMBOLS = ("heads", "head", "base")


def check_destination(graph: RevisionGraph, kind: str, revision: str) -> str:
    """Accept what Alembic would: heads, head, base, +N/-N, an id, a label, label@head.

    A cheap first check on the cached graph, so a typo is refused before a
    child process is started; Alembic itself has the last word in the plan.
    """
    revision = revision.strip()
    if not revision:
        raise InvalidInput(
            "no destination revision given", hint="e.g. heads, +1, -1, base, or an id"
        )
    if kind == "upgrade" and revision == "base":
        raise InvalidInput("upgrade to base makes no sense", hint="Did you mean downgrade base?")
    if kind == "downgrade" and revision in ("heads", "head"):
        raise InvalidInput("downgrade to heads makes no sense", hint="Did you mean upgrade?")
    if kind == "upgrade" and revision.startswith("-") or kind == "downgrade" and "+" in revision:
        raise InvalidInput(f"{kind} to {revision} goes the wrong way", hint="Use the other action.")
    if revision in SYMBOLS or RELATIVE.match(revision):
        if revision == "head":
            graph.resolve("head")  # raises AmbiguousHead with the list of heads
        return revision
    graph.resolve(revision)
    return revision


def check_not_before(moment: datetime, now: datetime) -> datetime:
    """*moment* as naive UTC (no offset means UTC), at most a year after *now*."""
    try:
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        too_late = moment > now + timedelta(days=366)
    except OverflowError as exc:
        raise InvalidInput("not_before is out of range", field="not_before") from exc
    if too_late:
        raise InvalidInput(
            f"not_before {moment:%Y-%m-%d %H:%M} UTC is more than a year ahead",
            hint="Schedule within the next year.",
            field="not_before",
        )
    return moment


def refuse_if_pending(session: Session, target: Target) -> None:
    """One pending target action at a time: a second one would be planned on a stale state."""
    job = pending_job(session, target.id)
    if job is not None:
        raise JobPending(job.id, target.name, job.state)


def request_target_action(
    session: Session,
    services: JobServices,
    target: Target,
    kind: str,
    revision: str,
    *,
    actor: str,
    role: Role | str,
    now: datetime,
    purge: bool = False,
    seen_plan: str | None = None,
    plan: ActionPlan | None = None,
    not_before: datetime | None = None,
) -> Job | None:
    """Plan *kind* of *target* and record the job: queued, or held for approval if protected.

    *plan*, when given, is one the caller made for this target just now (a
    rollout plans the targets of a wave that share a starting point at once);
    the worker's gate checks it against the target like any other.

    Returns None, and records no job, when the plan has no step (the target
    is already there): like ``alembic upgrade`` on an up-to-date database,
    that is not an error.

    :raises JobPending: the target already has a job waiting or running.
    :raises TargetMoved: *seen_plan* is not the plan as it stands now.
    :raises PlanRefused: Alembic refuses the walk.

    *not_before* (naive UTC) holds the job ``scheduled`` until then, like a
    closed rollout window does.
    """
    require(role, Permission.REQUEST, actor=actor)
    if kind not in TARGET_ACTIONS:
        raise InvalidInput(f"unknown action {kind!r}", hint=f"One of {', '.join(TARGET_ACTIONS)}")
    if not_before is not None:
        not_before = check_not_before(not_before, now)
    refuse_if_pending(session, target)
    if plan is None or (plan.target_id, plan.kind, plan.destination, plan.purge) != (
        target.id,
        kind,
        revision,
        purge,
    ):
        plan = make_plan(services, target, kind, revision, purge=purge)
    if plan.status is not None and plan.probe is not None:
        record_status(session, target, plan.status, plan.probe, now)
    if seen_plan and seen_plan != plan.hash:
        raise TargetMoved(
            f"the plan changed since you read it: the target is now at "
            f"{', '.join(plan.current) or '<base>'}",
            hint="Read the new plan and confirm again.",
        )
    if plan.nothing_to_do:
        return None
    job = _add_job(session, target, kind, revision, purge, plan, actor=actor, now=now)
    if not_before is not None:
        job.not_before = not_before
        session.flush()
    hold_job(session, job, now)
    _audit_request(session, job, plan, actor, now)
    return job


def _add_job(
    session: Session,
    target: Target,
    kind: str,
    revision: str,
    purge: bool,
    plan: ActionPlan,
    *,
    actor: str,
    now: datetime,
) -> Job:
    protected = target.environment.protected
    job = Job(
        kind=kind,
        project_id=target.project_id,
        target_id=target.id,
        project_name=target.project.name,
        target_name=target.name,
        arguments={"revision": revision, "purge": purge},
        requested_by=actor,
        requested_at=now,
        queued_at=None if protected else now,
        state=JobState.AWAITING_APPROVAL if protected else JobState.QUEUED,
        from_revisions=list(plan.current),
        plan=plan.to_json(),
        plan_hash=plan.hash,
    )
    session.add(job)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent request won the partial unique index
        raise Conflict(
            f"another request for target {target.name} was recorded at the same moment",
            hint="Reload the target's page and look at its jobs.",
        ) from exc
    add_log(session, job.id, f"requested by {actor}: {describe(job)}", now)
    announce_new_job(session, job, now)
    if protected:
        needed = target.environment.required_approvals
        add_log(
            session,
            job.id,
            f"awaiting approval: the environment is protected ({needed} approval(s) needed)",
            now,
        )
    else:
        enqueue_after_commit(session, job.id)
    return job


def _audit_request(session: Session, job: Job, plan: ActionPlan, actor: str, now: datetime) -> None:
    audit_job(
        session,
        actor,
        "job.request",
        job,
        now,
        environment=job.target.environment.name if job.target else None,
        from_revisions=list(plan.current),
        to_revision=str(job.arguments.get("revision")),
        sql=plan.sql,
        detail={
            "kind": job.kind,
            "state": job.state.value,
            "purge": bool(job.arguments.get("purge")),
            "not_before": job.not_before.isoformat() if job.not_before else None,
            "plan_hash": plan.hash,
            "steps": [s.label for s in plan.steps],
        },
    )


def request_environment_action(
    session: Session,
    services: JobServices,
    environment: Environment,
    project: Project,
    kind: str,
    revision: str,
    *,
    actor: str,
    role: Role | str,
    now: datetime,
    not_before: datetime | None = None,
) -> list[Job]:
    """One job per target of *project* in *environment* that needs one, all of them or none.

    Every target is planned; if any cannot be (unreachable, pending job,
    refused by Alembic), nothing is requested and the message lists each one.
    Targets already there need no job.
    """
    require(role, Permission.REQUEST, actor=actor)
    targets = find_targets(session, project=project.name, environment=environment.name)
    if not targets:
        raise NotFound(f"project {project.name} has no targets in {environment.name}")
    jobs, problems = [], []
    for target in targets:
        try:
            job = request_target_action(
                session,
                services,
                target,
                kind,
                revision,
                actor=actor,
                role=role,
                now=now,
                not_before=not_before,
            )
        except MigdashError as exc:
            problems.append(f"{target.name}: {exc.message}")
            continue
        if job is not None:
            jobs.append(job)
    if problems:
        raise Conflict(
            f"nothing was requested; {len(problems)} of {len(targets)} target(s) cannot be "
            f"planned: " + "; ".join(problems),
            hint="Fix or leave out those targets (request them one by one), then try again.",
        )
    return jobs


def request_project_action(
    session: Session,
    services: JobServices,
    project: Project,
    kind: str,
    arguments: dict[str, Any],
    *,
    actor: str,
    role: Role | str,
    now: datetime,
    against: Target | None = None,
) -> Job:
    """A merge or a new revision file: these write files, not databases, so no approval.

    Every text that will reach the file is checked first
    (:func:`~migdash.engine.revision_files.check_revision_request`).
    """
    require(role, Permission.REQUEST, actor=actor)
    if kind not in PROJECT_ACTIONS:
        raise InvalidInput(f"unknown action {kind!r}")
    graph = services.catalog.graph(project.script_location)
    arguments = check_revision_request(graph, kind, arguments)
    if arguments.get("autogenerate") and against is None:
        raise InvalidInput("autogenerate needs a target to compare against", field="against")
    job = Job(
        kind=kind,
        project_id=project.id,
        target_id=against.id if against else None,
        project_name=project.name,
        target_name=against.name if against else None,
        arguments=arguments,
        requested_by=actor,
        requested_at=now,
        queued_at=now,
    )
    session.add(job)
    session.flush()
    add_log(session, job.id, f"requested by {actor}: {describe(job)}", now)
    announce_new_job(session, job, now)
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
    enqueue_after_commit(session, job.id)
    return job


def cancel_job(
    session: Session, job_id: int, *, actor: str, role: Role | str, now: datetime, reason: str = ""
) -> Job:
    """Cancel a job that has not started (queued, scheduled or awaiting approval); audited."""
    require(role, Permission.REQUEST, actor=actor)
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    cancelled = any(
        move_job(session, job_id, state, JobState.CANCELLED, finished_at=now, note=None)
        for state in (JobState.QUEUED, JobState.SCHEDULED, JobState.AWAITING_APPROVAL)
    )
    session.refresh(job)
    if not cancelled:
        raise Conflict(f"job {job_id} is {job.state} and can no longer be cancelled")
    add_log(session, job_id, f"cancelled by {actor}" + (f": {reason}" if reason else ""), now)
    audit_job(session, actor, "job.cancel", job, now, detail={"reason": reason} if reason else {})
    return job
