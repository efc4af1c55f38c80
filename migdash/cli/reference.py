"""``migdash reference`` and ``migdash drift-history``: a target against what its history gives.

``reference TARGET`` shows the reference schema of the target's current
revisions (built on a scratch database, or read from the cache) and what it
cost; ``--rebuild`` builds it again.  ``drift-history TARGET`` compares the
live schema with it and records the check.  Both run project code (the
scratch upgrade, in a child process), so both need the operator role (--as).

``drift-history`` exits as diff(1) does: ``0`` no drift, ``1`` drift or
stamped but not applied, ``2`` trouble (the check failed or does not apply,
or the command was refused: an unknown name, a role that may not run it).
"""

from __future__ import annotations

from typing import Any

import click
from flask.cli import with_appcontext

from migdash.cli.base import ACTOR_OPTION, emit, json_option, main, resolve_actor, store
from migdash.errors import MigdashError
from migdash.jobs.drift import DriftOutcome, drift_json
from migdash.jobs.reference import check_history_drift, scratch_servers, target_reference
from migdash.permissions import Permission, require
from migdash.store import registry
from migdash.store.models import utcnow

EXIT_NO_DRIFT, EXIT_DRIFT, EXIT_TROUBLE = 0, 1, 2
DRIFTED = (DriftOutcome.DRIFT, DriftOutcome.STAMPED_NOT_APPLIED)


class HistoryTrouble(click.ClickException):
    """A refusal or failure of ``migdash drift-history``: status 2, never read as "drift"."""

    exit_code = EXIT_TROUBLE


@main.command("reference")
@click.argument("target")
@click.option("--rebuild", is_flag=True, help="Build it again even if it is cached.")
@ACTOR_OPTION
@json_option
@with_appcontext
def reference(target: str, rebuild: bool, actor: str | None, as_json: bool) -> None:
    """The schema TARGET's current revisions should give, built on a scratch database."""
    with store() as (session, services):
        who = resolve_actor(session, actor)
        require(who.role, Permission.REQUEST, actor=who.name)
        row = registry.get_target(session, target)
        built = target_reference(
            session,
            services.jobs,
            row,
            utcnow(),
            scratch=scratch_servers(services.settings),
            rebuild=rebuild,
        )
        session.commit()
        data = {"target": row.name, **built.to_json(schema=True)}
    emit(data, as_json, _reference_text(data))


def _reference_text(data: dict[str, Any]) -> str:
    source = (
        f"cached (built {data['built_at']} in {data['build_seconds']:.2f} s)"
        if data["cache_hit"]
        else f"built now in {data['build_seconds']:.2f} s"
    )
    lines = [
        f"{data['target']}: reference for {' + '.join(data['revisions']) or 'base'}",
        f"  built on {data['dialect']} {data['server_major']}, {data['tables']} tables, {source}",
        f"  fingerprint {data['fingerprint']}",
        f"  key {data['key']}",
    ]
    if data["note"]:
        lines.append(f"  note: {data['note']}")
    return "\n".join(lines)


@main.command("drift-history")
@click.argument("target")
@ACTOR_OPTION
@json_option
@with_appcontext
def drift_history(target: str, actor: str | None, as_json: bool) -> None:
    """Compare TARGET's live schema with the schema its revisions should give.

    Exits 0 when they match, 1 on drift or "stamped but not applied", 2 when
    the check failed or does not apply.  Needs the operator role (--as).
    """
    try:
        data = _check(target, actor)
    except MigdashError as exc:
        hint = f"\n  hint: {exc.hint}" if exc.hint else ""
        raise HistoryTrouble(f"{exc.message}{hint}") from exc
    emit(data, as_json, f"{data['target']}: {data['outcome']}: {data['summary']}")
    click.get_current_context().exit(exit_status(str(data["outcome"])))


def exit_status(outcome: str) -> int:
    """0 for none, 1 for drift or stamped but not applied, 2 for anything else."""
    if outcome == DriftOutcome.NONE:
        return EXIT_NO_DRIFT
    return EXIT_DRIFT if outcome in DRIFTED else EXIT_TROUBLE


def _check(target: str, actor: str | None) -> dict[str, Any]:
    with store() as (session, services):
        who = resolve_actor(session, actor)
        require(who.role, Permission.REQUEST, actor=who.name)
        row = registry.get_target(session, target)
        check = check_history_drift(
            session, services.jobs, row, utcnow(), scratch=scratch_servers(services.settings)
        )
        session.commit()
        return {"target": row.name, **drift_json(check)}
