"""Upgrade, downgrade, stamp and plan previews: Alembic's commands, with the plan enforced.

:func:`run_planned` is ``alembic.command.upgrade``/``downgrade``/``stamp``
with one difference: the function Alembic calls inside ``env.py``'s
migration transaction, with the heads it has just read from the version
table, is :func:`~migdash.engine.planning.plan_steps` followed by
:func:`~migdash.engine.planning.verify_steps` against the approved plan.
Alembic iterates the list that was checked, so what runs is what was
approved, or nothing runs.

Both functions execute the project's ``env.py``: they run in a child
process only (``migdash.jobs.runner``).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic import util as alembic_util
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory

from migdash.engine.planning import PlannedStep, env_digest, plan_steps, verify_steps
from migdash.errors import PlanRefused


def run_planned(
    config: Config,
    kind: str,
    destination: str,
    expected: Sequence[PlannedStep] | None,
    *,
    purge: bool = False,
) -> list[dict[str, str]]:
    """Run *kind* to *destination*; with *expected*, refuse unless Alembic's steps equal it.

    Returns, for each revision an upgrade applied, its id, path and the file's
    text as it was run (what "edited after apply" compares against later).

    :raises PlanChanged: the steps or a revision file differ from *expected*
        (raised before the first step, so the migration transaction rolls back).
    """
    script = ScriptDirectory.from_config(config)
    applied: list[dict[str, str]] = []

    def steps_to_run(heads: Any, _context: Any) -> list[Any]:
        actual = _alembic_steps(script, kind, destination, heads, purge)
        if expected is not None:
            verify_steps([_as_planned(s) for s in actual], expected)
        applied[:] = [_applied(step) for step in actual if kind == "upgrade"]
        return actual

    destination_rev: Any = alembic_util.to_tuple(destination) if kind == "stamp" else destination
    with EnvironmentContext(
        config,
        script,
        fn=steps_to_run,
        as_sql=False,
        destination_rev=destination_rev,
        purge=purge if kind == "stamp" else False,
    ):
        script.run_env()
    return applied


def _applied(step: Any) -> dict[str, str]:
    path = str(step.revision.path)
    return {
        "revision": step.revision.revision,
        "path": path,
        "content": Path(path).read_text(errors="replace"),
    }


def _alembic_steps(
    script: ScriptDirectory, kind: str, destination: str, heads: Any, purge: bool
) -> list[Any]:
    """The raw step objects Alembic iterates (what :func:`plan_steps` describes)."""
    if kind == "upgrade":
        return list(script._upgrade_revs(destination, heads))  # noqa: SLF001
    if kind == "downgrade":
        return list(script._downgrade_revs(destination, heads))  # noqa: SLF001
    return list(script._stamp_revs(alembic_util.to_tuple(destination), () if purge else heads))  # noqa: SLF001


def _as_planned(step: Any) -> PlannedStep:
    from migdash.engine.planning import _planned

    return _planned(step)


def preview_plan(
    config: Config,
    kind: str,
    destination: str,
    current: Sequence[str],
    *,
    purge: bool = False,
) -> dict[str, Any]:
    """The plan from *current* and, where Alembic's offline mode can show it, its SQL.

    Returns plain data for the parent: ``steps``, ``env_digest``, ``sql``,
    ``sql_error``.  A walk Alembic refuses raises :class:`PlanRefused`.
    """
    script = ScriptDirectory.from_config(config)
    steps = plan_steps(script, kind, destination, current, purge=purge)
    result: dict[str, Any] = {
        "plan": [s.to_json() for s in steps],
        "env_digest": env_digest(script),
        "env_path": str(Path(script.dir) / "env.py"),
        "sql": None,
        "sql_error": None,
    }
    if kind == "stamp" or not steps:
        return result
    if len(current) > 1:
        result["sql_error"] = (
            "the target is at several heads; Alembic's offline mode starts from one "
            "revision, so no SQL can be shown for this plan"
        )
        return result
    try:
        result["sql"] = _offline_sql(config, kind, destination, current, steps, script)
    except Exception as exc:  # noqa: BLE001 - env.py is arbitrary code; say why, keep the plan
        result["sql_error"] = f"offline SQL could not be rendered: {type(exc).__name__}: {exc}"
    return result


def _offline_sql(
    config: Config,
    kind: str,
    destination: str,
    current: Sequence[str],
    steps: Sequence[PlannedStep],
    script: ScriptDirectory,
) -> str:
    """``alembic upgrade --sql start:end`` for the planned span (a concrete end revision).

    Offline mode walks a ``start:end`` range; relative destinations are
    turned into the revision the plan ends on, so the SQL covers the same
    steps the plan lists.
    """
    buffer = io.StringIO()
    config.output_buffer = buffer
    start = current[0] if current else None
    if kind == "upgrade":
        end = _upgrade_end(script, destination, steps)
        command.upgrade(config, f"{start}:{end}" if start else end, sql=True)
    else:
        if start is None:
            raise PlanRefused("an offline downgrade needs the revision the target is at")
        end = _downgrade_end(script, steps)
        command.downgrade(config, f"{start}:{end}", sql=True)
    return buffer.getvalue()


def _upgrade_end(script: ScriptDirectory, destination: str, steps: Sequence[PlannedStep]) -> str:
    if destination in ("heads", "head") or "@head" in destination:
        return destination
    last = steps[-1].revision
    return last if last else destination


def _downgrade_end(script: ScriptDirectory, steps: Sequence[PlannedStep]) -> str:
    """The revision the target ends at: the parent of the last revision removed."""
    last = steps[-1].revision
    if last is None:
        return "base"
    revision = script.get_revision(last)
    parents = alembic_util.to_tuple(revision.down_revision if revision else None, default=())
    return str(parents[0]) if parents else "base"
