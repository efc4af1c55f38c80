"""Drift against history: a target's live schema against the schema its revisions should give.

The reference for a target's version rows comes from
:mod:`migdash.jobs.reference_build` (a scratch database upgraded in a child
process, reflected here, cached).  :func:`check_history_drift` compares the
live schema with it: no real difference is ``none``; otherwise, when the
live schema equals the reference of an *earlier* state (the nearest of
:data:`ANCESTOR_WALK` ancestors, then base), the target was stamped but not
applied; otherwise it drifted.  It takes seconds when a reference must be
built, so it runs only when asked (``migdash drift-history``), never on the
status path.  Functions here add and flush; the caller commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from migdash.engine.graph import RevisionGraph
from migdash.engine.probe import VersionTable
from migdash.engine.reference import LiveSchema, ScratchServers, earlier_states, read_live_schema
from migdash.engine.schema import diff_schemas
from migdash.engine.scrub import scrub_text
from migdash.errors import MigdashError, TargetUnreachable, UnknownRevision
from migdash.jobs.context import JobServices
from migdash.jobs.drift import DriftKind, DriftOutcome
from migdash.jobs.events import announce_drift
from migdash.jobs.reference_build import (
    Reference,
    ReferenceBuilder,
    find_references,
    reference_builder,
    scratch_secrets,
    scratch_servers,
)
from migdash.status import probe_request
from migdash.store.models import Target
from migdash.store.schema_models import DriftCheck

__all__ = ["check_history_drift", "scratch_servers", "target_reference"]

ANCESTOR_WALK = 20
"""Earlier revisions tried (nearest first) before base, when a schema does not match its own."""


def target_reference(
    session: Session,
    services: JobServices,
    target: Target,
    now: datetime,
    *,
    scratch: ScratchServers,
    rebuild: bool = False,
) -> Reference:
    """The reference for *target*'s current version rows (probed now), built if not cached.

    :raises TargetUnreachable: the target's version table cannot be read.
    :raises UnknownRevision: it names a revision the project does not have.
    :raises ReferenceBuildFailed: the scratch build failed (nothing cached).
    """
    probe = services.probes.probe(probe_request(target))
    if probe.error is not None:
        raise TargetUnreachable(f"the target cannot be read: {probe.error}")
    builder = reference_builder(services, target, scratch)
    for revision in probe.current:
        if revision not in builder.graph.nodes:
            raise UnknownRevision(revision, project=target.project.name)
    (found,) = find_references(session, builder, [probe.current], now, rebuild=rebuild)
    return found


@dataclass(frozen=True)
class _Outcome:
    outcome: DriftOutcome
    summary: str
    detail: dict[str, Any]


def check_history_drift(
    session: Session,
    services: JobServices,
    target: Target,
    now: datetime,
    *,
    scratch: ScratchServers,
) -> DriftCheck:
    """Compare *target*'s live schema with the reference of its version rows; record the outcome.

    Never raises for what it finds: an unreadable target, a broken project
    or a failed scratch build is an ``error`` row with the scrubbed reason
    (and no reference is cached).  Adds and flushes; the caller commits.
    """
    judged = _judge(session, services, target, now, scratch)
    check = DriftCheck(
        target_id=target.id,
        kind=DriftKind.HISTORY.value,
        checked_at=now,
        outcome=judged.outcome.value,
        summary=judged.summary,
        detail=judged.detail,
    )
    session.add(check)
    session.flush()
    announce_drift(session, target, check.kind, check.outcome, check.summary, now)
    return check


def _judge(
    session: Session,
    services: JobServices,
    target: Target,
    now: datetime,
    scratch: ScratchServers,
) -> _Outcome:
    secrets = scratch_secrets(target.url, scratch)
    version_table = VersionTable(
        target.version_table or target.project.version_table,
        target.version_table_schema or target.project.version_table_schema,
    )
    try:
        builder = reference_builder(services, target, scratch)
        try:
            live = read_live_schema(target.url, version_table, builder.ignore)
        except sa.exc.SQLAlchemyError as exc:
            return _error(f"the target cannot be read: {_first_line(exc)}", secrets)
        unusable = _not_applicable(builder.graph, live)
        if unusable is not None:
            return unusable
        (reference,) = find_references(session, builder, [live.rows], now)
    except MigdashError as exc:  # a broken project, an unreachable scratch server, a failed build
        return _error(exc.message, secrets)
    return _compare(session, builder, live, reference, now)


def _not_applicable(graph: RevisionGraph, live: LiveSchema) -> _Outcome | None:
    detail: dict[str, Any] = {"revisions": list(live.rows)}
    if not live.has_version_table:
        detail["reason"] = "no_version_table"
        return _Outcome(
            DriftOutcome.NOT_APPLICABLE,
            "not checked: the database has no version table, so it claims no revision",
            detail,
        )
    unknown = [revision for revision in live.rows if revision not in graph.nodes]
    if unknown:
        detail["reason"] = "unknown_revision"
        return _Outcome(
            DriftOutcome.NOT_APPLICABLE,
            f"not checked: the version table names {', '.join(unknown)}, which the project "
            "does not have",
            detail,
        )
    return None


def _compare(
    session: Session,
    builder: ReferenceBuilder,
    live: LiveSchema,
    reference: Reference,
    now: datetime,
) -> _Outcome:
    diff = diff_schemas(reference.snapshot, live.snapshot)
    at = _revisions_text(live.rows)
    detail: dict[str, Any] = {
        "revisions": list(live.rows),
        "reference": reference.to_json(),
        "live": {
            "dialect": live.snapshot.dialect,
            "server_major": live.snapshot.server_major,
            "fingerprint": live.snapshot.fingerprint,
        },
        "diff": diff.to_json(),
    }
    note = f" ({builder.site.note})" if builder.site.note else ""
    if diff.same:
        count = len(diff.cosmetic)
        cosmetic = f"; {count} cosmetic difference{'s' if count != 1 else ''}" if count else ""
        return _Outcome(
            DriftOutcome.NONE, f"no drift: the schema is what {at} gives{cosmetic}{note}", detail
        )
    try:
        earlier = _stamped_at(session, builder, live, now)
    except MigdashError as exc:
        detail["walk_error"] = scrub_text(exc.message, list(builder.secrets))
        earlier = None
    if earlier is not None:
        detail["schema_of"] = list(earlier)
        what = f"what {_revisions_text(earlier)} gives" if earlier else "empty (base)"
        return _Outcome(
            DriftOutcome.STAMPED_NOT_APPLIED,
            f"stamped but not applied: the version table says {at}, but the schema is {what}{note}",
            detail,
        )
    return _Outcome(
        DriftOutcome.DRIFT, f"drift from what {at} gives: {diff.summary()}{note}", detail
    )


def _stamped_at(
    session: Session, builder: ReferenceBuilder, live: LiveSchema, now: datetime
) -> tuple[str, ...] | None:
    """The nearest earlier state whose reference the live schema equals, if any.

    The missing references are built in one pass (oldest first, each on the
    scratch database of the one before), not one by one nearest first: a
    drifted schema matches none of them, and a pass costs one chain plus one
    step per state instead of a whole chain per state.
    """
    states = earlier_states(builder.graph, live.rows, ANCESTOR_WALK)
    for reference in find_references(session, builder, states, now):
        if diff_schemas(reference.snapshot, live.snapshot).same:
            return reference.revisions
    return None


def _revisions_text(revisions: Sequence[str]) -> str:
    return " + ".join(revisions) if revisions else "base"


def _error(message: str, secrets: list[str]) -> _Outcome:
    message = scrub_text(message, secrets)
    first = message.strip().splitlines()[0] if message.strip() else "unknown error"
    return _Outcome(DriftOutcome.ERROR, f"the check failed: {first}", {"error": message})


def _first_line(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    return f"{type(original).__name__}: {lines[0] if lines else ''}"
