"""The probe pool's held connections: bounded, closed when idle, replaced when stale.

SQLite files and a real PostgreSQL server; the server's own view
(``pg_stat_activity``) says whether a connection is really open or closed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa

from migdash.engine.probe import ProbePool, ProbeRequest, _bounded_connect, create_probe_engine
from migdash.engine.probe_conn import ProbeTarget, _pymysql_connection_class, open_target
from tests.conftest import migrate_to


def sessions_on(server_url: str, database: str) -> int:
    """How many sessions the server has open on *database* (besides this check's own)."""
    engine = sa.create_engine(server_url, poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        count = connection.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %(name)s",
            {"name": database},
        ).scalar_one()
    engine.dispose()
    return int(count)


def test_idle_connections_beyond_the_cap_and_past_their_time_are_closed(
    make_project: Callable[..., Any], make_target: Callable[..., str]
) -> None:
    project = make_project("linear")
    urls = [make_target(project, at=at) for at in ("a1", "b2", "c3", "a1")]
    pool = ProbePool(timeout=3.0, idle_seconds=0.3, max_idle=2)
    try:
        pool.probe_many([ProbeRequest(url) for url in urls])
        assert pool.held_connections() == 4

        pool.sweep()
        assert pool.held_connections() == 2  # the cap: the most recently used stay

        time.sleep(0.4)
        pool.sweep()
        assert pool.held_connections() == 0  # idle past idle_seconds

        results = pool.probe_many([ProbeRequest(url) for url in urls])
    finally:
        pool.close()
    assert [r.current for r in results] == [("a1",), ("b2",), ("c3",), ("a1",)]


def test_a_target_holds_one_connection_however_often_it_is_probed(
    make_project: Callable[..., Any], make_target: Callable[..., str]
) -> None:
    url = make_target(make_project("linear"), at="b2")
    pool = ProbePool(timeout=3.0)
    try:
        with ThreadPoolExecutor(max_workers=8) as threads:
            results = list(threads.map(pool.probe, [ProbeRequest(url)] * 200))
        held = pool.held_connections()
    finally:
        pool.close()
    assert {r.current for r in results} == {("b2",)}
    assert held == 1


@pytest.mark.server
def test_idle_postgres_connections_are_closed_on_the_server(
    postgres_server: str, postgres_url: str
) -> None:
    database = sa.make_url(postgres_url).database or ""
    pool = ProbePool(timeout=3.0, idle_seconds=0.2)
    try:
        assert pool.probe(ProbeRequest(postgres_url)).error is None
        assert sessions_on(postgres_server, database) == 1

        time.sleep(0.3)
        pool.sweep()

        assert sessions_on(postgres_server, database) == 0
        assert pool.probe(ProbeRequest(postgres_url)).error is None
    finally:
        pool.close()


@pytest.mark.server
def test_a_held_connection_the_server_ended_is_replaced_not_reported_unreachable(
    make_project: Callable[..., Any], postgres_server: str, postgres_url: str
) -> None:
    """A restarted server (or an idle time-out) ends held connections; the target is fine."""
    migrate_to(make_project("linear"), postgres_url, "b2")
    database = sa.make_url(postgres_url).database
    pool = ProbePool(timeout=3.0)
    try:
        assert pool.probe(ProbeRequest(postgres_url)).current == ("b2",)
        admin = sa.create_engine(postgres_server, poolclass=sa.pool.NullPool)
        with admin.connect() as connection:
            ended = connection.exec_driver_sql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %(name)s AND pid <> pg_backend_pid()",
                {"name": database},
            ).scalar_one()
        admin.dispose()
        assert ended == 1

        probe = pool.probe(ProbeRequest(postgres_url))
    finally:
        pool.close()
    assert probe.error is None
    assert probe.current == ("b2",)


@pytest.mark.server
def test_pymysql_builds_its_default_tls_context_once(mariadb_server: str) -> None:
    """PyMySQL's "TLS if offered" default built a CA-store context per connect (~26 ms)."""
    url = sa.make_url(mariadb_server)
    remote = open_target(
        "mysql+pymysql://app:pw@db.example.com/app", 3.0, create_probe_engine, _bounded_connect
    )
    assert isinstance(remote, ProbeTarget)
    connection_class = _pymysql_connection_class()
    assert remote._connect is connection_class  # no TLS option in the URL: the shared context

    server = {"host": url.host, "port": url.port or 3306, "user": url.username}
    first = connection_class(**server, password=url.password)
    second = connection_class(**server, password=url.password)
    try:
        assert first.ctx is second.ctx
    finally:
        first.close()
        second.close()
