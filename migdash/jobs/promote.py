"""Promotion: bring every target of one environment to the revisions of another, as jobs.

A promotion is one ``upgrade`` request per target that lacks something,
through :func:`~migdash.jobs.requests.request_target_action` (the normal
plan, hold, approval and audit path), all in the caller's transaction: every
job is requested or none is.

Each target gets one destination, because Alembic's ``upgrade`` takes one
(:func:`~migdash.engine.compare.promotion_destination`): the one source
revision it lacks, or ``heads`` when the source sits at every head.  A
target lacking revisions on several branches that are not the heads is
refused with the list rather than split into successive requests: a target
holds one pending job at a time, so a second request could only be made
after the first ran, and the promotion would no longer be all or nothing.

Promotion order: the revisions promoted to an environment should already be
in the environment before it.  When they are not, the page warns, and an
environment whose ``promotion_rule`` is ``refuse`` refuses the request
(:class:`~migdash.errors.PromotionOutOfOrder`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.orm import Session

from migdash.engine.compare import held_by_every, missing_revisions, promotion_destination
from migdash.engine.graph import RevisionGraph
from migdash.errors import (
    Conflict,
    InvalidInput,
    JobPending,
    MigdashError,
    NotFound,
    PromotionOutOfOrder,
)
from migdash.jobs.board import statuses
from migdash.jobs.compare import OrderCheck, check_order, make_side
from migdash.jobs.context import JobServices
from migdash.jobs.plans import ActionPlan, make_plan
from migdash.jobs.records import add_log, pending_job
from migdash.jobs.requests import request_target_action
from migdash.permissions import Permission, require
from migdash.status import TargetReport, placeable
from migdash.store import audit
from migdash.store.models import Environment, Job, Project, Role, Target
from migdash.store.queries import find_targets


@dataclass(frozen=True)
class TargetPromotion:
    """One target of the receiving environment: what it lacks and the upgrade that brings it."""

    target: str
    target_id: int
    state: str
    current: tuple[str, ...]
    destination: str | None = None
    """The one revision (or ``heads``) ``upgrade`` goes to; None when nothing is lacked."""
    lacks: tuple[str, ...] = ()
    """Revisions of the source it does not hold, in apply order (what the upgrade applies)."""
    keeps: tuple[str, ...] = ()
    """Revisions it holds that the source lacks: an upgrade leaves them where they are."""
    plan: ActionPlan | None = None
    problem: str | None = None


@dataclass(frozen=True)
class Promotion:
    """Every target of *destination* brought to *source*'s revisions: what would be requested."""

    project: str
    source: str
    destination: str
    protected: bool
    required_approvals: int
    source_revisions: tuple[str, ...]
    targets: tuple[TargetPromotion, ...]
    order: OrderCheck
    messages: Mapping[str, str]

    @property
    def needed(self) -> tuple[TargetPromotion, ...]:
        """The targets that get a job."""
        return tuple(t for t in self.targets if t.destination is not None)

    @property
    def problems(self) -> list[str]:
        return [f"{t.target}: {t.problem}" for t in self.targets if t.problem]

    @property
    def fingerprint(self) -> str:
        """What the person confirming read: each target's destination and plan fingerprint."""
        return promotion_fingerprint(
            {t.target: (t.destination, t.plan.hash if t.plan else None) for t in self.targets}
        )

    def as_json(self) -> dict[str, object]:
        """The plan as the API and ``migdash promote --plan --json`` give it."""
        return {
            "project": self.project,
            "source": self.source,
            "destination": self.destination,
            "protected": self.protected,
            "required_approvals": self.required_approvals,
            "source_revisions": list(self.source_revisions),
            "targets": [
                {
                    "target": t.target,
                    "state": t.state,
                    "current": list(t.current),
                    "destination": t.destination,
                    "lacks": list(t.lacks),
                    "keeps": list(t.keeps),
                    "steps": [s.label for s in t.plan.steps] if t.plan else [],
                    "plan_hash": t.plan.hash if t.plan else None,
                    "problem": t.problem,
                }
                for t in self.targets
            ],
            "order": {
                "rule": self.order.rule,
                "previous": self.order.previous,
                "out_of_order": list(self.order.out_of_order),
                "refused": self.order.refused,
            },
            "problems": self.problems,
            "fingerprint": self.fingerprint,
        }


def promotion_fingerprint(plans: Mapping[str, tuple[str | None, str | None]]) -> str:
    """SHA-256 of target -> (destination, plan hash): a changed plan anywhere changes it."""
    material = json.dumps(sorted((name, *plan) for name, plan in plans.items()))
    return hashlib.sha256(material.encode()).hexdigest()


def source_revisions(
    graph: RevisionGraph, environment: str, reports: Sequence[TargetReport]
) -> tuple[str, ...]:
    """The one set of revisions every target of the source environment holds.

    :raises Conflict: a target's revisions are unknown, or the targets disagree.
    """
    side = make_side(graph, "environment", environment, reports)
    if side.unknown:
        names = "; ".join(
            f"{r.target} ({r.status.error or r.status.state.value.replace('_', ' ')})"
            for r in side.unknown
        )
        raise Conflict(
            f"cannot promote from {environment}: where its targets stand is not known: {names}",
            hint="Probe those targets (their pages) until they answer, then try again.",
        )
    if not side.agree:
        where = "; ".join(
            f"{r.target} at {', '.join(r.status.current) or '<base>'}" for r in reports
        )
        raise Conflict(
            f"the targets of {environment} disagree, so there is no one set of revisions to "
            f"promote: {where}",
            hint="Bring them to the same revisions first, or compare and upgrade target by target.",
        )
    return side.revisions


def plan_promotion(
    session: Session,
    services: JobServices,
    project: Project,
    source: Environment,
    destination: Environment,
    *,
    plans: bool = True,
) -> Promotion:
    """Probe both environments and work out each receiving target's upgrade (and plan).

    :raises InvalidInput: *source* and *destination* are the same environment.
    :raises NotFound: either environment holds no target of *project*.
    :raises Conflict: the source has no one set of revisions (see :func:`source_revisions`).
    """
    if source.id == destination.id:
        raise InvalidInput("promote from one environment to another one", field="to")
    graph = services.catalog.graph(project.script_location)
    found = {}
    for env in (source, destination):
        found[env.id] = find_targets(session, project=project.name, environment=env.name)
        if not found[env.id]:
            raise NotFound(f"project {project.name} has no targets in environment {env.name}")
    revisions = source_revisions(
        graph, source.name, statuses(session, services, found[source.id], None)
    )
    receiving = found[destination.id]
    reports = statuses(session, services, receiving, None)
    entries = tuple(
        _plan_target(session, services, graph, target, report, revisions, plans)
        for target, report in zip(receiving, reports, strict=True)
    )
    placed = [e.current for e, r in zip(entries, reports, strict=True) if placeable(graph, r)]
    promoted = missing_revisions(graph, revisions, held_by_every(graph, placed))
    order = check_order(session, services, graph, project, destination, promoted, max_age=None)
    shown = {rev for e in entries for rev in (*e.lacks, *e.keeps, *e.current)} | set(revisions)
    return Promotion(
        project=project.name,
        source=source.name,
        destination=destination.name,
        protected=destination.protected,
        required_approvals=destination.required_approvals,
        source_revisions=revisions,
        targets=entries,
        order=order,
        messages={rev: graph.nodes[rev].message for rev in shown if rev in graph.nodes},
    )


def _plan_target(
    session: Session,
    services: JobServices,
    graph: RevisionGraph,
    target: Target,
    report: TargetReport,
    revisions: tuple[str, ...],
    plans: bool,
) -> TargetPromotion:
    entry = TargetPromotion(
        target.name, target.id, report.status.state.value, report.status.current
    )
    if not placeable(graph, report):
        reason = report.status.error or report.status.state.value.replace("_", " ")
        return replace(entry, problem=f"where it stands is not known here: {reason}")
    current = report.status.current
    entry = replace(
        entry,
        lacks=missing_revisions(graph, revisions, current),
        keeps=missing_revisions(graph, current, revisions),
    )
    try:
        destination = promotion_destination(graph, revisions, current)
    except MigdashError as exc:
        return replace(entry, problem=exc.message)
    entry = replace(entry, destination=destination)
    if destination is None or not plans:
        return entry
    job = pending_job(session, target.id)
    if job is not None:
        return replace(entry, problem=JobPending(job.id, target.name, job.state).message)
    try:
        return replace(entry, plan=make_plan(services, target, "upgrade", destination))
    except MigdashError as exc:
        return replace(entry, problem=exc.message)


def request_promotion(
    session: Session,
    services: JobServices,
    project: Project,
    source: Environment,
    destination: Environment,
    *,
    actor: str,
    role: Role | str,
    now: datetime,
    seen: str | None = None,
) -> list[Job]:
    """One upgrade job per receiving target that lacks something: all of them, or none.

    Returns the jobs (none when every target already holds the source's
    revisions).  The boundary commits once.

    :raises PromotionOutOfOrder: the destination's rule is ``refuse`` and the
        environment before it lacks a promoted revision.
    :raises Conflict: a target cannot be planned (each one is listed), or the
        plans differ from *seen* (the fingerprint the person confirmed).
    """
    require(role, Permission.REQUEST, actor=actor)
    promotion = plan_promotion(session, services, project, source, destination, plans=False)
    if promotion.order.refused:
        raise PromotionOutOfOrder(
            f"{destination.name} refuses promotions out of order: {promotion.order.previous} "
            f"does not hold {', '.join(promotion.order.out_of_order)} yet"
        )
    jobs, planned, problems = _request_each(
        session, services, promotion, actor=actor, role=role, now=now
    )
    if problems:
        raise Conflict(
            f"nothing was requested; {len(problems)} of {len(promotion.targets)} target(s) of "
            f"{destination.name} cannot be promoted: " + "; ".join(problems),
            hint="Fix those targets (or upgrade the others one by one), then try again.",
        )
    if seen and seen != promotion_fingerprint(planned):
        raise Conflict(
            "the promotion changed since you read it (a target moved or a file changed); "
            "nothing was requested",
            hint="Read the new plans and confirm again.",
        )
    _record(session, promotion, jobs, actor, now)
    return jobs


def _request_each(
    session: Session,
    services: JobServices,
    promotion: Promotion,
    *,
    actor: str,
    role: Role | str,
    now: datetime,
) -> tuple[list[Job], dict[str, tuple[str | None, str | None]], list[str]]:
    """Request every needed job (none if a target already has a problem).

    Returns the jobs, each target's (destination, plan fingerprint) as
    requested, and the problems; the caller refuses the whole promotion if
    there is any.
    """
    problems = promotion.problems
    jobs: list[Job] = []
    planned: dict[str, tuple[str | None, str | None]] = {
        t.target: (None, None) for t in promotion.targets
    }
    for entry in promotion.needed if not problems else ():
        target = session.get(Target, entry.target_id)
        assert target is not None  # loaded by plan_promotion in this session
        assert entry.destination is not None
        try:
            job = request_target_action(
                session,
                services,
                target,
                "upgrade",
                entry.destination,
                actor=actor,
                role=role,
                now=now,
            )
        except MigdashError as exc:
            problems.append(f"{entry.target}: {exc.message}")
            continue
        planned[entry.target] = (entry.destination, job.plan_hash if job else None)
        if job is not None:
            jobs.append(job)
    return jobs, planned, problems


def _record(
    session: Session, promotion: Promotion, jobs: Sequence[Job], actor: str, now: datetime
) -> None:
    """A log line on each job saying it is part of a promotion (and any order warning); audit."""
    order = promotion.order
    for job in jobs:
        add_log(
            session,
            job.id,
            f"part of a promotion of {promotion.project} from {promotion.source} to "
            f"{promotion.destination} ({len(jobs)} job(s))",
            now,
        )
        if order.out_of_order:
            add_log(
                session,
                job.id,
                f"warning: {order.previous} does not hold {', '.join(order.out_of_order)} yet "
                f"(promotion rule of {order.environment}: {order.rule})",
                now,
            )
    audit.record(
        session,
        actor,
        "promotion.request",
        project=promotion.project,
        environment=promotion.destination,
        to_revision=", ".join(promotion.source_revisions)[:200] or None,
        detail={
            "source": promotion.source,
            "revisions": list(promotion.source_revisions),
            "jobs": [job.id for job in jobs],
            "out_of_order": list(order.out_of_order),
            "previous": order.previous,
        },
        now=now,
    )
