"""Read a target's current revision(s) with one SELECT, over pooled connections, on a deadline.

``alembic current`` builds a ``MigrationContext`` and checks ``has_table``
on every call; across a thousand databases that is most of the cost.  A
:class:`ProbePool` keeps one small SQLAlchemy pool per target URL and asks
only ``SELECT version_num FROM <version table>``; the table's absence is
checked only when that SELECT fails.  Every connection is opened with the
driver's own connect and statement time-outs, and :meth:`ProbePool.probe_many`
adds an overall deadline, so one dead host never stalls a page.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from migdash.engine.scrub import mask_url, scrub_text, url_secrets

DEFAULT_TIMEOUT = 5.0
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class VersionTable:
    """Where a project keeps its version rows (Alembic's ``version_table`` options)."""

    name: str = "alembic_version"
    schema: str | None = None


@dataclass(frozen=True)
class ProbeRequest:
    """One target to probe."""

    url: str
    version_table: VersionTable = field(default_factory=VersionTable)


@dataclass(frozen=True)
class TargetProbe:
    """What one SELECT learned about a database."""

    current: tuple[str, ...]
    """Rows of the version table, sorted; empty when at base or not readable."""
    has_version_table: bool
    error: str | None = None
    """Why the database could not be read (secrets scrubbed); None when it could."""
    elapsed: float = 0.0
    """Seconds the probe took."""

    @property
    def reachable(self) -> bool:
        return self.error is None


class ProbePool:
    """Per-URL connection pools plus a thread pool to probe many targets at once."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, max_workers: int = 16) -> None:
        self.timeout = timeout
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()
        self._max_workers = max_workers
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="probe")
        self._pid = os.getpid()

    def probe(self, request: ProbeRequest) -> TargetProbe:
        """Probe one target; failures come back as a :class:`TargetProbe` with ``error`` set."""
        started = time.perf_counter()
        secrets = url_secrets(request.url)
        try:
            db_engine = self._engine_for(request.url)
        except (ArgumentError, NoSuchModuleError, ValueError) as exc:
            return _failed(f"invalid URL {mask_url(request.url)}: {exc}", secrets, started)
        try:
            with db_engine.connect() as connection:
                return _read_versions(connection, request.version_table, secrets, started)
        except SQLAlchemyError as exc:
            self._discard(request.url)
            return _failed(_describe(exc), secrets, started)
        except OSError as exc:
            return _failed(f"{type(exc).__name__}: {exc}", secrets, started)

    def probe_many(self, requests: Sequence[ProbeRequest]) -> list[TargetProbe]:
        """Probe all *requests* concurrently; any still running at the deadline is unreachable."""
        executor = self._executor_here()
        futures = [executor.submit(self.probe, request) for request in requests]
        deadline = self.timeout + 1.0
        wait_futures(futures, timeout=deadline)
        results = []
        for future in futures:
            if future.done():
                results.append(future.result())
            else:
                results.append(
                    TargetProbe((), False, f"no answer within {deadline:.0f} s", deadline)
                )
        return results

    def _executor_here(self) -> ThreadPoolExecutor:
        """This process's thread pool.

        A forked child (gunicorn forks the app its master built, after ``migdash
        demo`` probed there) inherits a pool whose threads exist only in the
        parent: work sent to it would never run.  The child starts its own, and
        leaves the parent's connections to the parent.
        """
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                self._executor = ThreadPoolExecutor(
                    max_workers=self._max_workers, thread_name_prefix="probe"
                )
                for db_engine in self._engines.values():
                    db_engine.dispose(close=False)
                self._engines = {}
            return self._executor

    def close(self) -> None:
        """Dispose every pool and stop the threads (pending probes are abandoned)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
        for db_engine in engines:
            db_engine.dispose()

    def _engine_for(self, url: str) -> Engine:
        with self._lock:
            db_engine = self._engines.get(url)
            if db_engine is None:
                db_engine = create_probe_engine(url, self.timeout)
                self._engines[url] = db_engine
            return db_engine

    def _discard(self, url: str) -> None:
        """Drop a pool after an error so a restarted server gets fresh connections."""
        with self._lock:
            db_engine = self._engines.pop(url, None)
        if db_engine is not None:
            db_engine.dispose()


def create_probe_engine(url: str, timeout: float = DEFAULT_TIMEOUT) -> Engine:
    """An Engine for probing *url*: read-only where possible, with bounded waits."""
    parsed = make_url(url)
    parsed, connect_args = _bounded_connect(parsed, timeout)
    kwargs: dict[str, Any] = {"connect_args": connect_args}
    if parsed.get_backend_name() != "sqlite":
        kwargs.update(pool_size=1, max_overflow=2, pool_timeout=timeout, pool_recycle=1800)
    return sa.create_engine(parsed, **kwargs)


def _bounded_connect(url: URL, timeout: float) -> tuple[URL, dict[str, Any]]:
    """Per-dialect connect and query time-outs, and SQLite opened read-only.

    Opening a missing SQLite file would silently create an empty database;
    ``mode=ro`` makes it an error instead, which is the honest answer.
    """
    backend = url.get_backend_name()
    seconds = max(1, round(timeout))
    if backend == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            url = url.set(
                database=f"file:{database}", query={**url.query, "mode": "ro", "uri": "true"}
            )
        return url, {"timeout": timeout}
    if backend == "postgresql":
        return url, {
            "connect_timeout": max(2, seconds),
            "options": f"-c statement_timeout={int(timeout * 1000)}",
        }
    if backend in {"mysql", "mariadb"}:
        args: dict[str, Any] = {
            "connect_timeout": seconds,
            "read_timeout": seconds,
            "write_timeout": seconds,
        }
        if url.host in LOOPBACK_HOSTS and url.get_driver_name() == "pymysql":
            args["ssl_disabled"] = (
                True  # ~25 ms per connect saved; TLS on loopback protects nothing
            )
        return url, args
    return url, {}


def _read_versions(
    connection: sa.Connection, table: VersionTable, secrets: list[str], started: float
) -> TargetProbe:
    sql = version_query(connection.dialect, table)
    try:
        rows = connection.exec_driver_sql(sql).scalars().all()
    except DBAPIError as exc:
        connection.rollback()
        if not sa.inspect(connection).has_table(table.name, schema=table.schema):
            return TargetProbe((), False, None, time.perf_counter() - started)
        return _failed(_describe(exc), secrets, started)
    return TargetProbe(tuple(sorted(rows)), True, None, time.perf_counter() - started)


def version_query(dialect: sa.Dialect, table: VersionTable) -> str:
    """``SELECT version_num FROM <table>``, quoted for *dialect* and rendered once.

    Each probe Engine has its own dialect instance and compiled cache, so a
    ``select()`` would be compiled again for every target; the rendered
    string is shared per dialect class instead.
    """
    key = (type(dialect), table)
    sql = _VERSION_QUERIES.get(key)
    if sql is None:
        versions = sa.table(table.name, sa.column("version_num"), schema=table.schema)
        sql = str(sa.select(versions.c.version_num).compile(dialect=dialect))
        _VERSION_QUERIES[key] = sql
    return sql


_VERSION_QUERIES: dict[tuple[type[sa.Dialect], VersionTable], str] = {}


def _failed(message: str, secrets: list[str], started: float) -> TargetProbe:
    return TargetProbe((), False, scrub_text(message, secrets), time.perf_counter() - started)


def _describe(exc: SQLAlchemyError) -> str:
    """The driver's own words, first line only, without SQLAlchemy's boilerplate."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()
    first = text[0] if text else type(original).__name__
    return f"{type(original).__name__}: {first}"
