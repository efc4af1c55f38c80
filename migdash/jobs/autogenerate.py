"""Preview ``revision --autogenerate``: the operations Alembic detects, nothing written."""

from __future__ import annotations

from typing import Any

from migdash.engine.actions import ActionResult, ActionSpec
from migdash.errors import InvalidInput
from migdash.jobs.plans import run_in_child
from migdash.store.models import Project, Target


def preview_autogenerate(
    project: Project, against: Target | None, arguments: dict[str, Any]
) -> ActionResult:
    """Run autogenerate against *against* in a child process with ``preview`` set."""
    if against is None:
        raise InvalidInput("autogenerate needs a target to compare against", field="against")
    spec = ActionSpec(
        kind="revision",
        script_location=project.script_location,
        url=against.url,
        url_mode=project.url_mode,
        url_env_var=project.url_env_var,
        revision=arguments.get("head"),
        message=arguments.get("message") or "preview",
        branch_label=arguments.get("branch_label"),
        depends_on=tuple(arguments.get("depends_on") or ()),
        autogenerate=True,
        preview=True,
    )
    return run_in_child(spec)
