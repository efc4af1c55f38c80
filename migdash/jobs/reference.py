"""Drift against history: a target's live schema against the schema its revisions should give.

The *reference* for a set of version rows R is built by upgrading an empty
scratch database of the target's dialect to R in a child process (the
ordinary ``upgrade`` action, run by ``migdash.jobs.runner`` with
``expected_steps=None``, holding only the scratch database's URL), then
reflecting it here; it is cached in ``reference_schema`` by
:func:`~migdash.engine.reference.reference_key`, so a second check at the
same revisions starts no process.  See :mod:`migdash.engine.reference` for
scratch servers and keys.

:func:`check_history_drift` compares the live schema with its reference:
no real difference is ``none``; otherwise, when the live schema equals the
reference of an *earlier* state (the nearest of :data:`ANCESTOR_WALK`
ancestors, then base), the target was stamped but not applied; otherwise
it drifted.  It takes seconds when a reference must be built, so it runs
only when asked (``migdash drift-history``), never on the status path.
Functions here add and flush; the caller commits.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from migdash.engine.actions import ActionSpec
from migdash.engine.graph import RevisionGraph
from migdash.engine.probe import VersionTable
from migdash.engine.reference import (
    BuildSite,
    LiveSchema,
    ReferenceBuildFailed,
    ScratchServers,
    build_site,
    earlier_states,
    env_py_digest,
    read_live_schema,
    reference_key,
    scratch_database,
    server_major,
    snapshot_database,
)
from migdash.engine.schema import SchemaSnapshot, diff_schemas
from migdash.engine.scrub import scrub_text, url_secrets
from migdash.errors import MigdashError, TargetUnreachable, UnknownRevision
from migdash.jobs.context import JobServices
from migdash.jobs.plans import run_in_child
from migdash.status import probe_request
from migdash.store.models import Project, Target
from migdash.store.schema_models import DriftCheck, ReferenceSchema

ANCESTOR_WALK = 20
"""Earlier revisions tried (nearest first) before base, when a schema does not match its own."""
BUILD_TIMEOUT = 600.0
"""Seconds one scratch upgrade may take (the whole chain from an empty database)."""


@dataclass(frozen=True)
class Reference:
    """The schema a database at ``revisions`` should have, and how it was obtained."""

    key: str
    revisions: tuple[str, ...]
    snapshot: SchemaSnapshot
    site: BuildSite
    cache_hit: bool
    build_seconds: float
    """What building it took (when it was built, for a cache hit)."""
    built_at: datetime

    def to_json(self, *, schema: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "key": self.key,
            "revisions": list(self.revisions),
            "dialect": self.snapshot.dialect,
            "server_major": self.snapshot.server_major,
            "normaliser_version": self.snapshot.normaliser_version,
            "fingerprint": self.snapshot.fingerprint,
            "tables": len(self.snapshot.schema.get("tables", {})),
            "cache_hit": self.cache_hit,
            "build_seconds": round(self.build_seconds, 3),
            "built_at": self.built_at.isoformat() + "Z",
            "note": self.site.note,
        }
        if schema:
            data["schema"] = self.snapshot.schema
        return data


@dataclass(frozen=True)
class _Builder:
    """What every reference of one project and build site shares (computed once per check)."""

    project: Project
    graph: RevisionGraph
    site: BuildSite
    major: int | None
    env_digest: str
    ignore: tuple[str, ...]
    secrets: tuple[str, ...]


def scratch_servers(settings: Mapping[str, Any]) -> ScratchServers:
    """The scratch servers configured in *settings* (``MIGDASH_SCRATCH_*_URL``)."""
    return ScratchServers(
        postgresql=settings.get("MIGDASH_SCRATCH_POSTGRES_URL"),
        mysql=settings.get("MIGDASH_SCRATCH_MYSQL_URL"),
    )


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
    builder = _builder(services, target, scratch)
    for revision in probe.current:
        if revision not in builder.graph.nodes:
            raise UnknownRevision(revision, project=target.project.name)
    return _reference(session, builder, probe.current, now, rebuild=rebuild)


def _builder(services: JobServices, target: Target, scratch: ScratchServers) -> _Builder:
    project = target.project
    graph = services.catalog.graph(project.script_location)
    site = build_site(make_url(target.url).get_backend_name(), scratch)
    version_table = target.version_table or project.version_table
    return _Builder(
        project=project,
        graph=graph,
        site=site,
        major=server_major(site),
        env_digest=env_py_digest(project.script_location),
        ignore=tuple(dict.fromkeys(("alembic_version", version_table))),
        secrets=tuple(_secrets(target.url, scratch)),
    )


def _reference(
    session: Session,
    builder: _Builder,
    revisions: Sequence[str],
    now: datetime,
    *,
    rebuild: bool = False,
) -> Reference:
    state = tuple(sorted(revisions))
    site = builder.site
    key = reference_key(builder.graph, state, builder.env_digest, site.dialect, builder.major)
    row = None if rebuild else session.get(ReferenceSchema, key)
    if row is not None:
        return _from_row(row, builder.site, cache_hit=True)
    started = time.perf_counter()
    snapshot = _build(builder, state)
    _store(session, key, builder.project.id, state, snapshot, time.perf_counter() - started, now)
    row = session.get(ReferenceSchema, key, populate_existing=True)
    assert row is not None
    return _from_row(row, builder.site, cache_hit=False)


def _build(builder: _Builder, state: tuple[str, ...]) -> SchemaSnapshot:
    """Upgrade a fresh scratch database to *state* in a child, and reflect it here."""
    project = builder.project
    with scratch_database(builder.site) as url:
        for revision in state:  # several rows: one upgrade each, on the same database
            spec = ActionSpec(
                kind="upgrade",
                script_location=project.script_location,
                url=url,
                url_mode=project.url_mode,
                url_env_var=project.url_env_var,
                revision=revision,
                expected_steps=None,
            )
            result = run_in_child(spec, timeout=BUILD_TIMEOUT)
            if not result.ok:
                error = scrub_text(result.error or "no result", [*builder.secrets])
                raise ReferenceBuildFailed(
                    f"upgrading an empty scratch {builder.site.dialect} database to "
                    f"{revision} failed: {error}"
                )
        try:
            return snapshot_database(url, builder.ignore)
        except sa.exc.SQLAlchemyError as exc:
            error = scrub_text(str(getattr(exc, "orig", None) or exc), [*builder.secrets])
            raise ReferenceBuildFailed(f"the scratch database cannot be read: {error}") from None


def _store(
    session: Session,
    key: str,
    project_id: int,
    state: tuple[str, ...],
    snapshot: SchemaSnapshot,
    seconds: float,
    now: datetime,
) -> None:
    """Insert or replace the cached reference; a concurrent build of the same key is no error."""
    values = {
        "key": key,
        "project_id": project_id,
        "revisions": list(state),
        "dialect": snapshot.dialect,
        "server_major": snapshot.server_major,
        "normaliser_version": snapshot.normaliser_version,
        "fingerprint": snapshot.fingerprint,
        "schema": snapshot.schema,
        "built_at": now,
        "build_seconds": round(seconds, 3),
    }
    name = session.get_bind().dialect.name
    if name in ("sqlite", "postgresql"):
        insert = (sqlite.insert if name == "sqlite" else postgresql.insert)(ReferenceSchema)
        update = {column: value for column, value in values.items() if column != "key"}
        session.execute(
            insert.values(**values).on_conflict_do_update(index_elements=["key"], set_=update)
        )
    else:
        session.merge(ReferenceSchema(**values))
    session.flush()


def _from_row(row: ReferenceSchema, site: BuildSite, *, cache_hit: bool) -> Reference:
    snapshot = SchemaSnapshot(
        dialect=row.dialect,
        server_major=row.server_major,
        normaliser_version=row.normaliser_version,
        schema=row.schema,
        fingerprint=row.fingerprint,
    )
    return Reference(
        key=row.key,
        revisions=tuple(row.revisions),
        snapshot=snapshot,
        site=site,
        cache_hit=cache_hit,
        build_seconds=row.build_seconds,
        built_at=row.built_at,
    )


HISTORY = "history"
"""The ``drift_check.kind`` of these checks (``models`` is the other)."""


@dataclass(frozen=True)
class _Outcome:
    outcome: str
    """``none``, ``drift``, ``stamped_not_applied``, ``error`` or ``not_applicable``."""
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
        kind=HISTORY,
        checked_at=now,
        outcome=judged.outcome,
        summary=judged.summary,
        detail=judged.detail,
    )
    session.add(check)
    session.flush()
    return check


def _judge(
    session: Session,
    services: JobServices,
    target: Target,
    now: datetime,
    scratch: ScratchServers,
) -> _Outcome:
    secrets = _secrets(target.url, scratch)
    version_table = VersionTable(
        target.version_table or target.project.version_table,
        target.version_table_schema or target.project.version_table_schema,
    )
    try:
        builder = _builder(services, target, scratch)
        try:
            live = read_live_schema(target.url, version_table, builder.ignore)
        except sa.exc.SQLAlchemyError as exc:
            return _error(f"the target cannot be read: {_first_line(exc)}", secrets)
        unusable = _not_applicable(builder.graph, live)
        if unusable is not None:
            return unusable
        reference = _reference(session, builder, live.rows, now)
    except MigdashError as exc:  # a broken project, an unreachable scratch server, a failed build
        return _error(exc.message, secrets)
    return _compare(session, builder, live, reference, now)


def _not_applicable(graph: RevisionGraph, live: LiveSchema) -> _Outcome | None:
    detail: dict[str, Any] = {"revisions": list(live.rows)}
    if not live.has_version_table:
        detail["reason"] = "no_version_table"
        return _Outcome(
            "not_applicable",
            "not checked: the database has no version table, so it claims no revision",
            detail,
        )
    unknown = [revision for revision in live.rows if revision not in graph.nodes]
    if unknown:
        detail["reason"] = "unknown_revision"
        return _Outcome(
            "not_applicable",
            f"not checked: the version table names {', '.join(unknown)}, which the project "
            "does not have",
            detail,
        )
    return None


def _compare(
    session: Session, builder: _Builder, live: LiveSchema, reference: Reference, now: datetime
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
        return _Outcome("none", f"no drift: the schema is what {at} gives{cosmetic}{note}", detail)
    try:
        earlier = _stamped_at(session, builder, live, now)
    except MigdashError as exc:
        detail["walk_error"] = scrub_text(exc.message, list(builder.secrets))
        earlier = None
    if earlier is not None:
        detail["schema_of"] = list(earlier)
        what = f"what {_revisions_text(earlier)} gives" if earlier else "empty (base)"
        return _Outcome(
            "stamped_not_applied",
            f"stamped but not applied: the version table says {at}, but the schema is {what}{note}",
            detail,
        )
    return _Outcome("drift", f"drift from what {at} gives: {diff.summary()}{note}", detail)


def _stamped_at(
    session: Session, builder: _Builder, live: LiveSchema, now: datetime
) -> tuple[str, ...] | None:
    """The nearest earlier state whose reference the live schema equals, if any."""
    for state in earlier_states(builder.graph, live.rows, ANCESTOR_WALK):
        reference = _reference(session, builder, state, now)
        if diff_schemas(reference.snapshot, live.snapshot).same:
            return state
    return None


def _revisions_text(revisions: Sequence[str]) -> str:
    return " + ".join(revisions) if revisions else "base"


def _secrets(url: str, scratch: ScratchServers) -> list[str]:
    secrets = url_secrets(url)
    for server in (scratch.postgresql, scratch.mysql):
        secrets += url_secrets(server) if server else []
    return secrets


def _error(message: str, secrets: list[str]) -> _Outcome:
    message = scrub_text(message, secrets)
    first = message.strip().splitlines()[0] if message.strip() else "unknown error"
    return _Outcome("error", f"the check failed: {first}", {"error": message})


def _first_line(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    return f"{type(original).__name__}: {lines[0] if lines else ''}"
