"""Live schemas from the command line: ``migdash snapshot TARGET`` and ``migdash diff A B``."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from migdash.cli.base import emit, json_option, main, store
from migdash.errors import MigdashError
from migdash.jobs.schemas import diff_targets, take_schema_snapshot
from migdash.status import refresh_status
from migdash.store import registry
from migdash.store.models import utcnow


@main.command("snapshot")
@click.argument("target")
@json_option
@with_appcontext
def snapshot(target: str, as_json: bool) -> None:
    """Reflect TARGET's live schema now and keep it (read-only on the target)."""
    with store() as (session, services):
        row = registry.get_target(session, target)
        (report,) = refresh_status(session, services.catalog, services.probes, [row])
        taken = take_schema_snapshot(
            session, row, revisions=report.status.current, now=utcnow(), job_id=None
        )
        session.commit()
        emit(
            {"target": target, "fingerprint": taken.fingerprint, "revisions": taken.revisions},
            as_json,
            f"{target}: schema {taken.fingerprint[:16]} at "
            + (", ".join(taken.revisions) or "<base>"),
        )


@main.command("diff")
@click.argument("left")
@click.argument("right")
@json_option
@with_appcontext
def diff(left: str, right: str, as_json: bool) -> None:
    """Compare two targets' live schemas; exit 0 when they match, 1 when they differ, 2 on errors.

    As diff(1) does: "match" means no real difference (names and column
    order alone are cosmetic and listed, but do not count).
    """
    try:
        with store() as (session, _):
            result = diff_targets(
                registry.get_target(session, left), registry.get_target(session, right)
            )
    except MigdashError as exc:
        click.echo(
            f"Error: {exc.message}" + (f"\n  hint: {exc.hint}" if exc.hint else ""), err=True
        )
        raise SystemExit(2) from None
    lines = [result.diff.summary()]
    lines += [
        f"  {'' if not item.cosmetic else '(cosmetic) '}{item.phrase()}"
        for item in result.diff.items
    ]
    emit(result.to_json(), as_json, "\n".join(lines))
    if not result.diff.same:
        raise SystemExit(1)
