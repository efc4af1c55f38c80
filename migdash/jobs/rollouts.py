"""Fleet rollouts: select targets, plan them, approve once, then upgrade them wave by wave.

A rollout is created with every selected target planned (an ``upgrade`` to
the destination, as :func:`~migdash.jobs.plans.make_plan` would plan it);
a target that cannot be planned refuses the whole rollout, listing each.
Targets are put in waves: the canary (wave 0) first, then waves of
``wave_size``.  The waves themselves are driven by the worker
(:mod:`migdash.jobs.rollout_waves`): each member becomes an ordinary job
through :func:`~migdash.jobs.requests.request_target_action`, so locks,
logs, the audit trail and the worker's gate are those of every job.

Approval: on a protected environment the whole rollout waits for approval
once.  The approver reads every distinct plan (members grouped by what
would run, target aside) and approves the rollout's fingerprint (every
member's plan hash).  When a member's job is requested later, the
rollout's approvals are copied onto that job as ordinary
:class:`~migdash.store.models.Approval` rows for the job's plan hash, and
only when that hash is the one approved with the rollout; a member whose
plan changed meanwhile waits for an approval of its own on the approvals
page.  The worker's gate (:mod:`migdash.jobs.gate`) then checks the job like
any other.

Approval and control (pause, resume, cancel) are in
:mod:`migdash.jobs.rollout_control`; every state change is a compare-and-set
update of the rollout row, so it interleaves safely with the worker.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from migdash.engine.catalog import project_signature
from migdash.errors import Conflict, InvalidInput, MigdashError, NotFound
from migdash.jobs.context import JobServices
from migdash.jobs.plans import ActionPlan, make_plan
from migdash.jobs.records import pending_job
from migdash.jobs.requests import check_destination
from migdash.permissions import Permission, require
from migdash.status import probe_request
from migdash.store import audit
from migdash.store.models import Project, Role, Target
from migdash.store.queries import find_targets
from migdash.store.rollout_models import (
    ON_FAILURE,
    MemberState,
    Rollout,
    RolloutMember,
    RolloutState,
)
from migdash.store.session import rows_changed

ALREADY_THERE = -1
"""The wave of members whose target is at the destination when the rollout is created."""


def select_targets(
    session: Session, project: Project, environments: Sequence[str], tags: Sequence[str]
) -> list[Target]:
    """The project's targets in any of *environments* carrying every tag of *tags*."""
    wanted = set(tags)
    found = [
        t
        for env in environments
        for t in find_targets(session, project=project.name, environment=env)
    ]
    return [t for t in found if wanted <= set(t.tags)]


def plan_shape(plan: ActionPlan) -> str:
    """What a plan runs, the target aside: members with one shape share one plan to review."""
    material = json.dumps(
        [
            plan.kind,
            plan.destination,
            sorted(plan.current),
            [s.label for s in plan.steps],
            [s.digest for s in plan.steps],
            plan.env_digest,
        ]
    )
    return hashlib.sha256(material.encode()).hexdigest()


def rollout_fingerprint(hashes: dict[str, str | None]) -> str:
    """SHA-256 of target -> plan hash: what an approver of the rollout approves."""
    return hashlib.sha256(json.dumps(sorted(hashes.items())).encode()).hexdigest()


PlanCache = dict[tuple[object, ...], ActionPlan]
"""Plans by (project files' signature, destination, starting revisions, dialect)."""


def plan_fleet(
    services: JobServices,
    targets: Sequence[Target],
    destination: str,
    cache: PlanCache | None = None,
) -> tuple[dict[int, ActionPlan], list[str]]:
    """Plan an upgrade of every target; one child process per distinct starting point.

    Alembic's steps depend on the script directory and the revisions a
    target is at, its offline SQL on the dialect: targets sharing both share
    a plan, made once and re-keyed to each target (its hash names the
    target).  Each target is still probed.  A *cache* kept by the caller
    (the worker) carries plans over between calls; its key holds the
    signature of the project's files, so an edited file means a new plan.
    Whatever was planned, the worker's gate checks it against the target
    and the files right before the job runs.
    """
    plans: dict[int, ActionPlan] = {}
    problems: list[str] = []
    made: PlanCache = cache if cache is not None else {}
    signatures: dict[str, object] = {}
    if len(made) > 1000:
        made.clear()
    for target in targets:
        try:
            probe = services.probes.probe(probe_request(target))
            location = target.project.script_location
            if location not in signatures:  # once per call: a big project has many files
                signatures[location] = project_signature(location, None)
            key = (
                location,
                signatures[location],
                destination,
                tuple(sorted(probe.current)),
                target.url.split(":", 1)[0],
            )
            if probe.error is None and key in made:
                plans[target.id] = replace(
                    made[key], target_id=target.id, target=target.name, probe=probe, status=None
                )
                continue
            plans[target.id] = made[key] = make_plan(services, target, "upgrade", destination)
        except MigdashError as exc:
            problems.append(f"{target.name}: {exc.message}")
    return plans, problems


def create_rollout(
    session: Session,
    services: JobServices,
    project: Project,
    destination: str,
    *,
    environments: Sequence[str],
    tags: Sequence[str] = (),
    canary: int = 2,
    wave_size: int = 10,
    concurrency: int = 4,
    on_failure: str = "halt",
    actor: str,
    role: Role | str,
    now: datetime,
) -> Rollout:
    """Plan every selected target and record the rollout, running or awaiting approval.

    :raises NotFound: nothing matches the selection.
    :raises Conflict: a target cannot be planned (each is listed) or has a job pending.
    """
    require(role, Permission.REQUEST, actor=actor)
    _check_sizes(canary, wave_size, concurrency, on_failure)
    if not environments:
        raise InvalidInput("name at least one environment", field="env")
    check_destination(services.catalog.graph(project.script_location), "upgrade", destination)
    targets = select_targets(session, project, environments, tags)
    if not targets:
        raise NotFound(
            f"no target of {project.name} in {', '.join(environments)}"
            + (f" tagged {', '.join(tags)}" if tags else "")
        )
    problems = [
        f"{t.name}: job {job.id} is pending ({job.state})"
        for t in targets
        if (job := pending_job(session, t.id)) is not None
    ]
    plans, unplanned = plan_fleet(services, targets, destination) if not problems else ({}, [])
    problems += unplanned
    if problems:
        raise Conflict(
            f"no rollout was created; {len(problems)} of {len(targets)} target(s) cannot be "
            "planned: " + "; ".join(problems),
            hint="Fix those targets or leave them out (--tag), then try again.",
        )
    rollout = _add_rollout(
        session,
        project,
        destination,
        environments,
        tags,
        (canary, wave_size, concurrency),
        on_failure,
        targets,
        plans,
        actor=actor,
        now=now,
    )
    audit.record(
        session,
        actor,
        "rollout.request",
        project=project.name,
        environment=", ".join(environments)[:100],
        to_revision=destination,
        detail={
            "rollout": rollout.id,
            "targets": len(targets),
            "tags": list(tags),
            "canary": canary,
            "wave_size": wave_size,
            "concurrency": concurrency,
            "on_failure": on_failure,
            "plans": len(rollout.plans),
            "fingerprint": rollout.fingerprint,
        },
        now=now,
    )
    return rollout


def _check_sizes(canary: int, wave_size: int, concurrency: int, on_failure: str) -> None:
    if canary < 0:
        raise InvalidInput("the canary size cannot be negative", field="canary")
    if wave_size < 1:
        raise InvalidInput("a wave holds at least one target", field="wave")
    if concurrency < 1:
        raise InvalidInput("the concurrency limit is at least 1", field="concurrency")
    if on_failure not in ON_FAILURE:
        raise InvalidInput(f"on_failure is one of {', '.join(ON_FAILURE)}", field="on_failure")


def _add_rollout(
    session: Session,
    project: Project,
    destination: str,
    environments: Sequence[str],
    tags: Sequence[str],
    sizes: tuple[int, int, int],
    on_failure: str,
    targets: Sequence[Target],
    plans: dict[int, ActionPlan],
    *,
    actor: str,
    now: datetime,
) -> Rollout:
    canary, wave_size, concurrency = sizes
    protected = [t.environment for t in targets if t.environment.protected]
    required = max((env.required_approvals for env in protected), default=0)
    hashes = {t.name: plans[t.id].hash for t in targets}
    rollout = Rollout(
        project_id=project.id,
        project_name=project.name,
        destination=destination,
        environments=list(environments),
        tags=list(tags),
        canary_size=canary,
        wave_size=wave_size,
        concurrency=concurrency,
        on_failure=on_failure,
        state=RolloutState.AWAITING_APPROVAL if required else RolloutState.RUNNING,
        required_approvals=required,
        fingerprint=rollout_fingerprint(dict(hashes)),
        plans=distinct_plans(targets, plans),
        requested_by=actor,
        requested_at=now,
        started_at=None if required else now,
        updated_at=now,
    )
    session.add(rollout)
    position = 0
    for target in targets:
        plan = plans[target.id]
        wave = ALREADY_THERE
        if not plan.nothing_to_do:
            wave = 0 if position < canary else 1 + (position - canary) // wave_size
            position += 1
        rollout.members.append(
            RolloutMember(
                target_id=target.id,
                target_name=target.name,
                environment=target.environment.name,
                wave=wave,
                position=position,
                state=MemberState.SUCCEEDED if plan.nothing_to_do else MemberState.WAITING,
                plan_hash=plan.hash,
                plan_shape=plan_shape(plan),
                finished_at=now if plan.nothing_to_do else None,
            )
        )
    session.flush()
    return rollout


def distinct_plans(targets: Sequence[Target], plans: dict[int, ActionPlan]) -> list[object]:
    """The plans an approver reads: one per shape, with the targets that share it."""
    shapes: dict[str, dict[str, object]] = {}
    for target in targets:
        plan = plans[target.id]
        entry = shapes.setdefault(
            plan_shape(plan),
            {
                "shape": plan_shape(plan),
                "current": list(plan.current),
                "steps": [s.label for s in plan.steps],
                "sql": plan.sql,
                "sql_error": plan.sql_error,
                "hazards": dict(plan.hazards),
                "warnings": list(plan.warnings),
                "targets": [],
            },
        )
        targets_of = entry["targets"]
        assert isinstance(targets_of, list)
        targets_of.append(target.name)
    return list(shapes.values())


def get_rollout(session: Session, rollout_id: int) -> Rollout:
    rollout = session.get(Rollout, rollout_id)
    if rollout is None:
        raise NotFound(f"no rollout {rollout_id}")
    return rollout


def move_rollout(
    session: Session,
    rollout_id: int,
    from_states: Sequence[RolloutState],
    to_state: RolloutState,
    **values: object,
) -> bool:
    """Compare-and-set a rollout's state: only a rollout still in one of *from_states* moves."""
    statement = (
        sa.update(Rollout)
        .where(Rollout.id == rollout_id, Rollout.state.in_(from_states))
        .values(state=to_state, **values)
    )
    return rows_changed(session, statement) == 1


def list_rollouts(session: Session, limit: int = 100) -> Sequence[Rollout]:
    return session.scalars(sa.select(Rollout).order_by(Rollout.id.desc()).limit(limit)).all()
