"""Read a target's current revision(s) with one SELECT on a held connection, each on its own clock.

``alembic current`` builds a ``MigrationContext`` and checks ``has_table``
on every call; across a thousand databases that is most of the cost.  A
:class:`ProbePool` parses each target URL once (its secrets, its driver's
connect arguments, its rendered query) and keeps one idle DBAPI connection
per target, so a steady-state probe is a raw cursor's
``SELECT version_num FROM <version table>`` and little else: SQLAlchemy's
execution machinery and pool are not on that path.  The table's absence is
checked only when that SELECT fails.

Every connection is opened with the driver's own connect and statement
time-outs, and :meth:`ProbePool.probe_many` gives each target its own
deadline counted from when *its* probe started: a batch of any size, on a
machine however loaded, never calls a healthy target unreachable because
the targets before it were slow.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from migdash.engine.probe_conn import ProbeTarget, open_target

DEFAULT_TIMEOUT = 5.0
DEFAULT_IDLE_SECONDS = 300.0
"""An idle connection is closed after this long unused (longer than the overview's refresh)."""
DEFAULT_MAX_IDLE = 1000
"""At most this many idle connections are held per pool; the least recently used go first."""
DEADLINE_GRACE = 1.0
"""Added to the timeout for :meth:`ProbePool.probe_many`'s own per-target deadline."""
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


_POOLS: weakref.WeakSet[ProbePool] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for pool in list(_POOLS):
        pool._forget_parent()


os.register_at_fork(after_in_child=_after_fork_in_child)


class ProbePool:
    """Targets parsed once with one held connection each, plus threads for many at once.

    Bounded: a target holds at most one idle connection (a second concurrent
    probe of it opens one and closes it after), idle connections close after
    *idle_seconds*, and at most *max_idle* are held in all (per process): one
    process probing 500 PostgreSQL targets on 16 threads needs at most 516.
    """

    def __init__(
        self,
        timeout: float = DEFAULT_TIMEOUT,
        max_workers: int = 16,
        *,
        idle_seconds: float = DEFAULT_IDLE_SECONDS,
        max_idle: int = DEFAULT_MAX_IDLE,
    ) -> None:
        self.timeout = timeout
        self.idle_seconds = idle_seconds
        self.max_idle = max_idle
        self._targets: dict[str, ProbeTarget] = {}
        self._lock = threading.Lock()
        self._max_workers = max_workers
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="probe")
        self._pid = os.getpid()
        self._next_sweep = time.perf_counter() + self._sweep_every()
        self._inherited: list[dict[str, ProbeTarget]] = []
        _POOLS.add(self)

    def probe(self, request: ProbeRequest) -> TargetProbe:
        """Probe one target in this thread; failures come back with ``error`` set."""
        started = time.perf_counter()
        if started >= self._next_sweep:
            self._sweep(started)
        target = self._targets.get(request.url) or self._target_for(request.url)
        if isinstance(target, str):
            return TargetProbe((), False, target, time.perf_counter() - started)
        current, has_table, error = target.read(request.version_table, started)
        return TargetProbe(current, has_table, error, time.perf_counter() - started)

    def probe_many(self, requests: Sequence[ProbeRequest]) -> list[TargetProbe]:
        """Probe all *requests*; each is bounded on its own, never by the batch's length.

        Network targets go to the threads; SQLite files are read in this
        thread meanwhile (a thread hop costs more than their SELECT).  A probe
        still running ``timeout + 1`` s after it *started* is reported
        unreachable (the driver's own time-outs normally end it sooner).
        """
        executor = self._executor_here()
        results: list[TargetProbe | None] = [None] * len(requests)
        started_at: dict[int, float] = {}
        futures: list[tuple[int, Future[TargetProbe]]] = []
        local = []
        for index, request in enumerate(requests):
            if request.url.startswith("sqlite"):
                local.append(index)
            else:
                futures.append((index, executor.submit(self._timed, index, request, started_at)))
        for index in local:
            results[index] = self.probe(requests[index])
        for index, future in futures:
            results[index] = self._result(future, index, started_at)
        return [r for r in results if r is not None]

    def probe_as_completed(
        self, requests: Sequence[ProbeRequest], *, tick: float = 0.25
    ) -> Iterator[tuple[int, TargetProbe] | None]:
        """Yield ``(index, probe)`` as each target answers, and ``None`` after *tick* s of silence.

        For a caller that records results as they arrive (a page then shows
        them before the slowest target has answered); the ``None`` ticks let
        it flush what it holds.  Each target is bounded on its own, as in
        :meth:`probe_many`; SQLite files come first, read in this thread.
        """
        executor = self._executor_here()
        arrived: queue.SimpleQueue[tuple[int, TargetProbe]] = queue.SimpleQueue()
        started_at: dict[int, float] = {}
        pending: set[int] = set()
        local = []
        for index, request in enumerate(requests):
            if request.url.startswith("sqlite"):
                local.append(index)
                continue
            pending.add(index)
            future = executor.submit(self._timed, index, request, started_at)
            future.add_done_callback(partial(_deliver, arrived, index))
        for index in local:
            yield index, self.probe(requests[index])
        limit = self.timeout + DEADLINE_GRACE
        while pending:
            try:
                index, probe = arrived.get(timeout=tick)
            except queue.Empty:
                now = time.monotonic()
                for late in [i for i in pending if now - started_at.get(i, now) >= limit]:
                    pending.discard(late)
                    yield late, TargetProbe((), False, f"no answer within {limit:.0f} s", limit)
                yield None
                continue
            if index in pending:
                pending.discard(index)
                yield index, probe

    def _timed(
        self, index: int, request: ProbeRequest, started_at: dict[int, float]
    ) -> TargetProbe:
        started_at[index] = time.monotonic()
        return self.probe(request)

    def _result(
        self, future: Future[TargetProbe], index: int, started_at: dict[int, float]
    ) -> TargetProbe:
        """The probe's answer, or "no answer" once it has run longer than its own deadline."""
        limit = self.timeout + DEADLINE_GRACE
        while True:
            began = started_at.get(index)
            remaining = limit if began is None else began + limit - time.monotonic()
            try:
                return future.result(timeout=max(remaining, 0.0))
            except FutureTimeout:
                began = started_at.get(index)
                if began is not None and time.monotonic() - began >= limit:
                    return TargetProbe((), False, f"no answer within {limit:.0f} s", limit)

    def _executor_here(self) -> ThreadPoolExecutor:
        """This process's thread pool (a forked child starts its own: :meth:`_forget_parent`)."""
        if self._pid != os.getpid():
            self._forget_parent()
        return self._executor

    def _forget_parent(self) -> None:
        """After a fork: new threads, new connections; the parent's are kept, never used.

        A forked child (gunicorn forks the app its master built, after
        ``migdash demo`` probed there) inherits a thread pool whose threads
        exist only in the parent: work sent to it would never run.  Its
        connections share their sockets with the parent, so the child neither
        uses nor closes them (closing would end the parent's sessions).
        """
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(
            max_workers=self._max_workers, thread_name_prefix="probe"
        )
        self._inherited.append(self._targets)
        self._targets = {}

    def close(self) -> None:
        """Close every held connection and stop the threads (pending probes are abandoned)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            targets, self._targets = list(self._targets.values()), {}
        for target in targets:
            target.close()

    def _target_for(self, url: str) -> ProbeTarget | str:
        """The parsed target for *url*, or why it cannot be probed (an invalid URL)."""
        with self._lock:
            target = self._targets.get(url)
            if target is None:
                opened = open_target(url, self.timeout, create_probe_engine, _bounded_connect)
                if isinstance(opened, str):
                    return opened
                target = self._targets[url] = opened
            return target

    def held_connections(self) -> int:
        """Idle connections this pool holds open now (at most one per target)."""
        return sum(target.idle_count() for target in list(self._targets.values()))

    def sweep(self) -> None:
        """Close connections idle longer than *idle_seconds*, and the oldest beyond *max_idle*.

        Probes call this themselves every ``idle_seconds / 4`` (at least 1 s).
        """
        self._sweep(time.perf_counter())

    def _sweep_every(self) -> float:
        return max(1.0, self.idle_seconds / 4)

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + self._sweep_every()
        targets = list(self._targets.values())  # one C call: safe while others insert
        targets.sort(key=lambda t: t.last_used, reverse=True)
        held = 0
        for target in targets:
            if target.last_used < now - self.idle_seconds or held >= self.max_idle:
                target.close_idle()
            else:
                held += target.idle_count()


def _deliver(
    arrived: queue.SimpleQueue[tuple[int, TargetProbe]], index: int, future: Future[TargetProbe]
) -> None:
    if future.cancelled():  # the pool was closed meanwhile: an answer all the same
        arrived.put((index, TargetProbe((), False, "probe cancelled: the probe pool closed")))
        return
    problem = future.exception()
    if problem is None:
        arrived.put((index, future.result()))
    else:  # a bug, not an answer: still the page must not wait for ever
        arrived.put((index, TargetProbe((), False, f"probe failed: {type(problem).__name__}")))


def create_probe_engine(url: str, timeout: float = DEFAULT_TIMEOUT, **kwargs: Any) -> Engine:
    """An Engine for reading *url*: read-only where possible, with bounded waits."""
    parsed = make_url(url)
    parsed, connect_args = _bounded_connect(parsed, timeout)
    kwargs = {"connect_args": connect_args, **kwargs}
    if parsed.get_backend_name() != "sqlite" and "poolclass" not in kwargs:
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
