"""Reference schemas: what a database at revision R should look like, and where to build one.

A reference is built by upgrading an empty *scratch* database of the
target's dialect to R (project code: a child process does that, see
``migdash.jobs.reference``) and reflecting it here with
:func:`~migdash.engine.schema.snapshot_schema`.  This module holds the parts
that run no project code: which scratch server serves a dialect
(:func:`build_site`), a uniquely named scratch database that is always
dropped (:func:`scratch_database`), the cache key (:func:`reference_key`),
the earlier states a "stamped but not applied" walk tries
(:func:`earlier_states`), and a read of a live database's version rows and
schema in one connection (:func:`read_live_schema`).

Scratch databases are created per build (``migdash_scratch_<unix time>_<hex>``)
and dropped when the build ends, whatever happens; one left behind by a
killed process is dropped by the next build on that server once it is an
hour old.  No per-revision template database is kept: the reflected
reference is cached in the metadata DB, so a database is only ever needed
for a build that has no cached answer (``bench/reference_bench.py``
measures what a template would save).
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from migdash.engine.graph import RevisionGraph
from migdash.engine.planning import file_digest
from migdash.engine.probe import VersionTable, create_probe_engine, version_query
from migdash.engine.project import alembic_config
from migdash.engine.schema import NORMALISER_VERSION, SchemaSnapshot, canonical_json
from migdash.engine.schema import snapshot_schema as _snapshot_schema
from migdash.errors import MigdashError

SCRATCH_PREFIX = "migdash_scratch_"
STALE_AFTER = 3600.0
"""Seconds after which a scratch database nobody dropped is considered abandoned."""
SERVER_TIMEOUT = 30.0
"""Connect and statement time-out on a scratch server and on a live target being read."""
_SCRATCH_NAME = re.compile(rf"^{SCRATCH_PREFIX}(\d+)_[0-9a-f]+$")
_SERVER_DIALECTS = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}


class ReferenceBuildFailed(MigdashError):
    """The scratch database could not be created, upgraded or read; nothing was cached."""

    hint = (
        "Run the same upgrade on an empty database by hand to see the failure; check "
        "the scratch server settings (MIGDASH_SCRATCH_POSTGRES_URL, MIGDASH_SCRATCH_MYSQL_URL)."
    )


@dataclass(frozen=True)
class ScratchServers:
    """Where references may be built: one server URL per dialect; SQLite needs none."""

    postgresql: str | None = None
    """A PostgreSQL server URL whose user may CREATE DATABASE (any database on it)."""
    mysql: str | None = None
    """A MySQL or MariaDB server URL whose user may CREATE DATABASE."""


@dataclass(frozen=True)
class BuildSite:
    """The scratch server a reference for one target dialect is built on."""

    dialect: str
    """``postgresql``, ``mysql`` or ``sqlite``: what the reference is built on."""
    server_url: str | None
    """None for SQLite (a temporary file)."""
    note: str | None = None
    """Why the build dialect differs from the target's, for people to read; None when it doesn't."""


def build_site(target_dialect: str, servers: ScratchServers) -> BuildSite:
    """The scratch server for *target_dialect*, or SQLite with a note saying the dialect differs."""
    family = _SERVER_DIALECTS.get(target_dialect)
    if target_dialect == "sqlite":
        return BuildSite("sqlite", None)
    url = getattr(servers, family) if family else None
    if family and url:
        return BuildSite(family, url)
    variable = {
        "postgresql": "MIGDASH_SCRATCH_POSTGRES_URL",
        "mysql": "MIGDASH_SCRATCH_MYSQL_URL",
    }.get(family or "")
    why = (
        f"no scratch server is configured for {target_dialect} (set {variable})"
        if variable
        else f"migdash has no scratch server setting for {target_dialect}"
    )
    return BuildSite(
        "sqlite",
        None,
        f"{why}: the reference was built on SQLite, so it is compared with the "
        f"{target_dialect} target across dialects (types by affinity only)",
    )


def server_major(site: BuildSite) -> int | None:
    """The scratch server's major version (one connection); SQLite's library major for SQLite.

    :raises ReferenceBuildFailed: the scratch server cannot be reached.
    """
    if site.server_url is None:
        return int(sqlite3.sqlite_version_info[0])
    db_engine = create_probe_engine(site.server_url, SERVER_TIMEOUT)
    try:
        with db_engine.connect():
            version = db_engine.dialect.server_version_info
    except sa.exc.SQLAlchemyError as exc:
        raise ReferenceBuildFailed(f"the scratch server cannot be reached: {_first(exc)}") from None
    finally:
        db_engine.dispose()
    return int(version[0]) if version and isinstance(version[0], int) else None


@contextmanager
def scratch_database(site: BuildSite) -> Iterator[str]:
    """Create a uniquely named empty database on *site*, yield its URL, and always drop it.

    :raises ReferenceBuildFailed: the database cannot be created.
    """
    if site.server_url is None:
        with tempfile.TemporaryDirectory(prefix="migdash-reference-") as folder:
            yield f"sqlite:///{Path(folder) / 'scratch.db'}"
        return
    name = f"{SCRATCH_PREFIX}{int(time.time())}_{uuid.uuid4().hex[:10]}"
    admin = _admin_engine(site.server_url)
    try:
        try:
            with admin.connect() as connection:
                drop_stale_scratch(connection)
                connection.exec_driver_sql(f"CREATE DATABASE {name}")
        except sa.exc.SQLAlchemyError as exc:
            raise ReferenceBuildFailed(
                f"a scratch database cannot be created on the scratch server: {_first(exc)}"
            ) from None
        try:
            yield make_url(site.server_url).set(database=name).render_as_string(hide_password=False)
        finally:
            _drop_quietly(admin, name)
    finally:
        admin.dispose()


def scratch_databases(connection: sa.Connection) -> list[str]:
    """The scratch databases on the server behind *connection* (ours and abandoned ones)."""
    if connection.dialect.name == "postgresql":
        sql = "SELECT datname FROM pg_database"
    else:
        sql = "SELECT schema_name FROM information_schema.schemata"
    return sorted(
        name for name in connection.exec_driver_sql(sql).scalars() if _SCRATCH_NAME.match(name)
    )


def drop_stale_scratch(connection: sa.Connection, now: float | None = None) -> list[str]:
    """Drop scratch databases older than :data:`STALE_AFTER` (their builder died); return them."""
    now = time.time() if now is None else now
    dropped = []
    for name in scratch_databases(connection):
        match = _SCRATCH_NAME.match(name)
        if match and now - int(match.group(1)) > STALE_AFTER:
            _drop(connection, name)
            dropped.append(name)
    return dropped


def _drop_quietly(admin: sa.Engine, name: str) -> None:
    """Drop *name*; if the server refuses now, the next build's stale sweep drops it later."""
    try:
        with admin.connect() as connection:
            _drop(connection, name)
    except sa.exc.SQLAlchemyError:
        return


def _drop(connection: sa.Connection, name: str) -> None:
    major = (connection.dialect.server_version_info or (0,))[0]
    if connection.dialect.name == "postgresql" and isinstance(major, int) and major >= 13:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    else:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")


def _admin_engine(server_url: str) -> sa.Engine:
    return create_probe_engine(server_url, SERVER_TIMEOUT).execution_options(
        isolation_level="AUTOCOMMIT"
    )


def snapshot_database(
    url: str, ignore_tables: Iterable[str], schema: str | None = None
) -> SchemaSnapshot:
    """Reflect the scratch database at *url* (no project code runs here: reflection only)."""
    db_engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with db_engine.connect() as connection:
            return _snapshot_schema(connection, ignore_tables=tuple(ignore_tables), schema=schema)
    finally:
        db_engine.dispose()


@dataclass(frozen=True)
class LiveSchema:
    """A target's version rows and schema, read in one connection."""

    rows: tuple[str, ...]
    has_version_table: bool
    snapshot: SchemaSnapshot


def read_live_schema(url: str, table: VersionTable, ignore_tables: Iterable[str]) -> LiveSchema:
    """Read *url*'s version rows and reflect its schema, read-only, on bounded time-outs.

    The schema read is the version table's (the database's default when it
    has none), as ``migdash.jobs.schemas`` reads it for snapshots.

    :raises sqlalchemy.exc.SQLAlchemyError: the target cannot be read.
    """
    db_engine = create_probe_engine(url, SERVER_TIMEOUT)
    try:
        with db_engine.connect() as connection:
            has_table = sa.inspect(connection).has_table(table.name, schema=table.schema)
            rows: tuple[str, ...] = ()
            if has_table:
                sql = version_query(connection.dialect, table)
                rows = tuple(sorted(connection.exec_driver_sql(sql).scalars()))
            snapshot = _snapshot_schema(
                connection, ignore_tables=tuple(ignore_tables), schema=table.schema
            )
            return LiveSchema(rows, has_table, snapshot)
    finally:
        db_engine.dispose()


def env_py_digest(script_location: str) -> str:
    """SHA-256 of the project's ``env.py`` (read, never run); empty when there is none."""
    folder = alembic_config(script_location).get_main_option("script_location") or ""
    return file_digest(Path(folder) / "env.py")


def state_revisions(graph: RevisionGraph, state: Sequence[str]) -> list[str]:
    """Every revision a database at *state* has applied (its ancestor set), sorted."""
    return sorted(graph.revisions_in(graph.ancestor_mask(state)))


def reference_key(
    graph: RevisionGraph,
    state: Sequence[str],
    env_digest: str,
    dialect: str,
    major: int | None,
    schema: str | None = None,
) -> str:
    """SHA-256 naming one reference: the files of *state*'s ancestor set, ``env.py``, where.

    Any edited revision file in the chain, or an edited ``env.py``, gives a
    new key; so does another build dialect, server major, normaliser, or
    database schema reflected (*schema*, None for the default).
    """
    material = {
        "files": [
            [revision, file_digest(graph.nodes[revision].path)]
            for revision in state_revisions(graph, state)
        ],
        "env": env_digest,
        "dialect": dialect,
        "server_major": major,
        "normaliser_version": NORMALISER_VERSION,
        **({"schema": schema} if schema else {}),
    }
    return hashlib.sha256(canonical_json(material).encode()).hexdigest()


def earlier_states(graph: RevisionGraph, rows: Sequence[str], limit: int) -> list[tuple[str, ...]]:
    """States a database claiming *rows* might really be at: nearest first, then base.

    Each proper ancestor A of *rows* (newest first, in Alembic's history
    order) gives the state "everything up to A, and the rows A is not below
    unchanged"; at most *limit* of them, then base (nothing applied).
    """
    everything = graph.revisions_in(graph.ancestor_mask(rows))
    newest_first = [r for r in graph.alembic_order(everything, rows) if r not in rows]
    states: list[tuple[str, ...]] = []
    for ancestor in newest_first:
        kept = [row for row in rows if not graph.is_ancestor(ancestor, row)]
        state = graph.effective_current([ancestor, *kept])
        if state not in states and set(state) != set(rows):
            states.append(state)
        if len(states) >= limit:
            break
    if tuple(rows) and () not in states:
        states.append(())
    return states


def _first(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    return f"{type(original).__name__}: {lines[0] if lines else ''}".rstrip(": ")
