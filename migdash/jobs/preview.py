"""What a planned action will do, before anyone approves it: the revisions and the SQL.

The SQL comes from Alembic's offline (``--sql``) mode, run in a child process
like every action (it executes ``env.py``), and starts from the target's
real current revision, probed just now: ``alembic upgrade --sql`` alone
would start from base.  Revisions that read through a live connection, or
that fail offline, are flagged instead of silently producing a misleading
script.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session

from migdash.engine.actions import ActionResult, ActionSpec, offline_hazards
from migdash.engine.catalog import GraphCatalog
from migdash.engine.graph import RevisionGraph
from migdash.engine.probe import ProbePool
from migdash.status import refresh_status
from migdash.store.models import Target

PREVIEW_TIMEOUT = 60.0
_RELATIVE = re.compile(r"^(?:[\w.-]+@)?([+-])(\d+)$")


@dataclass(frozen=True)
class Plan:
    """The revisions an action moves through, in the order they will run."""

    kind: str
    destination: str
    current: tuple[str, ...]
    steps: tuple[str, ...]
    """Revisions applied (upgrade) or removed (downgrade), in run order; empty for stamp."""
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class SqlPreview:
    plan: Plan
    sql: str | None
    start: str | None
    error: str | None = None
    hazards: dict[str, str] = field(default_factory=dict)
    reachable: bool = True
    """False when the probe could not read the target: there is nothing to review yet."""


def plan_action(
    graph: RevisionGraph, kind: str, destination: str, current: tuple[str, ...]
) -> Plan:
    """The revisions *kind* to *destination* would run from *current*, per the cached graph."""
    warnings: list[str] = []
    relative = _RELATIVE.match(destination)
    if kind == "stamp":
        warnings.append(
            "stamp only rewrites the version table: no DDL runs, the schema is not "
            "changed. Use it to record a state that is already true."
        )
        return Plan(kind, destination, current, (), tuple(warnings))
    if len(graph.heads) > 1 and kind == "upgrade":
        warnings.append(
            f"the project has {len(graph.heads)} heads; 'heads' applies every "
            "branch, or create a merge revision first"
        )
    if kind == "upgrade":
        if relative:
            steps = graph.upgrade_path(current, "heads")[: int(relative.group(2))]
        else:
            steps = graph.upgrade_path(current, destination)
    else:
        removed = graph.ancestor_mask(current) & ~graph.ancestor_mask(
            () if destination == "base" or relative else graph.resolve(destination)
        )
        ordered = graph.alembic_order(graph.revisions_in(removed), current)
        steps = ordered[: int(relative.group(2))] if relative else ordered
        if steps:
            warnings.append(
                "a downgrade runs each revision's downgrade(); data dropped by it is gone"
            )
    return Plan(kind, destination, current, tuple(steps), tuple(warnings))


def preview_sql(
    session: Session,
    catalog: GraphCatalog,
    probes: ProbePool,
    target: Target,
    kind: str,
    destination: str,
) -> SqlPreview:
    """Probe *target*, plan the action on the graph, and render its offline SQL."""
    (report,) = refresh_status(session, catalog, probes, [target])
    session.commit()
    graph = catalog.graph(target.project.script_location)
    current = report.status.current
    plan = plan_action(graph, kind, destination, current)
    if report.status.error and report.status.state.value == "unreachable":
        return SqlPreview(
            plan,
            None,
            None,
            f"the target cannot be reached: {report.status.error}",
            reachable=False,
        )
    if kind == "stamp":
        return SqlPreview(plan, None, None, None)
    if len(current) > 1:
        return SqlPreview(
            plan,
            None,
            None,
            "the target is at several heads; Alembic's offline "
            "mode starts from one revision, so no SQL can be shown for this plan",
        )
    start = current[0] if current else None
    destination_for_sql = (
        plan.steps[-1]
        if _RELATIVE.match(destination) and plan.steps and kind == "upgrade"
        else destination
    )
    if kind == "downgrade" and _RELATIVE.match(destination):
        parents = graph.nodes[plan.steps[-1]].down_revisions if plan.steps else ()
        destination_for_sql = parents[0] if parents else "base"
    spec = ActionSpec(
        kind="sql",
        script_location=target.project.script_location,
        url=target.url,
        url_mode=target.project.url_mode,
        url_env_var=target.project.url_env_var,
        revision=destination_for_sql,
        start=start,
        direction=kind,
    )
    result = run_in_child(spec)
    hazards = offline_hazards({rev: graph.nodes[rev].path for rev in plan.steps})
    if not result.ok:
        return SqlPreview(
            plan, None, start, f"offline SQL could not be rendered: {result.error}", hazards
        )
    return SqlPreview(plan, result.sql, start, None, hazards)


def run_in_child(spec: ActionSpec, timeout: float = PREVIEW_TIMEOUT) -> ActionResult:
    """Run *spec* in ``migdash.jobs.runner`` and wait; output lines are discarded."""
    with tempfile.TemporaryDirectory(prefix="migdash-preview-") as scratch:
        result_file = Path(scratch) / "result.json"
        location = Path(spec.script_location)
        try:
            completed = subprocess.run(  # noqa: S603 - our own module, fixed argv
                [sys.executable, "-m", "migdash.jobs.runner", str(result_file), str(os.getpid())],
                input=json.dumps(spec.to_json()),
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=location.parent if location.parent.is_dir() else None,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return ActionResult(ok=False, error=f"no result within {timeout:.0f} s")
        if not result_file.exists():
            tail = completed.stdout.strip().splitlines()[-3:]
            return ActionResult(
                ok=False, error=f"exited with code {completed.returncode}: " + " | ".join(tail)
            )
        return ActionResult.from_json(json.loads(result_file.read_text()))
