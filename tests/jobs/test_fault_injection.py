"""A request creates its job, its approval hold and its audit row together, or nothing at all.

Faults are injected where a half-done request would be most dangerous:
an exception raised inside the approval hold (after the job row exists), and
a process killed with SIGKILL at that same point.  Afterwards the metadata
DB holds no job, no log line and no audit row for the request, and nothing
reached the queue.  Both on SQLite and on PostgreSQL as the metadata DB.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from migdash import create_app
from migdash.cli import main
from migdash.config import ensure_instance
from migdash.jobs import requests as job_requests
from migdash.scaffold import migrate_database, write_project
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import AuditEvent, Job, JobLogLine, Role, utcnow
from migdash.store.users import create_user
from tests.conftest import SHAPES


class InjectedFault(RuntimeError):
    pass


@pytest.fixture(params=["sqlite", "postgresql"])
def metadata_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'instance' / 'migdash.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def world(tmp_path: Path, metadata_url: str) -> Iterator[Flask]:
    """A protected prod with one target behind, an operator; on the chosen metadata DB."""
    instance = tmp_path / "instance"
    ensure_instance(instance)
    app = create_app(
        {
            "TESTING": True,
            "MIGDASH_INSTANCE": str(instance),
            "MIGDASH_DATABASE_URL": metadata_url,
            "MIGDASH_SECRET_KEY": "fault-secret",
            "WTF_CSRF_ENABLED": False,
        }
    )
    services = services_of(app)
    services.upgrade_schema()
    location = write_project(tmp_path / "shop", SHAPES["linear"])
    url = f"sqlite:///{tmp_path / 'prod.db'}"
    migrate_database(location, url, "a1")
    with services.sessions() as session:
        registry.add_project(session, "shop", str(location))
        registry.add_environment(session, "prod", protected=True)
        registry.add_target(session, "shop-prod", project="shop", environment="prod", url=url)
        create_user(session, "olga", "olga-password", Role.OPERATOR)
        session.commit()
    yield app
    services.probes.close()
    services.db_engine.dispose()


def nothing_recorded(app: Flask) -> dict[str, int]:
    services = services_of(app)
    with services.sessions() as session:
        return {
            "jobs": session.scalar(sa.select(sa.func.count()).select_from(Job)) or 0,
            "log lines": session.scalar(sa.select(sa.func.count()).select_from(JobLogLine)) or 0,
            "requests audited": session.scalar(
                sa.select(sa.func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "job.request")
            )
            or 0,
            "queued messages": services.queue.pending_count(),
        }


def fail_inside_the_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Raise where the job row exists and the hold's log line is being written."""
    real = job_requests.add_log

    def add_log(session: Any, job_id: int, line: str, now: Any) -> None:
        if line.startswith("awaiting approval"):
            session.flush()  # the job row and its first log line are in the transaction
            raise InjectedFault("injected inside the approval hold")
        real(session, job_id, line, now)

    monkeypatch.setattr(job_requests, "add_log", add_log)


@pytest.mark.server
def test_an_exception_inside_the_hold_leaves_nothing_from_any_boundary(
    world: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_inside_the_hold(monkeypatch)
    web = world.test_client()
    assert (
        web.post("/login", data={"username": "olga", "password": "olga-password"}).status_code
        == 302
    )

    response = web.post(
        "/actions/targets/shop-prod", data={"action": "upgrade", "revision": "heads"}
    )
    assert response.status_code == 500
    assert "nothing was changed" in response.get_data(as_text=True)
    assert nothing_recorded(world) == {
        "jobs": 0,
        "log lines": 0,
        "requests audited": 0,
        "queued messages": 0,
    }

    result = world.test_cli_runner().invoke(
        main, ["upgrade", "shop-prod", "heads", "--as", "olga"], catch_exceptions=True
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, InjectedFault)
    assert nothing_recorded(world)["jobs"] == 0

    with services_of(world).sessions() as session:
        with pytest.raises(InjectedFault):
            job_requests.request_target_action(
                session,
                services_of(world).jobs,
                registry.get_target(session, "shop-prod"),
                "upgrade",
                "heads",
                actor="olga",
                role=Role.OPERATOR,
                now=utcnow(),
            )
        session.rollback()
    assert nothing_recorded(world)["jobs"] == 0

    monkeypatch.undo()
    ok = web.post("/actions/targets/shop-prod", data={"action": "upgrade", "revision": "heads"})
    assert ok.status_code == 302, "the same request without the fault goes through"
    assert nothing_recorded(world)["jobs"] == 1
    assert nothing_recorded(world)["requests audited"] == 1


KILLED_MID_REQUEST = textwrap.dedent(
    """
    import os, signal, sys
    from migdash import create_app
    from migdash.jobs import requests as job_requests
    from migdash.services import services_of
    from migdash.store import registry
    from migdash.store.models import Role, utcnow

    app = create_app({"TESTING": True, "MIGDASH_INSTANCE": sys.argv[1],
                      "MIGDASH_DATABASE_URL": sys.argv[2], "MIGDASH_SECRET_KEY": "x"})
    real = job_requests.add_log

    def add_log(session, job_id, line, now):
        if line.startswith("awaiting approval"):
            session.flush()
            print("job row flushed", job_id, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        real(session, job_id, line, now)

    job_requests.add_log = add_log
    services = services_of(app)
    with services.sessions() as session:
        job_requests.request_target_action(
            session, services.jobs, registry.get_target(session, "shop-prod"), "upgrade",
            "heads", actor="olga", role=Role.OPERATOR, now=utcnow())
        session.commit()
    print("not reached", flush=True)
    """
)


@pytest.mark.server
def test_a_process_killed_between_creating_the_job_and_holding_it_leaves_nothing(
    world: Flask, metadata_url: str, tmp_path: Path
) -> None:
    script = tmp_path / "killed.py"
    script.write_text(KILLED_MID_REQUEST)
    done = subprocess.run(  # noqa: S603 - our own script
        [sys.executable, str(script), str(tmp_path / "instance"), metadata_url],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        check=False,
    )
    assert done.returncode == -9, (done.returncode, done.stdout, done.stderr[-2000:])
    assert "job row flushed" in done.stdout
    assert "not reached" not in done.stdout
    assert nothing_recorded(world) == {
        "jobs": 0,
        "log lines": 0,
        "requests audited": 0,
        "queued messages": 0,
    }
    after = world.test_cli_runner().invoke(main, ["jobs", "--json"])
    assert after.exit_code == 0
    assert after.output.strip() == "[]"
