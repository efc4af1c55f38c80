"""A fleet probed cold on a loaded machine: a long batch never makes a healthy target unreachable.

Real PostgreSQL databases, reached through a loopback proxy that delays each
new connection (a remote server's latency, well under the probe time-out),
probed by a pool with two threads while other processes keep both cores
busy: the batch takes several time-outs, and every database must answer.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from migdash.engine.probe import ProbePool, ProbeRequest

FLEET_SIZE = 40
CONNECT_DELAY = 0.3
"""Seconds the proxy waits before connecting a client upstream: healthy, but not instant."""
TIMEOUT = 1.0


class LaggyProxy:
    """A TCP proxy on 127.0.0.1 that connects each client upstream after *delay* seconds."""

    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        self.upstream, self.delay = upstream, delay
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.port = int(self.listener.getsockname()[1])
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="proxy", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        time.sleep(self.delay)
        try:
            server = socket.create_connection(self.upstream)
        except OSError:
            client.close()
            return
        self.sockets += [client, server]
        threading.Thread(target=_pump, args=(server, client), daemon=True).start()
        _pump(client, server)

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            sock.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


@pytest.fixture
def fleet(postgres_server: str) -> Iterator[list[str]]:
    """FLEET_SIZE databases at revision "a1", copied from one template, dropped afterwards."""
    prefix = f"mdfleet_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    names = [f"{prefix}_{i:03d}" for i in range(FLEET_SIZE)]
    server = sa.make_url(postgres_server)
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {prefix}_base")
        base = sa.create_engine(server.set(database=f"{prefix}_base"))
        with base.begin() as connection:
            connection.exec_driver_sql(
                "CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"
            )
            connection.exec_driver_sql("INSERT INTO alembic_version VALUES ('a1')")
        base.dispose()
        with admin.connect() as connection:
            for name in names:
                connection.exec_driver_sql(f"CREATE DATABASE {name} TEMPLATE {prefix}_base")
        yield [server.set(database=n).render_as_string(hide_password=False) for n in names]
    finally:
        with ThreadPoolExecutor(max_workers=8) as dropping:  # each DROP waits on a checkpoint
            list(dropping.map(lambda name: _drop(admin, name), names))
        _drop(admin, f"{prefix}_base")
        admin.dispose()


def _drop(admin: sa.Engine, name: str) -> None:
    with admin.connect() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def busy_machine() -> Iterator[None]:
    """Two processes spinning on the CPU for as long as the test runs."""
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])  # noqa: S603
        for _ in range(2)
    ]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


@pytest.mark.server
def test_a_long_cold_batch_on_a_loaded_machine_reports_every_healthy_target_reachable(
    fleet: list[str], busy_machine: None
) -> None:
    first = sa.make_url(fleet[0])
    proxy = LaggyProxy((first.host or "127.0.0.1", first.port or 5432), CONNECT_DELAY)
    urls = [
        sa.make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        for url in fleet
    ]
    pool = ProbePool(timeout=TIMEOUT, max_workers=2)
    try:
        started = time.monotonic()
        results = pool.probe_many([ProbeRequest(url) for url in urls])
        elapsed = time.monotonic() - started
    finally:
        pool.close()
        proxy.close()

    # Every database answered, with its revision ...
    assert [r.error for r in results if r.error] == []
    assert [r.current for r in results] == [("a1",)] * FLEET_SIZE
    # ... though the batch ran well past any one target's deadline (time-out + 1 s).
    assert elapsed > 2 * (TIMEOUT + 1)
