"""Probing real databases: SQLite files, PostgreSQL and MariaDB servers, dead and silent ports.

Every target here is a real database migrated by Alembic itself, or a real
socket on 127.0.0.1 that refuses or swallows connections.  Only loopback
addresses are used.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
import sqlalchemy as sa
from alembic import command

from migdash.engine.probe import ProbePool, ProbeRequest, TargetProbe, VersionTable
from tests.conftest import migrate_to

PLANTED = "S3cr3t-pl4nted"

CUSTOM_VERSION_TABLE_ENV = '''"""env.py keeping its version table where config.attributes says."""
from alembic import context

config = context.config
context.configure(
    connection=config.attributes["connection"],
    version_table=config.attributes["version_table"],
    version_table_schema=config.attributes.get("version_table_schema"),
)
with context.begin_transaction():
    context.run_migrations()
'''


def migrate_with_version_table(project: Any, url: str, at: str, table: VersionTable) -> None:
    """``alembic upgrade`` *url* to *at*, with the version table named and placed as *table*."""
    (project.location / "env.py").write_text(CUSTOM_VERSION_TABLE_ENV)
    db_engine = sa.create_engine(url)
    with db_engine.begin() as connection:
        if table.schema:
            connection.exec_driver_sql(f"CREATE SCHEMA {table.schema}")
        config = project.alembic_config()
        config.attributes.update(
            connection=connection, version_table=table.name, version_table_schema=table.schema
        )
        command.upgrade(config, at)
    db_engine.dispose()


def unused_port() -> int:
    """A loopback port nothing listens on: bind it, note it, close it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_password(url: str, password: str) -> str:
    return sa.make_url(url).set(password=password).render_as_string(hide_password=False)


def assert_at(probe: TargetProbe, *revisions: str) -> None:
    assert probe.error is None, probe.error
    assert probe.reachable
    assert probe.has_version_table
    assert probe.current == tuple(sorted(revisions))


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that accepts every connection and never says a word."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def swallow() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(connection)

    thread = threading.Thread(target=swallow, name="blackhole", daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join(timeout=2)
    for connection in accepted:
        connection.close()
    listener.close()


# --- SQLite ---------------------------------------------------------------------------------


def test_sqlite_at_head(
    make_project: Callable[..., Any], make_target: Callable[..., str], probes: ProbePool
) -> None:
    project = make_project("linear")

    assert_at(probes.probe(ProbeRequest(make_target(project, at="heads"))), "c3")


def test_sqlite_behind(
    make_project: Callable[..., Any], make_target: Callable[..., str], probes: ProbePool
) -> None:
    project = make_project("linear")

    assert_at(probes.probe(ProbeRequest(make_target(project, at="a1"))), "a1")


def test_sqlite_at_both_heads(
    make_project: Callable[..., Any], make_target: Callable[..., str], probes: ProbePool
) -> None:
    project = make_project("two_heads")

    assert_at(probes.probe(ProbeRequest(make_target(project, at="heads"))), "c3", "d4")


def test_sqlite_without_version_table_is_uninitialised(
    make_project: Callable[..., Any], make_target: Callable[..., str], probes: ProbePool
) -> None:
    project = make_project("linear")

    probe = probes.probe(ProbeRequest(make_target(project, at=None)))

    assert probe.error is None
    assert probe.has_version_table is False
    assert probe.current == ()


def test_sqlite_at_base_has_an_empty_version_table(
    make_project: Callable[..., Any], make_target: Callable[..., str], probes: ProbePool
) -> None:
    project = make_project("linear")
    url = make_target(project, at="heads")
    db_engine = sa.create_engine(url)
    with db_engine.begin() as connection:
        config = project.alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    db_engine.dispose()

    probe = probes.probe(ProbeRequest(url))

    assert probe.error is None
    assert probe.has_version_table is True
    assert probe.current == ()


@pytest.mark.parametrize("where", ["missing.db", "no_such_dir/missing.db"])
def test_missing_sqlite_file_is_unreachable_and_not_created(
    tmp_path: Path, where: str, probes: ProbePool
) -> None:
    path = tmp_path / where

    probe = probes.probe(ProbeRequest(f"sqlite:///{path}"))

    assert probe.error
    assert not probe.reachable
    assert probe.current == ()
    assert not path.exists()
    assert not path.parent.exists() or list(path.parent.iterdir()) == []


def test_sqlite_custom_version_table_name(
    make_project: Callable[..., Any], tmp_path: Path, probes: ProbePool
) -> None:
    project = make_project("linear")
    url = f"sqlite:///{tmp_path / 'custom.db'}"
    migrate_with_version_table(project, url, "b2", VersionTable("deploy_versions"))

    assert_at(probes.probe(ProbeRequest(url, VersionTable("deploy_versions"))), "b2")
    default = probes.probe(ProbeRequest(url))
    assert default.error is None
    assert default.has_version_table is False


def test_probe_reads_the_database_afresh_each_time(
    make_project: Callable[..., Any], make_target: Callable[..., str], probes: ProbePool
) -> None:
    """Pooled connections, not cached answers: an upgrade shows up on the next probe."""
    project = make_project("linear")
    url = make_target(project, at="a1")
    assert_at(probes.probe(ProbeRequest(url)), "a1")

    migrate_to(project, url, "c3")

    assert_at(probes.probe(ProbeRequest(url)), "c3")


def test_probe_many_keeps_request_order(
    make_project: Callable[..., Any], make_target: Callable[..., str], probes: ProbePool
) -> None:
    project = make_project("linear")
    positions = ["c3", None, "a1", "b2", "c3", "a1"]
    urls = [make_target(project, at=at) for at in positions]

    results = probes.probe_many([ProbeRequest(url) for url in urls])

    assert [r.current for r in results] == [(at,) if at else () for at in positions]
    assert [r.has_version_table for r in results] == [at is not None for at in positions]


def test_probe_many_works_in_a_forked_child_of_a_process_that_probed(
    make_project: Callable[..., Any], make_target: Callable[..., str], probes: ProbePool
) -> None:
    """gunicorn forks the app its master built; the pool's threads do not survive the fork."""
    project = make_project("linear")
    url = make_target(project, at="b2")
    assert_at(probes.probe_many([ProbeRequest(url)])[0], "b2")  # the parent's threads start
    read, write = os.pipe()

    with warnings.catch_warnings():  # Python 3.12 warns on fork() in a threaded process
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: report what probe_many answers, then leave at once
        try:
            (probe,) = probes.probe_many([ProbeRequest(url)])
            os.write(write, repr((probe.current, probe.error)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        reported = answer.read()
    os.waitpid(pid, 0)

    assert reported == repr((("b2",), None))


# --- real servers ---------------------------------------------------------------------------


@pytest.mark.server
def test_postgres_at_both_heads(
    make_project: Callable[..., Any], postgres_url: str, probes: ProbePool
) -> None:
    project = make_project("two_heads")
    migrate_to(project, postgres_url, "heads")

    assert_at(probes.probe(ProbeRequest(postgres_url)), "c3", "d4")


@pytest.mark.server
def test_postgres_uninitialised(postgres_url: str, probes: ProbePool) -> None:
    probe = probes.probe(ProbeRequest(postgres_url))

    assert probe.error is None
    assert probe.has_version_table is False
    assert probe.current == ()


@pytest.mark.server
def test_postgres_custom_version_table_schema(
    make_project: Callable[..., Any], postgres_url: str, probes: ProbePool
) -> None:
    project = make_project("linear")
    table = VersionTable("deploy_versions", schema="meta")
    migrate_with_version_table(project, postgres_url, "b2", table)

    assert_at(probes.probe(ProbeRequest(postgres_url, table)), "b2")
    # The same table name looked for in the default schema is simply not there.
    elsewhere = probes.probe(ProbeRequest(postgres_url, VersionTable("deploy_versions")))
    assert elsewhere.error is None
    assert elsewhere.has_version_table is False


@pytest.mark.server
def test_mariadb_probed_for_real(
    make_project: Callable[..., Any], mariadb_url: str, probes: ProbePool
) -> None:
    project = make_project("merged")
    probe = probes.probe(ProbeRequest(mariadb_url))
    assert probe.error is None
    assert probe.has_version_table is False

    migrate_to(project, mariadb_url, "c3")
    assert_at(probes.probe(ProbeRequest(mariadb_url)), "c3")

    migrate_to(project, mariadb_url, "heads")
    assert_at(probes.probe(ProbeRequest(mariadb_url)), "f6")


@pytest.mark.server
@pytest.mark.parametrize("server", ["postgres", "mariadb"])
def test_wrong_password_is_unreachable_and_never_echoed(
    request: pytest.FixtureRequest, server: str, probes: ProbePool
) -> None:
    url = request.getfixturevalue(f"{server}_server")
    wrong = with_password(url, PLANTED)

    probe = probes.probe(ProbeRequest(wrong))

    assert probe.error
    assert not probe.reachable
    assert PLANTED not in probe.error
    assert quote_plus(PLANTED) not in probe.error
    assert "password" in probe.error.lower() or "access denied" in probe.error.lower()


# --- dead and silent hosts ------------------------------------------------------------------

DIALECT_URLS = {
    "postgresql": "postgresql+psycopg://app:{password}@127.0.0.1:{port}/app",
    "mysql": "mysql+pymysql://app:{password}@127.0.0.1:{port}/app",
}


@pytest.mark.parametrize("dialect", sorted(DIALECT_URLS))
def test_closed_port_fails_fast(dialect: str, probes: ProbePool) -> None:
    url = DIALECT_URLS[dialect].format(password=PLANTED, port=unused_port())

    started = time.monotonic()
    probe = probes.probe(ProbeRequest(url))
    elapsed = time.monotonic() - started

    assert probe.error
    assert elapsed < 2.0
    assert "refused" in probe.error.lower() or "can't connect" in probe.error.lower()
    assert PLANTED not in probe.error


@pytest.mark.parametrize("dialect", sorted(DIALECT_URLS))
def test_blackhole_is_unreachable_on_time_and_others_still_answer(
    dialect: str,
    blackhole: int,
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
) -> None:
    project = make_project("linear")
    head = make_target(project, at="heads")
    behind = make_target(project, at="a1")
    fresh = make_target(project, at=None)
    silent = DIALECT_URLS[dialect].format(password=PLANTED, port=blackhole)
    pool = ProbePool(timeout=2)
    try:
        started = time.monotonic()
        results = pool.probe_many(
            [ProbeRequest(head), ProbeRequest(silent), ProbeRequest(behind), ProbeRequest(fresh)]
        )
        elapsed = time.monotonic() - started
    finally:
        pool.close()

    assert elapsed < 2 + 2
    head_probe, silent_probe, behind_probe, fresh_probe = results
    assert silent_probe.error
    assert not silent_probe.reachable
    assert PLANTED not in silent_probe.error
    assert_at(head_probe, "c3")
    assert_at(behind_probe, "a1")
    assert fresh_probe.error is None
    assert fresh_probe.has_version_table is False


@pytest.mark.parametrize("dialect", sorted(DIALECT_URLS))
def test_single_probe_of_a_blackhole_is_bounded_by_the_driver(dialect: str, blackhole: int) -> None:
    """Without probe_many's deadline, the driver's own time-outs must end the wait."""
    pool = ProbePool(timeout=2)
    try:
        started = time.monotonic()
        probe = pool.probe(
            ProbeRequest(DIALECT_URLS[dialect].format(password=PLANTED, port=blackhole))
        )
        elapsed = time.monotonic() - started
    finally:
        pool.close()

    assert probe.error
    assert PLANTED not in probe.error
    assert elapsed < 2 + 2


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://app:{PLANTED}@127.0.0.1:notaport/app",
        f"nosuchdialect://app:{PLANTED}@127.0.0.1/app",
        f"postgresql+nosuchdriver://app:{PLANTED}@127.0.0.1/app",
        f"mysql+pymysql://app:{quote_plus(PLANTED + '@/:')}@127.0.0.1:{{port}}/app",
    ],
)
def test_bad_urls_are_reported_without_the_password(url: str, probes: ProbePool) -> None:
    probe = probes.probe(ProbeRequest(url.replace("{port}", str(unused_port()))))

    assert probe.error
    assert not probe.reachable
    assert PLANTED not in probe.error
