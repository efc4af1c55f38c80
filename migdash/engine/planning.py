"""The steps an upgrade, downgrade or stamp will run, computed by Alembic itself.

:func:`plan_steps` is the one function that turns (current revisions,
action, destination) into steps.  The plan page, the approval page, the
offline SQL and the migration itself all go through it: the preview child
calls it to show a plan, and the job child calls it *inside* Alembic's own
migration transaction (as the ``fn`` Alembic hands the heads it just read
from the version table) and refuses to run when the answer differs from
the approved plan.  So the plan a person approves is, by construction, the
list Alembic iterates.

It needs a loaded :class:`~alembic.script.ScriptDirectory`, which imports
every revision file: it only ever runs in a child process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import util as alembic_util
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError

from migdash.errors import MigdashError, PlanRefused

TARGET_KINDS = ("upgrade", "downgrade", "stamp")


@dataclass(frozen=True)
class PlannedStep:
    """One migration step as Alembic will log it (``upgrade a1 -> b2``)."""

    label: str
    """Alembic's ``short_log``: ``upgrade a1 -> b2`` (``stamp_revision`` for stamps)."""
    revision: str | None
    """The revision whose ``upgrade()``/``downgrade()`` runs (None for stamps)."""
    path: str | None
    digest: str | None
    """SHA-256 of the revision file's bytes, so an edited file is a different plan."""

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "revision": self.revision,
            "path": self.path,
            "digest": self.digest,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlannedStep:
        return cls(data["label"], data.get("revision"), data.get("path"), data.get("digest"))


class PlanChanged(MigdashError):
    """What Alembic would run now differs from the approved plan; nothing was run."""

    hint = "Plan the action again from the target's page; a new plan needs a new approval."


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (empty string for a file that is gone)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def plan_steps(
    script: ScriptDirectory,
    kind: str,
    destination: str,
    current: Sequence[str],
    *,
    purge: bool = False,
) -> tuple[PlannedStep, ...]:
    """What ``alembic <kind> <destination>`` runs from *current*, exactly as Alembic lists it.

    :raises PlanRefused: Alembic refuses the walk (ambiguous from a merge,
        not an ancestor, unknown revision, ``head`` with several heads);
        the message is Alembic's, the hint the way out.
    """
    heads = () if purge else tuple(current)
    try:
        if kind == "upgrade":
            steps: list[Any] = script._upgrade_revs(destination, heads)  # type: ignore[arg-type]  # noqa: SLF001
        elif kind == "downgrade":
            steps = script._downgrade_revs(destination, heads)  # type: ignore[arg-type]  # noqa: SLF001
        elif kind == "stamp":
            steps = script._stamp_revs(alembic_util.to_tuple(destination), heads)  # noqa: SLF001
        else:
            raise PlanRefused(f"unknown action {kind!r}", hint=f"One of {', '.join(TARGET_KINDS)}")
    except (alembic_util.CommandError, RevisionError) as exc:
        raise PlanRefused(
            f"Alembic refuses {kind} to {destination!r} from "
            f"{', '.join(current) or '<base>'}: {exc}",
            hint=way_out(kind, destination),
        ) from exc
    return tuple(_planned(step) for step in steps)


def _planned(step: Any) -> PlannedStep:
    script = getattr(step, "revision", None)
    path = str(script.path) if script is not None and getattr(script, "path", None) else None
    return PlannedStep(
        label=step.short_log,
        revision=script.revision if script is not None else None,
        path=path,
        digest=file_digest(path) if path else None,
    )


def way_out(kind: str, destination: str) -> str:
    """What to do instead, for the walks Alembic refuses."""
    if destination.lstrip("-").isdigit() or "@-" in destination or destination.startswith("+"):
        return (
            "Relative steps cannot cross a merge or a branch point unambiguously; "
            "choose a named revision from the list instead."
        )
    if kind == "downgrade":
        return "Choose a revision the target has applied (an ancestor), or base."
    if kind == "upgrade":
        return "Choose heads, or a revision that descends from the target's current revision."
    return "Choose heads, base, or a revision of the project."


def verify_steps(actual: Sequence[PlannedStep], expected: Sequence[PlannedStep]) -> None:
    """Refuse to run unless the steps and the files behind them are the approved ones.

    :raises PlanChanged: naming the first difference.
    """
    got = [(s.label, s.digest) for s in actual]
    want = [(s.label, s.digest) for s in expected]
    if got == want:
        return
    if [g[0] for g in got] != [w[0] for w in want]:
        shown = ", ".join(s.label for s in actual) or "nothing"
        planned = ", ".join(s.label for s in expected) or "nothing"
        raise PlanChanged(
            f"the plan changed: Alembic would now run [{shown}] but the plan was [{planned}]; "
            "nothing was run"
        )
    edited = [a.path for a, e in zip(actual, expected, strict=True) if a.digest != e.digest]
    raise PlanChanged(
        f"a revision file changed since the plan was made ({', '.join(map(str, edited))}); "
        "nothing was run"
    )


def env_digest(script: ScriptDirectory) -> str:
    """SHA-256 of the project's ``env.py`` (it runs around every step, so it is part of a plan)."""
    return file_digest(Path(script.dir) / "env.py")
