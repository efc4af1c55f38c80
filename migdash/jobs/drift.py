"""Drift checks: a target's live schema against its project's models, kept as ``DriftCheck`` rows.

A check against the models is ``alembic check`` run for migdash: a child
process runs the project's ``env.py`` against the target
(:mod:`migdash.engine.drift`, action kind ``drift``), and what it finds is
judged here and stored.  It takes seconds (a process, ``env.py``, a
reflection of the target), so it never runs on the status path: it runs when
someone asks (the target page's button, ``migdash drift``).

Rows are kind-aware: ``models`` here; ``history`` (the live schema against
the schema its revision should have) shares the table, the outcomes and
:func:`latest_drift_checks`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from migdash.engine.actions import ActionSpec
from migdash.engine.graph import RevisionGraph
from migdash.engine.scrub import scrub_text, url_secrets
from migdash.engine.state import pending_revisions
from migdash.errors import BrokenProject, MigdashError
from migdash.jobs.context import JobServices
from migdash.jobs.events import announce_drift
from migdash.jobs.plans import run_in_child
from migdash.store.models import Target
from migdash.store.schema_models import DriftCheck

DRIFT_TIMEOUT = 60.0
"""Seconds a check may take (env.py and a reflection); the web waits for it, as for a preview."""
SUMMARY_ITEMS = 3


class DriftKind(StrEnum):
    MODELS = "models"
    HISTORY = "history"


class DriftOutcome(StrEnum):
    """The outcomes the ``drift_check`` table allows (its CHECK constraint)."""

    NONE = "none"
    DRIFT = "drift"
    STAMPED_NOT_APPLIED = "stamped_not_applied"
    ERROR = "error"
    NOT_APPLICABLE = "not_applicable"


Judgement = tuple[DriftOutcome, str, dict[str, Any]]


def check_model_drift(
    session: Session, services: JobServices, target: Target, now: datetime
) -> DriftCheck:
    """Compare *target* with its project's models in a child process and record the outcome.

    Never raises for what the check finds: a failing ``env.py``, an
    unreachable target or a broken project is an ``error`` row with the
    scrubbed reason.  Adds and flushes the row; the caller commits.
    """
    outcome, summary, detail = _judge_models(services, target)
    check = DriftCheck(
        target_id=target.id,
        kind=DriftKind.MODELS.value,
        checked_at=now,
        outcome=outcome.value,
        summary=summary,
        detail=detail,
    )
    session.add(check)
    session.flush()
    announce_drift(session, target, check.kind, check.outcome, summary, now)
    return check


def latest_drift_checks(
    session: Session, target_ids: Sequence[int], kind: DriftKind = DriftKind.MODELS
) -> dict[int, DriftCheck]:
    """The newest check of *kind* of each target (one query; targets never checked are absent)."""
    if not target_ids:
        return {}
    newest = (
        sa.select(DriftCheck.target_id, sa.func.max(DriftCheck.id).label("id"))
        .where(DriftCheck.target_id.in_(target_ids), DriftCheck.kind == kind.value)
        .group_by(DriftCheck.target_id)
        .subquery()
    )
    rows = session.scalars(sa.select(DriftCheck).join(newest, DriftCheck.id == newest.c.id)).all()
    return {row.target_id: row for row in rows}


def drift_json(check: DriftCheck) -> dict[str, Any]:
    """A check as ``migdash drift --json`` prints it."""
    return {
        "kind": check.kind,
        "outcome": check.outcome,
        "summary": check.summary,
        "checked_at": check.checked_at.isoformat() + "Z",
        **check.detail,
    }


def _judge_models(services: JobServices, target: Target) -> Judgement:
    secrets = url_secrets(target.url)
    try:
        graph = services.catalog.graph(target.project.script_location)
    except BrokenProject as exc:
        return _error(f"the project cannot be loaded: {exc}", None, secrets)
    result = run_in_child(_drift_spec(target), timeout=DRIFT_TIMEOUT)
    if not result.ok or result.drift is None:
        return _error(result.error or "the check gave no answer", result.traceback, secrets)
    found = result.drift
    detail = {key: found.get(key) for key in ("dialect", "revisions", "heads")}
    if not found.get("has_metadata"):
        detail["reason"] = "no_models"
        return (
            DriftOutcome.NOT_APPLICABLE,
            "no models to compare with: the project's env.py passes no target_metadata "
            "to context.configure()",
            detail,
        )
    if not found.get("up_to_date"):
        detail["reason"] = "not_at_heads"
        return DriftOutcome.NOT_APPLICABLE, _behind(graph, found["revisions"]), detail
    diffs: list[dict[str, Any]] = found.get("diffs") or []
    detail.update(diffs=diffs, operations=found.get("operations"))
    if not diffs:
        return DriftOutcome.NONE, "no drift: the database matches the models", detail
    return DriftOutcome.DRIFT, summarise(diffs), detail


def summarise(diffs: Sequence[dict[str, Any]]) -> str:
    """One line: how many differences, and the first few by Alembic's name for them."""
    count = len(diffs)
    shown = ", ".join(f"{d['kind']} {d['subject']}" for d in diffs[:SUMMARY_ITEMS])
    more = f" and {count - SUMMARY_ITEMS} more" if count > SUMMARY_ITEMS else ""
    return f"{count} difference{'s' if count != 1 else ''}: {shown}{more}"


def _behind(graph: RevisionGraph, revisions: Sequence[str]) -> str:
    try:
        pending = f"{len(pending_revisions(graph, revisions))} revision(s) pending"
    except MigdashError:
        pending = "it holds revisions the project does not have"
    return (
        f"not checked: the target is not at the project's heads ({pending}); Alembic "
        "compares the models only with an up-to-date database. Upgrade it, then check again."
    )


def _error(message: str, traceback: str | None, secrets: list[str]) -> Judgement:
    message = scrub_text(message, secrets)
    first = message.strip().splitlines()[0] if message.strip() else "unknown error"
    detail: dict[str, Any] = {"error": message}
    if traceback:
        detail["traceback"] = scrub_text(traceback, secrets)
    return DriftOutcome.ERROR, f"the check failed: {first}", detail


def _drift_spec(target: Target) -> ActionSpec:
    return ActionSpec(
        kind="drift",
        script_location=target.project.script_location,
        url=target.url,
        url_mode=target.project.url_mode,
        url_env_var=target.project.url_env_var,
    )
