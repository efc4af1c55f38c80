"""``migdash drift``: targets against their project's models, with diff(1)'s exit status.

Exit status (unlike the other commands, so scripts can branch as on diff(1)):
``0`` no drift, ``1`` drift, ``2`` trouble: the check failed, could not apply
(no ``target_metadata``, a target not at its heads), or the command itself was
refused (an unknown name, a role that may not run it, a wrong command line).
With ``--project``, the worst target decides: trouble, then drift.
"""

from __future__ import annotations

from typing import Any

import click
from flask.cli import with_appcontext

from migdash.cli.base import ACTOR_OPTION, emit, json_option, main, resolve_actor, store
from migdash.errors import MigdashError
from migdash.jobs.drift import DriftOutcome, check_model_drift, drift_json
from migdash.permissions import Permission, require
from migdash.store import registry
from migdash.store.models import utcnow
from migdash.store.queries import find_targets

EXIT_NO_DRIFT, EXIT_DRIFT, EXIT_TROUBLE = 0, 1, 2


class DriftTrouble(click.ClickException):
    """A refusal or failure of ``migdash drift``: status 2, so it never reads as "drift"."""

    exit_code = EXIT_TROUBLE


@main.command("drift")
@click.argument("target", required=False)
@click.option("--project", default=None, help="Check every target of this project instead.")
@ACTOR_OPTION
@json_option
@with_appcontext
def drift(target: str | None, project: str | None, actor: str | None, as_json: bool) -> None:
    """Compare targets with their project's models, as `alembic check` does.

    Exits 0 when a target matches its models, 1 when it drifted, 2 when the
    check failed or does not apply.  Needs the operator role (--as).
    """
    if (target is None) == (project is None):
        raise DriftTrouble("name a TARGET or give --project PROJECT (one of the two)")
    try:
        results = _check(target, project, actor)
    except MigdashError as exc:
        hint = f"\n  hint: {exc.hint}" if exc.hint else ""
        raise DriftTrouble(f"{exc.message}{hint}") from exc
    data: Any = results[0] if target is not None else results
    emit(data, as_json, "\n".join(_lines(r) for r in results) or "no targets")
    click.get_current_context().exit(exit_status([r["outcome"] for r in results]))


def exit_status(outcomes: list[str]) -> int:
    """2 if any check failed or did not apply, else 1 if any target drifted, else 0."""
    if any(o not in (DriftOutcome.NONE, DriftOutcome.DRIFT) for o in outcomes):
        return EXIT_TROUBLE
    return EXIT_DRIFT if DriftOutcome.DRIFT in outcomes else EXIT_NO_DRIFT


def _check(target: str | None, project: str | None, actor: str | None) -> list[dict[str, Any]]:
    """Run and record each check; each is committed as it ends, so a long run keeps its results."""
    with store() as (session, services):
        who = resolve_actor(session, actor)
        require(who.role, Permission.REQUEST, actor=who.name)
        if target is not None:
            rows = [registry.get_target(session, target)]
        else:
            registry.get_project(session, str(project))  # an unknown project is refused
            rows = list(find_targets(session, project=project))
        results = []
        for row in rows:
            check = check_model_drift(session, services.jobs, row, utcnow())
            results.append({"target": row.name, **drift_json(check)})
            session.commit()
        return results


def _lines(result: dict[str, Any]) -> str:
    text = f"{result['target']}: {result['outcome']}: {result['summary']}"
    if result["outcome"] == DriftOutcome.DRIFT and result.get("operations"):
        body = "\n".join(f"    {line}" for line in result["operations"].splitlines())
        text += f"\n{body}"
    return text
