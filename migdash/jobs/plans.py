"""What a planned action will do, before anyone approves it: the steps, the files, the SQL.

:func:`make_plan` probes the target (in this process: a read of the version
table, no project code) and asks a child process, which loads the project
and runs ``env.py`` offline, for the steps Alembic itself would run and
their offline SQL.  The steps come from
:func:`migdash.engine.planning.plan_steps`, the same function the job's
child process checks again inside the migration transaction, so the plan a
person reads and approves is what runs.

A plan is fingerprinted (:func:`plan_hash`): target, action, destination,
current revisions, steps, and the SHA-256 of every revision file the steps
run and of ``env.py``.  Approvals are given for a fingerprint; the worker
recomputes it right before running.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from migdash.engine.actions import ActionResult, ActionSpec, offline_hazards
from migdash.engine.child import project_folder
from migdash.engine.launch import call_child
from migdash.engine.planning import PlannedStep, file_digest
from migdash.engine.probe import TargetProbe
from migdash.engine.state import TargetState, TargetStatus, assess_target
from migdash.errors import PlanRefused, TargetUnreachable
from migdash.jobs.context import JobServices
from migdash.status import probe_request
from migdash.store.models import Target

PREVIEW_TIMEOUT = 60.0


@dataclass(frozen=True)
class ActionPlan:
    """Everything a person reviews before an upgrade, downgrade or stamp runs."""

    target_id: int
    target: str
    kind: str
    destination: str
    purge: bool
    current: tuple[str, ...]
    """The version table's rows as probed just now: where the steps start."""
    steps: tuple[PlannedStep, ...]
    env_digest: str
    env_path: str | None = None
    sql: str | None = None
    sql_error: str | None = None
    """Why there is no SQL to show (several heads, env.py failing offline, ...)."""
    hazards: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    status: TargetStatus | None = None
    probe: TargetProbe | None = None

    @property
    def nothing_to_do(self) -> bool:
        """No step would run (and a stamp would leave the version table as it is)."""
        return not self.steps

    @property
    def hash(self) -> str:
        return plan_hash(
            self.target_id,
            self.kind,
            self.destination,
            self.purge,
            self.current,
            self.steps,
            self.env_digest,
        )

    def to_json(self) -> dict[str, Any]:
        """What the job row keeps, so the worker can check the plan it is about to run."""
        return {
            "destination": self.destination,
            "purge": self.purge,
            "current": list(self.current),
            "steps": [s.to_json() for s in self.steps],
            "env_digest": self.env_digest,
            "env_path": self.env_path,
        }


def plan_hash(
    target_id: int,
    kind: str,
    destination: str,
    purge: bool,
    current: Sequence[str],
    steps: Sequence[PlannedStep],
    env_digest: str,
) -> str:
    """SHA-256 of what a plan commits to; any change means a new plan and a new approval."""
    material = json.dumps(
        {
            "target": target_id,
            "kind": kind,
            "destination": destination,
            "purge": purge,
            "current": sorted(current),
            "steps": [[s.label, s.revision, s.digest] for s in steps],
            "env": env_digest,
        },
        sort_keys=True,
    )
    return hashlib.sha256(material.encode()).hexdigest()


def hash_now(target_id: int, kind: str, stored: dict[str, Any], current: Sequence[str]) -> str:
    """The fingerprint of a stored plan as the files and the target are *now*.

    The worker's gate: unchanged only if the target still sits where the
    plan starts and no planned revision file (nor ``env.py``) was edited.
    """
    steps = [
        PlannedStep(
            s["label"],
            s.get("revision"),
            s.get("path"),
            file_digest(s["path"]) if s.get("path") else None,
        )
        for s in stored.get("steps", [])
    ]
    env_path = stored.get("env_path")
    return plan_hash(
        target_id,
        kind,
        str(stored.get("destination")),
        bool(stored.get("purge")),
        current,
        steps,
        file_digest(env_path) if env_path else str(stored.get("env_digest", "")),
    )


def make_plan(
    services: JobServices, target: Target, kind: str, destination: str, *, purge: bool = False
) -> ActionPlan:
    """Probe *target* and plan *kind* to *destination* from where it really is.

    :raises TargetUnreachable: the target cannot be read, so nothing can be planned.
    :raises PlanRefused: Alembic refuses this walk (its reason and the way out).
    """
    from migdash.jobs.requests import check_destination

    graph = services.catalog.graph(target.project.script_location)
    destination = check_destination(graph, kind, destination)
    probe = services.probes.probe(probe_request(target))
    status = assess_target(graph, probe, track=target.project.track)
    if status.state is TargetState.UNREACHABLE:
        raise TargetUnreachable(f"cannot plan: the target is unreachable: {status.error}")
    current = tuple(probe.current)
    result = run_in_child(_plan_spec(target, kind, destination, current, purge))
    if not result.ok or result.plan is None:
        if result.refused:
            raise PlanRefused(result.error or "Alembic refused the plan")
        raise PlanRefused(f"the plan could not be made: {result.error}")
    steps = tuple(PlannedStep.from_json(s) for s in result.plan["plan"])
    return ActionPlan(
        target_id=target.id,
        target=target.name,
        kind=kind,
        destination=destination,
        purge=purge,
        current=current,
        steps=steps,
        env_digest=result.plan["env_digest"],
        env_path=result.plan.get("env_path"),
        sql=result.plan["sql"],
        sql_error=result.plan["sql_error"],
        hazards=offline_hazards({s.revision: s.path for s in steps if s.revision and s.path}),
        warnings=_warnings(kind, steps, len(graph.heads)),
        status=status,
        probe=probe,
    )


def _plan_spec(
    target: Target, kind: str, destination: str, current: tuple[str, ...], purge: bool
) -> ActionSpec:
    return ActionSpec(
        kind="plan",
        script_location=target.project.script_location,
        url=target.url,
        url_mode=target.project.url_mode,
        url_env_var=target.project.url_env_var,
        revision=destination,
        direction=kind,
        current=current,
        purge=purge,
    )


def _warnings(kind: str, steps: Sequence[PlannedStep], heads: int) -> tuple[str, ...]:
    warnings = []
    if kind == "stamp":
        warnings.append(
            "stamp only rewrites the version table: no DDL runs, the schema is not "
            "changed. Use it to record a state that is already true."
        )
    if kind == "upgrade" and heads > 1:
        warnings.append(
            f"the project has {heads} heads; 'heads' applies every branch, or create a "
            "merge revision first"
        )
    if kind == "downgrade" and steps:
        warnings.append("a downgrade runs each revision's downgrade(); data dropped by it is gone")
    return tuple(warnings)


def run_in_child(spec: ActionSpec, timeout: float = PREVIEW_TIMEOUT) -> ActionResult:
    """Run *spec* in ``migdash.jobs.runner`` and wait; output lines are discarded."""
    data, problem = call_child(
        "migdash.jobs.runner",
        spec.to_json(),
        cwd=project_folder(spec.script_location),
        timeout=timeout,
    )
    if data is None:
        return ActionResult(ok=False, error=problem)
    return ActionResult.from_json(data)
