"""``migdash compare``: what each of two environments (or targets) lacks of the other."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from migdash.cli.actions import report_jobs
from migdash.cli.base import Actor, emit, json_option, main, requires, store
from migdash.jobs.compare import (
    Comparison,
    LackedRevision,
    Side,
    compare_environments,
    compare_targets,
)
from migdash.jobs.promote import Promotion, plan_promotion, request_promotion
from migdash.permissions import Permission
from migdash.store import registry
from migdash.store.models import utcnow


@main.command("compare")
@click.argument("project")
@click.argument("side_a", metavar="A")
@click.argument("side_b", metavar="B")
@click.option(
    "--targets", "by_target", is_flag=True, help="A and B are target names, not environments."
)
@json_option
@with_appcontext
def compare(project: str, side_a: str, side_b: str, by_target: bool, as_json: bool) -> None:
    """The revisions A lacks of B and B lacks of A, in the order ``alembic upgrade`` applies them.

    A and B are environments of PROJECT (every target of each is probed now),
    or two of its targets with --targets.
    """
    with store() as (session, services):
        found = registry.get_project(session, project)
        if by_target:
            a, b = registry.get_target(session, side_a), registry.get_target(session, side_b)
            result = compare_targets(session, services.jobs, found, a, b, max_age=None)
        else:
            envs = (
                registry.get_environment(session, side_a),
                registry.get_environment(session, side_b),
            )
            result = compare_environments(session, services.jobs, found, *envs, max_age=None)
        session.commit()
        emit(result.as_json(), as_json, describe(result))


def describe(result: Comparison) -> str:
    """The comparison as a person reads it in a terminal."""
    lines = [f"{result.project}: {_side(result.a)} vs {_side(result.b)}"]
    if result.problem:
        lines.append(f"cannot compare: {result.problem}")
    else:
        lines += _lacks(result.a.name, result.b.name, result.a_lacks)
        lines += _lacks(result.b.name, result.a.name, result.b_lacks)
    lines += [f"note: {note}" for note in result.notes]
    return "\n".join(lines)


def _side(side: Side) -> str:
    revisions = ", ".join(side.revisions) or "<base>"
    agree = "" if side.agree else "; its targets disagree"
    return f"{side.kind} {side.name} at {revisions}{agree}"


def _lacks(name: str, other: str, lacked: tuple[LackedRevision, ...]) -> list[str]:
    if not lacked:
        return [f"{name} lacks nothing of {other}"]
    lines = [f"{name} lacks {len(lacked)} revision(s) of {other}, in apply order:"]
    for rev in lacked:
        lines.append(f"  {rev.revision}  {rev.message}  (lacked by {', '.join(rev.lacked_by)})")
    return lines


@main.command("promote")
@click.argument("project")
@click.argument("source", metavar="FROM")
@click.argument("destination", metavar="TO")
@click.option(
    "--plan", "show_plan", is_flag=True, help="Show what would be requested; queue nothing."
)
@click.option(
    "--fingerprint",
    default=None,
    help="Refuse unless the plans are still the ones --plan showed (its fingerprint).",
)
@click.option("--wait", is_flag=True, help="Wait for the jobs to finish; exit 1 if one fails.")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds --wait waits.")
@json_option
@requires(Permission.REQUEST)
def promote(
    project: str,
    source: str,
    destination: str,
    show_plan: bool,
    fingerprint: str | None,
    wait: bool,
    timeout: float,
    as_json: bool,
    actor: Actor,
) -> None:
    """Bring every target of TO to FROM's revisions: one upgrade job per target, all or none.

    The jobs take the normal path (plan, approval on a protected environment,
    audit).  --plan shows each target's upgrade and the fingerprint to pass
    back with --fingerprint, as the web's confirm page does.
    """
    with store() as (session, services):
        found = registry.get_project(session, project)
        envs = (
            registry.get_environment(session, source),
            registry.get_environment(session, destination),
        )
        if show_plan:
            plan = plan_promotion(session, services.jobs, found, *envs)
            session.commit()
            emit(plan.as_json(), as_json, describe_promotion(plan))
            return
        jobs = request_promotion(
            session,
            services.jobs,
            found,
            *envs,
            actor=actor.name,
            role=actor.role,
            now=utcnow(),
            seen=fingerprint,
        )
        session.commit()
        job_ids = [job.id for job in jobs]
    if not job_ids:
        emit(
            {"jobs": [], "nothing_to_do": True},
            as_json,
            f"nothing to do: every target of {destination} holds {source}'s revisions",
        )
        return
    report_jobs(job_ids, wait, timeout, as_json, many=True)


def describe_promotion(plan: Promotion) -> str:
    """The promotion as a person reads it before confirming."""
    held = " (protected: each job awaits approval)" if plan.protected else ""
    lines = [f"{plan.project}: promote {plan.source} to {plan.destination}{held}"]
    for t in plan.targets:
        if t.problem:
            lines.append(f"  {t.target}: cannot be planned: {t.problem}")
        elif t.destination is None:
            lines.append(f"  {t.target}: nothing to do")
        else:
            lines.append(f"  {t.target}: upgrade to {t.destination}, applying:")
            lines += [f"    {rev}  {plan.messages.get(rev, '')}" for rev in t.lacks]
    if plan.order.out_of_order:
        verb = "refused" if plan.order.refused else "warning"
        lines.append(
            f"{verb}: {plan.order.previous} does not hold {', '.join(plan.order.out_of_order)} yet"
        )
    lines.append(f"fingerprint: {plan.fingerprint}")
    return "\n".join(lines)
