"""Shared fixtures: the app, its client and CLI runner, and factories for real Alembic projects.

Factories return callables (Indico style): ``make_project(shape="merged")``
writes real revision files, ``make_target(project, at=...)`` makes a SQLite
database at a revision by running Alembic's own ``upgrade``.  Server
fixtures take their URLs from ``MIGDASH_TEST_*`` (``./dev test`` sets them),
skip locally with the reason, and fail under ``CI=true``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.config import Config
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from migdash import create_app
from migdash.config import ensure_instance
from migdash.scaffold import RevisionSpec, migrate_database, write_project
from migdash.services import services_of
from migdash.store.models import Role
from migdash.store.users import create_user

SHAPES: dict[str, list[RevisionSpec]] = {
    "linear": [
        RevisionSpec("a1", None, "create accounts", table="accounts"),
        RevisionSpec("b2", "a1", "create orders", table="orders"),
        RevisionSpec("c3", "b2", "create items", table="items"),
    ],
    "two_heads": [
        RevisionSpec("a1", None, "create accounts", table="accounts"),
        RevisionSpec("b2", "a1", "create orders", table="orders"),
        RevisionSpec("c3", "b2", "left branch", table="lefty"),
        RevisionSpec("d4", "b2", "right branch", table="righty"),
    ],
    "merged": [
        RevisionSpec("a1", None, "create accounts", table="accounts"),
        RevisionSpec("b2", "a1", "create orders", table="orders"),
        RevisionSpec("c3", "b2", "left branch", table="lefty"),
        RevisionSpec("d4", "b2", "right branch", table="righty"),
        RevisionSpec("e5", ("c3", "d4"), "merge left and right"),
        RevisionSpec("f6", "e5", "after the merge", table="after_merge"),
    ],
    "labels": [
        RevisionSpec("a1", None, "create accounts", table="accounts"),
        RevisionSpec("b2", "a1", "create orders", table="orders", branch_labels=("orders",)),
        RevisionSpec("c3", "b2", "order lines", table="order_lines"),
        RevisionSpec("x1", None, "separate base", table="audit", branch_labels=("audit",)),
        RevisionSpec("x2", "x1", "audit index", table="audit2"),
    ],
    "depends": [
        RevisionSpec("a1", None, "create accounts", table="accounts"),
        RevisionSpec("b2", "a1", "create orders", table="orders"),
        RevisionSpec("x1", None, "separate base", table="audit", branch_labels=("audit",)),
        RevisionSpec("x2", "x1", "audit needs orders", table="audit2", depends_on=("b2",)),
    ],
}


@dataclass(frozen=True)
class ProjectFixture:
    name: str
    location: Path
    revisions: tuple[RevisionSpec, ...]

    def alembic_config(self, url: str | None = None) -> Config:
        config = Config()
        config.set_main_option("script_location", str(self.location))
        if url:
            config.set_main_option("sqlalchemy.url", url)
        return config


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., ProjectFixture]:
    """Write a real Alembic project; *shape* is a key of SHAPES or a list of RevisionSpec."""
    counter = iter(range(1000))

    def factory(
        shape: str | list[RevisionSpec] = "linear", name: str | None = None
    ) -> ProjectFixture:
        revisions = SHAPES[shape] if isinstance(shape, str) else shape
        name = name or (shape if isinstance(shape, str) else f"custom{next(counter)}")
        location = tmp_path / "projects" / name
        write_project(location, revisions)
        return ProjectFixture(name, location, tuple(revisions))

    return factory


@pytest.fixture
def make_target(tmp_path: Path) -> Callable[..., str]:
    """A SQLite database for *project* at revision *at* (``None``: no version table at all)."""

    def factory(project: ProjectFixture, at: str | None = "heads", name: str | None = None) -> str:
        path = tmp_path / "dbs" / f"{name or uuid.uuid4().hex[:8]}.db"
        path.parent.mkdir(exist_ok=True)
        url = f"sqlite:///{path}"
        migrate_to(project, url, at)
        return url

    return factory


def alive(pid: int) -> bool:
    """Linux: *pid* is running (a zombie, exited but not yet reaped, has an empty command line)."""
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())
    except OSError:
        return False


def migrate_to(project: ProjectFixture, url: str, at: str | None) -> None:
    """Create the database file and, unless *at* is None, ``alembic upgrade`` it to *at*."""
    migrate_database(project.location, url, at)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    ensure_instance(tmp_path / "instance")  # the encryption key every app on it shares
    app = create_app(
        {
            "TESTING": True,
            "MIGDASH_INSTANCE": str(tmp_path / "instance"),
            "MIGDASH_SECRET_KEY": "test-secret-key",
            "MIGDASH_PROBE_TIMEOUT": 3.0,
            "WTF_CSRF_ENABLED": False,
        }
    )
    (tmp_path / "instance").mkdir(exist_ok=True)
    services_of(app).upgrade_schema()
    yield app
    services_of(app).probes.close()
    services_of(app).db_engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def db_session(app: Flask) -> Iterator[Any]:
    with services_of(app).sessions() as session:
        yield session


@pytest.fixture
def login(app: Flask, client: FlaskClient) -> Callable[..., FlaskClient]:
    """Create a user with *role* and sign the client in as them."""

    def factory(role: Role | str = Role.ADMIN, username: str | None = None) -> FlaskClient:
        username = username or f"user-{Role(role).value}"
        with services_of(app).sessions() as session:
            create_user(session, username, "correct-horse", Role(role))
            session.commit()
        response = client.post("/login", data={"username": username, "password": "correct-horse"})
        assert response.status_code == 302, response.data
        return client

    return factory


# --- real servers ---------------------------------------------------------------------------


def _server_url(variable: str, what: str) -> str:
    url = os.environ.get(variable)
    problem = None
    if not url:
        problem = f"{variable} is not set (./dev test starts {what} and sets it)"
    else:
        try:
            db_engine = sa.create_engine(url)
            with db_engine.connect():
                pass
            db_engine.dispose()
        except Exception as exc:  # noqa: BLE001 - any failure means the server is not usable
            problem = f"{what} at {variable} is not reachable: {exc}"
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {problem}")
        pytest.skip(problem)
    assert url is not None
    return url


@pytest.fixture(scope="session")
def postgres_server() -> str:
    return _server_url("MIGDASH_TEST_POSTGRES_URL", "PostgreSQL")


@pytest.fixture(scope="session")
def mariadb_server() -> str:
    return _server_url("MIGDASH_TEST_MARIADB_URL", "MariaDB")


def _fresh_database(server_url: str) -> Iterator[str]:
    """CREATE a uniquely named database on the server, yield its URL, DROP it afterwards."""
    name = f"mdtest_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    url = sa.engine.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as connection:
            if admin.dialect.name == "postgresql":
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            else:
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    yield from _fresh_database(postgres_server)


@pytest.fixture
def mariadb_url(mariadb_server: str) -> Iterator[str]:
    yield from _fresh_database(mariadb_server)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``--dist loadgroup``) the browser tests share one worker and one demo."""
    for item in items:
        if item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.xdist_group("e2e"))
