"""Reference schemas, built on scratch databases and cached in ``reference_schema``.

The reference for a state (a set of version rows) is built by upgrading an
empty scratch database of the target's dialect to it in a child process
(the ordinary ``upgrade`` action, run by ``migdash.jobs.runner`` with
``expected_steps=None`` and holding only the scratch database's URL), then
reflecting the database here.  It is cached by
:func:`~migdash.engine.reference.reference_key`, so asking again starts no
process.  Several missing references are built in one pass, oldest first,
on as few scratch databases as their ancestry allows: each state after the
first on a database costs only the revisions it adds (one child each).
See :mod:`migdash.engine.reference` for scratch servers and keys.
Functions here add and flush; the caller commits.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from migdash.engine.actions import ActionSpec
from migdash.engine.graph import RevisionGraph
from migdash.engine.reference import (
    BuildSite,
    ReferenceBuildFailed,
    ScratchServers,
    build_site,
    env_py_digest,
    reference_key,
    scratch_database,
    server_major,
    snapshot_database,
)
from migdash.engine.schema import SchemaSnapshot
from migdash.engine.scrub import scrub_text, url_secrets
from migdash.jobs.context import JobServices
from migdash.jobs.plans import run_in_child
from migdash.store.models import Project, Target
from migdash.store.schema_models import ReferenceSchema

BUILD_TIMEOUT = 600.0
"""Seconds one scratch upgrade may take (the whole chain from an empty database)."""

State = tuple[str, ...]


@dataclass(frozen=True)
class Reference:
    """The schema a database at ``revisions`` should have, and how it was obtained."""

    key: str
    revisions: State
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
class ReferenceBuilder:
    """What every reference of one target's project and build site shares (made once per use)."""

    project: Project
    graph: RevisionGraph
    site: BuildSite
    major: int | None
    """The scratch server's major version (part of every key)."""
    env_digest: str
    ignore: tuple[str, ...]
    """Tables left out of every snapshot: the version table(s)."""
    schema: str | None
    """The database schema reflected (the version table's, as for the live target)."""
    secrets: tuple[str, ...]
    """The target's and the scratch servers' secrets, scrubbed from every message."""

    def key(self, state: State) -> str:
        return reference_key(
            self.graph, state, self.env_digest, self.site.dialect, self.major, self.schema
        )


def scratch_servers(settings: Mapping[str, Any]) -> ScratchServers:
    """The scratch servers configured in *settings* (``MIGDASH_SCRATCH_*_URL``)."""
    return ScratchServers(
        postgresql=settings.get("MIGDASH_SCRATCH_POSTGRES_URL"),
        mysql=settings.get("MIGDASH_SCRATCH_MYSQL_URL"),
    )


def scratch_secrets(url: str, scratch: ScratchServers) -> list[str]:
    """*url*'s secrets and those of every configured scratch server."""
    secrets = url_secrets(url)
    for server in (scratch.postgresql, scratch.mysql):
        secrets += url_secrets(server) if server else []
    return secrets


def reference_builder(
    services: JobServices, target: Target, scratch: ScratchServers
) -> ReferenceBuilder:
    """Load the graph, pick the build site and read its server version (one connection).

    :raises BrokenProject: the project cannot be loaded.
    :raises ReferenceBuildFailed: the scratch server cannot be reached.
    """
    project = target.project
    site = build_site(make_url(target.url).get_backend_name(), scratch)
    version_table = target.version_table or project.version_table
    return ReferenceBuilder(
        project=project,
        graph=services.catalog.graph(project.script_location),
        site=site,
        major=server_major(site),
        env_digest=env_py_digest(project.script_location),
        ignore=tuple(dict.fromkeys(("alembic_version", version_table))),
        schema=target.version_table_schema or project.version_table_schema,
        secrets=tuple(scratch_secrets(target.url, scratch)),
    )


def find_references(
    session: Session,
    builder: ReferenceBuilder,
    states: Sequence[State],
    now: datetime,
    *,
    rebuild: bool = False,
) -> list[Reference]:
    """The reference of each of *states* (in that order), building those not cached.

    A reference built before a later one fails is kept (it is right).

    :raises ReferenceBuildFailed: a scratch build failed.
    """
    states = [tuple(sorted(state)) for state in states]
    keys = {state: builder.key(state) for state in states}
    cached = {} if rebuild else _cached(session, list(keys.values()))
    found = {
        state: _from_row(cached[key], builder.site, True)
        for state, key in keys.items()
        if key in cached
    }
    missing = [state for state in dict.fromkeys(states) if state not in found]
    with closing(_build_in_order(builder, missing)) as built:  # drops the scratch DB on error
        for state, snapshot, seconds in built:
            _store(session, keys[state], builder.project.id, state, snapshot, seconds, now)
            row = session.get(ReferenceSchema, keys[state], populate_existing=True)
            assert row is not None
            found[state] = _from_row(row, builder.site, False)
    return [found[state] for state in states]


def _cached(session: Session, keys: list[str]) -> dict[str, ReferenceSchema]:
    rows = session.scalars(sa.select(ReferenceSchema).where(ReferenceSchema.key.in_(keys)))
    return {row.key: row for row in rows}


def _build_in_order(
    builder: ReferenceBuilder, states: Sequence[State]
) -> Generator[tuple[State, SchemaSnapshot, float], None, None]:
    """Build *states* oldest first, carrying one scratch database on while each adds to the last."""
    graph = builder.graph
    pending = sorted(states, key=lambda s: bin(graph.ancestor_mask(s)).count("1"))
    while pending:
        with scratch_database(builder.site) as url:
            applied = 0
            while pending and graph.ancestor_mask(pending[0]) & applied == applied:
                state = pending.pop(0)
                started = time.perf_counter()
                for revision in state:  # several rows: one upgrade each; each runs what is missing
                    _upgrade(builder, url, revision)
                yield state, _reflect(builder, url), time.perf_counter() - started
                applied = graph.ancestor_mask(state)


def _upgrade(builder: ReferenceBuilder, url: str, revision: str) -> None:
    project = builder.project
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
        error = scrub_text(result.error or "no result", list(builder.secrets))
        raise ReferenceBuildFailed(
            f"upgrading a scratch {builder.site.dialect} database to {revision} failed: {error}"
        )


def _reflect(builder: ReferenceBuilder, url: str) -> SchemaSnapshot:
    try:
        return snapshot_database(url, builder.ignore, builder.schema)
    except sa.exc.SQLAlchemyError as exc:
        error = scrub_text(str(getattr(exc, "orig", None) or exc), list(builder.secrets))
        raise ReferenceBuildFailed(f"the scratch database cannot be read: {error}") from None


def _store(
    session: Session,
    key: str,
    project_id: int,
    state: State,
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


def _from_row(row: ReferenceSchema, site: BuildSite, cache_hit: bool) -> Reference:
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
