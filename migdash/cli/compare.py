"""``migdash compare``: what each of two environments (or targets) lacks of the other."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from migdash.cli.base import emit, json_option, main, store
from migdash.jobs.compare import (
    Comparison,
    LackedRevision,
    Side,
    compare_environments,
    compare_targets,
)
from migdash.store import registry


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
