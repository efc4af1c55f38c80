"""One probed target: its URL parsed once, and the one idle DBAPI connection it keeps.

Split from :mod:`migdash.engine.probe` so the hot path is visible on one
screen: :meth:`ProbeTarget.read` pops the held connection, runs the rendered
``SELECT`` on a raw cursor and puts the connection back.  Everything that
costs more (URL parsing, secret spellings, the driver's connect arguments,
compiling the query, SQLAlchemy's ``has_table``) happens once per target or
only when the SELECT fails.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from migdash.engine.scrub import mask_url, scrub_text, url_secrets

if TYPE_CHECKING:
    from migdash.engine.probe import VersionTable

AUTOCOMMIT_BACKENDS = frozenset({"postgresql", "mysql", "mariadb", "sqlite"})
"""Backends whose SQLAlchemy dialect can switch a raw connection to autocommit.

A held connection must not sit in an open transaction: MySQL's repeatable
read would answer every later probe from the first one's snapshot, and an
idle-in-transaction PostgreSQL session holds back vacuum.  Other backends
roll back after each read instead.
"""

ReadResult = tuple[tuple[str, ...], bool, "str | None"]


class ProbeTarget:
    """A target URL parsed once: secrets, connect arguments, queries and an idle connection."""

    def __init__(
        self,
        url: str,
        dialect: sa.Dialect,
        connect_args: tuple[Any, Mapping[str, Any]],
        secrets: list[str],
        checker: Callable[[], Engine],
    ) -> None:
        self.url = url
        self.secrets = secrets
        self.last_used = 0.0
        self._dialect = dialect  # shared by every target of its driver
        self._errors: tuple[type[BaseException], ...] = (dialect.loaded_dbapi.Error, OSError)
        self._cargs, self._cparams = connect_args
        self._connect: Callable[..., Any] = _connect_function(dialect, self._cparams)
        self._autocommit = dialect.name in AUTOCOMMIT_BACKENDS
        self._make_checker = checker
        self._checker: Engine | None = None
        """Only for ``has_table`` after a failed SELECT; built then, and holds no connection."""
        self._queries: dict[VersionTable, str] = {}
        self._idle: list[Any] = []

    def read(self, table: VersionTable, now: float) -> ReadResult:
        """The version table's rows; a stale held connection gets one fresh retry."""
        sql = self._queries.get(table) or self._query(table)
        for attempt in (1, 2):
            connection = self._take()
            reused = connection is not None
            try:
                if connection is None:
                    connection = self._open()
                rows = _select(connection, sql)
                if not self._autocommit:
                    connection.rollback()
            except self._errors as exc:
                if connection is None:  # could not connect
                    return (), False, self._scrub(exc)
                if not self._is_disconnect(exc, connection):
                    return self._unreadable(connection, exc, table, now)
                _close_quietly(connection)
                if reused and attempt == 1:
                    continue
                return (), False, self._scrub(exc)
            self._checkin(connection, now)
            return tuple(sorted([row[0] for row in rows])), True, None
        raise AssertionError("unreachable")  # pragma: no cover

    def _unreadable(
        self, connection: Any, exc: BaseException, table: VersionTable, now: float
    ) -> ReadResult:
        """The SELECT failed on a live connection: is the table missing, or is it an error?"""
        try:
            connection.rollback()
        except self._errors:
            _close_quietly(connection)
        else:
            self._checkin(connection, now)
        try:
            if self._checker is None:
                self._checker = self._make_checker()
            with self._checker.connect() as checking:
                exists = sa.inspect(checking).has_table(table.name, schema=table.schema)
        except SQLAlchemyError as problem:
            return (), False, self._scrub(problem)
        if not exists:
            return (), False, None
        return (), False, self._scrub(exc)

    def _take(self) -> Any:
        try:
            return self._idle.pop()
        except IndexError:
            return None

    def _open(self) -> Any:
        connection = self._connect(*self._cargs, **self._cparams)
        if self._autocommit:
            try:
                self._dialect.set_isolation_level(connection, "AUTOCOMMIT")
            except BaseException:
                _close_quietly(connection)
                raise
        return connection

    def _checkin(self, connection: Any, now: float) -> None:
        """Hold *connection* for the next probe; beyond one held, close the extras."""
        self.last_used = now
        self._idle.append(connection)
        while len(self._idle) > 1:  # concurrent probes of one target each opened one
            try:
                _close_quietly(self._idle.pop())
            except IndexError:
                return

    def _is_disconnect(self, exc: BaseException, connection: Any) -> bool:
        if isinstance(exc, OSError):
            return True
        return bool(self._dialect.is_disconnect(exc, connection, None))  # type: ignore[arg-type]

    def _query(self, table: VersionTable) -> str:
        from migdash.engine.probe import version_query

        sql = self._queries[table] = version_query(self._dialect, table)
        return sql

    def _scrub(self, exc: BaseException) -> str:
        return scrub_text(describe(exc), self.secrets)

    def idle_count(self) -> int:
        return len(self._idle)

    def close_idle(self) -> None:
        """Close the held connection (a later probe opens a new one)."""
        while self._idle:
            try:
                connection = self._idle.pop()
            except IndexError:
                return
            _close_quietly(connection)

    def close(self) -> None:
        self.close_idle()
        if self._checker is not None:
            self._checker.dispose()


def open_target(
    url: str,
    timeout: float,
    create_engine: Callable[..., Engine],
    bounded_connect: Callable[[URL, float], tuple[URL, dict[str, Any]]],
) -> ProbeTarget | str:
    """Parse *url* once for probing, or say (secrets scrubbed) why it is not a usable URL.

    Building an Engine costs ~0.4 ms, as much as a cold connect's share of
    a batch, so targets share one dialect per driver; only the driver's
    connect arguments are worked out per target (as ``create_engine`` would).
    """
    secrets = url_secrets(url)
    try:
        parsed, connect_args = bounded_connect(make_url(url), timeout)
        dialect = _shared_dialect(parsed)
        cargs, cparams = dialect.create_connect_args(parsed)
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        return scrub_text(f"invalid URL {mask_url(url)}: {exc}", secrets)
    cparams.update(connect_args)
    return ProbeTarget(
        url,
        dialect,
        (cargs, cparams),
        secrets,
        lambda: create_engine(url, timeout, poolclass=NullPool),
    )


_DIALECTS: dict[str, sa.Dialect] = {}


def _shared_dialect(url: URL) -> sa.Dialect:
    """One dialect per driver name, from an Engine that never connects."""
    dialect = _DIALECTS.get(url.drivername)
    if dialect is None:
        with _LOCK:
            engine = sa.create_engine(url, poolclass=NullPool)
            dialect = _DIALECTS.setdefault(url.drivername, engine.dialect)
    return dialect


def describe(exc: BaseException) -> str:
    """The driver's own words, first line only, without SQLAlchemy's boilerplate."""
    original = getattr(exc, "orig", None) or exc
    if isinstance(original, OSError) and not hasattr(exc, "orig"):
        return f"{type(original).__name__}: {original}"
    text = str(original).strip().splitlines()
    first = text[0] if text else type(original).__name__
    return f"{type(original).__name__}: {first}"


def _select(connection: Any, sql: str) -> list[Any]:
    cursor = connection.cursor()
    try:
        cursor.execute(sql)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _close_quietly(connection: Any) -> None:
    with contextlib.suppress(Exception):  # a broken connection is being thrown away anyway
        connection.close()


_SSL_KEYS = ("ssl", "ssl_ca", "ssl_cert", "ssl_key", "ssl_verify_cert", "ssl_verify_identity")


def _connect_function(dialect: sa.Dialect, cparams: Mapping[str, Any]) -> Callable[..., Any]:
    """The driver's connect; for PyMySQL's default "TLS if offered", one shared TLS context.

    PyMySQL builds a fresh ``ssl.create_default_context()`` (reading the
    system's CA store) on every connect when no TLS option is given: ~26 ms
    of a 33 ms check.  The context it builds is always the same
    (no CA, so no hostname or certificate check), so it is built once.
    """
    connect: Callable[..., Any] = dialect.connect
    if dialect.driver != "pymysql" or cparams.get("ssl_disabled"):
        return connect
    if any(cparams.get(key) for key in _SSL_KEYS):
        return connect
    connect = _pymysql_connection_class()
    return connect


_PYMYSQL_CLASS: list[Any] = []
_LOCK = threading.Lock()


def _pymysql_connection_class() -> Any:
    with _LOCK:
        if not _PYMYSQL_CLASS:
            from pymysql.connections import Connection

            shared: list[ssl.SSLContext] = []

            class SharedTLSContextConnection(Connection):  # type: ignore[misc]
                def _create_ssl_ctx(self, sslp: Any) -> ssl.SSLContext:
                    if sslp != {}:
                        return super()._create_ssl_ctx(sslp)  # type: ignore[no-any-return]
                    with _LOCK:
                        if not shared:
                            shared.append(super()._create_ssl_ctx({}))
                        return shared[0]

            _PYMYSQL_CLASS.append(SharedTLSContextConnection)
        connect: Callable[..., Any] = _PYMYSQL_CLASS[0]
        return connect
