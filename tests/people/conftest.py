"""Fixtures for the people suite: users, signed-in clients, tokens, protected environments.

Everything goes through the real paths: users and tokens through
``migdash.store`` (what ``migdash user``/``token`` call), requests through the
web test client or the API with a Bearer token, queued jobs through an
in-process :class:`~migdash.jobs.worker.Worker` draining the app's own Huey
queue, and the audit trail read back from the metadata database.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from werkzeug.test import TestResponse

from migdash.cli import main
from migdash.errors import NotFound
from migdash.jobs.consumer import build_worker
from migdash.jobs.records import job_log
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import AuditEvent, Job, Role, utcnow
from migdash.store.tokens import create_token
from migdash.store.users import create_user, get_user

PASSWORD = "correct-horse"  # noqa: S105 - test users only


# --- the CLI ------------------------------------------------------------------------------


@pytest.fixture
def cli(runner: FlaskCliRunner) -> Callable[..., Result]:
    """Run ``migdash ARGS`` against the test app; by default insist on exit code 0."""

    def invoke(*args: str, ok: bool = True) -> Result:
        result = runner.invoke(main, list(args))
        if ok:
            assert result.exit_code == 0, (result.output, result.exception)
        return result

    return invoke


@pytest.fixture
def cli_json(cli: Callable[..., Result]) -> Callable[..., Any]:
    def invoke(*args: str) -> Any:
        return json.loads(cli(*args, "--json").stdout)

    return invoke


# --- people -------------------------------------------------------------------------------


@pytest.fixture
def make_user(app: Flask) -> Callable[..., str]:
    """Create a user with *role* and the password ``correct-horse``; returns the username."""

    def factory(username: str, role: Role | str = Role.VIEWER) -> str:
        with services_of(app).sessions() as session:
            create_user(session, username, PASSWORD, Role(role))
            session.commit()
        return username

    return factory


@pytest.fixture
def sign_in(app: Flask) -> Callable[[str], FlaskClient]:
    """A fresh test client (its own cookie jar) signed in as *username*."""

    def factory(username: str) -> FlaskClient:
        client = app.test_client()
        response = client.post("/login", data={"username": username, "password": PASSWORD})
        assert response.status_code == 302, response.get_data(as_text=True)
        return client

    return factory


@pytest.fixture
def make_token(app: Flask) -> Callable[[str], str]:
    """A new API token for *username*; returns the plaintext (shown once, as the CLI does)."""

    def factory(username: str) -> str:
        with services_of(app).sessions() as session:
            plaintext, _ = create_token(session, get_user(session, username), "tests", utcnow())
            session.commit()
        return plaintext

    return factory


@pytest.fixture
def api(app: Flask) -> Callable[..., TestResponse]:
    """Call ``/api/v1`` with a Bearer token: ``api("GET", "/status", token)``.

    Its own client, which never signs in: no cookie can stand in for the token.
    """
    client = app.test_client()

    def call(method: str, path: str, token: str | None, body: Any = None) -> TestResponse:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return client.open(f"/api/v1{path}", method=method, headers=headers, json=body)

    return call


# --- the registry -------------------------------------------------------------------------


@pytest.fixture
def add_environment(app: Flask) -> Callable[..., None]:
    def factory(name: str, *, protected: bool = False, required_approvals: int = 1) -> None:
        with services_of(app).sessions() as session:
            registry.add_environment(
                session, name, protected=protected, required_approvals=required_approvals
            )
            session.commit()

    return factory


@pytest.fixture
def add_target(app: Flask, make_target: Callable[..., str]) -> Callable[..., str]:
    """Register *project* (once) and a target in *environment*; a SQLite DB at *at* unless *url*."""

    def factory(
        project: Any, name: str, environment: str, *, at: str | None = "a1", url: str | None = None
    ) -> str:
        url = url or make_target(project, at=at, name=name)
        with services_of(app).sessions() as session:
            try:
                registry.get_project(session, project.name)
            except NotFound:  # the project's first target
                registry.add_project(session, project.name, str(project.location))
            registry.add_target(
                session, name, project=project.name, environment=environment, url=url
            )
            session.commit()
        return url

    return factory


# --- jobs and the audit trail -------------------------------------------------------------


@pytest.fixture
def run_queue(app: Flask) -> Callable[[], int]:
    """Execute every message in the app's Huey queue with an in-process Worker; count them."""
    services = services_of(app)
    build_worker(services)

    def drain() -> int:
        huey = services.queue.huey
        executed = 0
        while (task := huey.dequeue()) is not None:
            huey.execute(task)
            executed += 1
        return executed

    return drain


@pytest.fixture
def load_job(app: Flask) -> Callable[[int], Job]:
    def load(job_id: int) -> Job:
        with services_of(app).sessions() as session:
            job = session.get(Job, job_id)
            assert job is not None, f"no job {job_id}"
            return job

    return load


@pytest.fixture
def log_lines(app: Flask) -> Callable[[int], list[str]]:
    def read(job_id: int) -> list[str]:
        with services_of(app).sessions() as session:
            return [line.line for line in job_log(session, job_id)]

    return read


@pytest.fixture
def audit_events(app: Flask) -> Callable[..., list[AuditEvent]]:
    """Audit events in the order they were recorded, optionally only *action* ones."""

    def read(action: str | None = None, job_id: int | None = None) -> list[AuditEvent]:
        query = sa.select(AuditEvent).order_by(AuditEvent.id)
        if action:
            query = query.where(AuditEvent.action == action)
        if job_id is not None:
            query = query.where(AuditEvent.job_id == job_id)
        with services_of(app).sessions() as session:
            return list(session.scalars(query))

    return read


@pytest.fixture
def instance_bytes(app: Flask) -> Callable[[], bytes]:
    """Every byte of every file in the instance folder (metadata DB, its -wal, the queue)."""

    def read() -> bytes:
        instance = Path(services_of(app).settings["MIGDASH_INSTANCE"])
        return b"".join(p.read_bytes() for p in sorted(instance.rglob("*")) if p.is_file())

    return read
