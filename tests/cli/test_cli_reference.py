"""``migdash reference`` and ``migdash drift-history``: the cache as people see it, diff(1) exits.

``drift-history`` exits 0 (no drift), 1 (drift, or stamped but not
applied), 2 (the check failed or does not apply, or the command was
refused); ``reference`` shows whether it built or read the cache, and
``--rebuild`` builds again.  The scratch server setting reaches the build.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from flask import Flask
from flask.testing import FlaskCliRunner

from migdash import create_app
from migdash.cli import main
from migdash.scaffold import write_project
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import Project, Role
from migdash.store.schema_models import DriftCheck, ReferenceSchema
from migdash.store.users import create_user
from tests.jobs.test_reference import FAILING_ENV, REVISIONS, alembic, execute


@pytest.fixture
def add(app: Flask, tmp_path: Path) -> Callable[..., str]:
    """A target *name* of the ``shop`` project: SQLite upgraded to *at*, then *stamp*, *ddl*."""
    location = write_project(tmp_path / "projects" / "shop", REVISIONS)

    def factory(
        name: str, at: str = "heads", stamp: str | None = None, ddl: tuple[str, ...] = ()
    ) -> str:
        url = f"sqlite:///{tmp_path / f'{name}.db'}"
        alembic(location, url, "upgrade", at)
        if stamp:
            alembic(location, url, "stamp", stamp)
        execute(url, *ddl)
        with services_of(app).sessions() as session:
            if session.scalar(sa.select(Project).where(Project.name == "shop")) is None:
                registry.add_project(session, "shop", str(location))
            registry.add_target(session, name, project="shop", environment="dev", url=url)
            session.commit()
        return name

    return factory


def stored(app: Flask) -> tuple[list[str], int]:
    with services_of(app).sessions() as session:
        checks = session.scalars(sa.select(DriftCheck.outcome).order_by(DriftCheck.id)).all()
        references = session.scalar(sa.select(sa.func.count()).select_from(ReferenceSchema))
        return list(checks), int(references or 0)


def test_reference_builds_once_then_reads_the_cache_and_rebuild_builds_again(
    cli: Callable[..., Result], add: Callable[..., str]
) -> None:
    add("shop-db")
    first = json.loads(cli("reference", "shop-db", "--json").stdout)
    assert first["cache_hit"] is False
    assert first["revisions"] == ["d4"]
    assert first["dialect"] == "sqlite"
    assert first["note"] is None
    assert sorted(first["schema"]["tables"]) == ["accounts", "orders"]
    assert first["build_seconds"] > 0
    second = json.loads(cli("reference", "shop-db", "--json").stdout)
    assert second["cache_hit"] is True
    assert second["key"] == first["key"]
    assert second["build_seconds"] == first["build_seconds"], "what the cached build cost"
    text = cli("reference", "shop-db").stdout
    assert text.startswith(
        "shop-db: reference for d4\n  built on sqlite 3, 2 tables, cached (built"
    )
    rebuilt = json.loads(cli("reference", "shop-db", "--rebuild", "--json").stdout)
    assert rebuilt["cache_hit"] is False
    assert rebuilt["key"] == first["key"]
    assert rebuilt["fingerprint"] == first["fingerprint"]


def test_drift_history_exits_0_on_no_drift_and_1_on_drift_or_a_stamp(
    app: Flask, cli: Callable[..., Result], add: Callable[..., str]
) -> None:
    add("calm-db")
    add("changed-db", ddl=("ALTER TABLE accounts ADD COLUMN note VARCHAR(20)",))
    add("stamped-db", at="a1", stamp="c3")
    calm = cli("drift-history", "calm-db")
    assert calm.exit_code == 0
    assert calm.stdout == "calm-db: none: no drift: the schema is what d4 gives\n"
    changed = cli("drift-history", "changed-db", ok=False)
    assert changed.exit_code == 1
    assert changed.stdout == (
        "changed-db: drift: drift from what d4 gives: 1 difference: column accounts.note added\n"
    )
    stamped = cli("drift-history", "stamped-db", "--json", ok=False)
    assert stamped.exit_code == 1
    data = json.loads(stamped.stdout)
    assert data["outcome"] == "stamped_not_applied"
    assert data["schema_of"] == ["a1"]
    assert data["target"] == "stamped-db"
    assert stored(app)[0] == ["none", "drift", "stamped_not_applied"]


def test_drift_history_exits_2_when_the_check_fails_does_not_apply_or_is_refused(
    app: Flask, cli: Callable[..., Result], add: Callable[..., str], tmp_path: Path
) -> None:
    add("shop-db")
    unknown = cli("drift-history", "no-such-target", ok=False)
    assert unknown.exit_code == 2
    assert "no-such-target" in unknown.output
    with services_of(app).sessions() as session:
        create_user(session, "vera", "correct-horse", Role.VIEWER)
        session.commit()
    refused = cli("drift-history", "shop-db", "--as", "vera", ok=False)
    assert refused.exit_code == 2
    assert cli("reference", "shop-db", "--as", "vera", ok=False).exit_code == 1
    assert stored(app) == ([], 0), "a refused command checks and builds nothing"

    bare = f"sqlite:///{tmp_path / 'bare.db'}"
    execute(bare, "CREATE TABLE accounts (id INTEGER PRIMARY KEY)")
    with services_of(app).sessions() as session:
        registry.add_target(session, "bare-db", project="shop", environment="dev", url=bare)
        session.commit()
    assert cli("drift-history", "bare-db", ok=False).exit_code == 2

    (tmp_path / "projects" / "shop" / "env.py").write_text(FAILING_ENV)
    failed = cli("drift-history", "shop-db", "--json", ok=False)
    assert failed.exit_code == 2
    data = json.loads(failed.stdout)
    assert data["outcome"] == "error"
    assert "scratch env.py refuses sqlite:///" in data["summary"]
    assert cli("reference", "shop-db", ok=False).exit_code == 1
    assert stored(app) == (["not_applicable", "error"], 0)


@pytest.fixture
def scratch_runner(app: Flask, postgres_server: str) -> Iterator[FlaskCliRunner]:
    """A CLI runner whose app has ``MIGDASH_SCRATCH_POSTGRES_URL`` set (same instance and DB)."""
    settings = services_of(app).settings
    other = create_app(
        {
            "TESTING": True,
            "MIGDASH_INSTANCE": settings["MIGDASH_INSTANCE"],
            "MIGDASH_DATABASE_URL": settings["MIGDASH_DATABASE_URL"],
            "MIGDASH_SECRET_KEY": "test-secret-key",
            "MIGDASH_SCRATCH_POSTGRES_URL": postgres_server,
        }
    )
    yield other.test_cli_runner()
    services_of(other).probes.close()
    services_of(other).db_engine.dispose()


def test_the_configured_scratch_server_builds_postgresql_references(
    app: Flask,
    runner: FlaskCliRunner,
    scratch_runner: FlaskCliRunner,
    postgres_url: str,
    add: Callable[..., str],
) -> None:
    add("shop-db")  # registers the project
    location = Path(services_of(app).settings["MIGDASH_INSTANCE"]).parent / "projects" / "shop"
    alembic(location, postgres_url, "upgrade", "heads")
    with services_of(app).sessions() as session:
        registry.add_target(session, "pg-db", project="shop", environment="dev", url=postgres_url)
        session.commit()

    def reference(cli_runner: FlaskCliRunner) -> dict[str, Any]:
        result = cli_runner.invoke(main, ["reference", "pg-db", "--json"])
        assert result.exit_code == 0, result.output
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    configured = reference(scratch_runner)
    assert configured["dialect"] == "postgresql"
    assert configured["note"] is None
    fallback = reference(runner)
    assert fallback["dialect"] == "sqlite"
    assert "set MIGDASH_SCRATCH_POSTGRES_URL" in fallback["note"]
    assert fallback["key"] != configured["key"]


def test_removing_a_project_removes_its_references_and_checks(
    app: Flask, cli: Callable[..., Result], add: Callable[..., str]
) -> None:
    add("shop-db")
    cli("drift-history", "shop-db")
    assert stored(app) == (["none"], 1)
    cli("target", "remove", "shop-db", "--yes")
    assert stored(app) == ([], 1), "the check went with its target; the reference stays"
    cli("project", "remove", "shop", "--yes")
    assert stored(app) == ([], 0)
