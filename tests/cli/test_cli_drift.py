"""``migdash drift``: exit 0 no drift, 1 drift, 2 trouble (as diff(1)), text and ``--json``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from flask import Flask

from migdash.scaffold import migrate_database, write_project
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import Project, Role
from migdash.store.schema_models import DriftCheck
from migdash.store.users import create_user
from tests.jobs.test_drift_models import NOTE_OPERATION, REVISIONS, models_project, sqlite_url


@pytest.fixture
def add(app: Flask, tmp_path: Path) -> Callable[..., str]:
    """Register a target (SQLite, at heads) of *project* at *location*; returns its name."""

    def factory(project: str, location: Path, target: str) -> str:
        url = sqlite_url(tmp_path, target)
        migrate_database(location, url, "heads")
        with services_of(app).sessions() as session:
            if session.scalar(sa.select(Project).where(Project.name == project)) is None:
                registry.add_project(session, project, str(location))
            registry.add_target(session, target, project=project, environment="dev", url=url)
            session.commit()
        return target

    return factory


def stored(app: Flask) -> list[str]:
    with services_of(app).sessions() as session:
        return [c.outcome for c in session.scalars(sa.select(DriftCheck).order_by(DriftCheck.id))]


def test_no_drift_exits_0(
    cli: Callable[..., Result], add: Callable[..., str], tmp_path: Path
) -> None:
    add("calm", models_project(tmp_path / "calm", columns=""), "calm-db")
    result = cli("drift", "calm-db")
    assert result.exit_code == 0
    assert result.stdout == "calm-db: none: no drift: the database matches the models\n"


def test_drift_exits_1_with_the_operations(
    app: Flask, cli: Callable[..., Result], add: Callable[..., str], tmp_path: Path
) -> None:
    add("shop", models_project(tmp_path / "shop"), "shop-db")
    result = cli("drift", "shop-db", ok=False)
    assert result.exit_code == 1
    assert result.stdout.startswith("shop-db: drift: 1 difference: add_column accounts.note\n")
    assert f"    {NOTE_OPERATION}\n" in result.stdout
    data = json.loads(cli("drift", "shop-db", "--json", ok=False).stdout)
    assert data["target"] == "shop-db"
    assert data["kind"] == "models"
    assert data["outcome"] == "drift"
    assert [d["kind"] for d in data["diffs"]] == ["add_column"]
    assert NOTE_OPERATION in data["operations"]
    assert stored(app) == ["drift", "drift"]


@pytest.mark.parametrize("case", ["raises", "no_models", "unknown", "both", "neither", "viewer"])
def test_trouble_exits_2(
    app: Flask, cli: Callable[..., Result], add: Callable[..., str], tmp_path: Path, case: str
) -> None:
    location = models_project(tmp_path / "shop")
    add("shop", location, "shop-db")
    args = ["drift", "shop-db"]
    if case == "raises":
        env = location / "env.py"
        env.write_text('raise RuntimeError("env.py broke")\n' + env.read_text())
    elif case == "no_models":
        plain = write_project(tmp_path / "plain" / "migrations", REVISIONS)
        args = ["drift", add("plain", plain, "plain-db")]
    elif case == "unknown":
        args = ["drift", "nope"]
    elif case == "both":
        args = ["drift", "shop-db", "--project", "shop"]
    elif case == "neither":
        args = ["drift"]
    elif case == "viewer":
        with services_of(app).sessions() as session:
            create_user(session, "vera", "vera-password", Role.VIEWER)
            session.commit()
        args = ["drift", "shop-db", "--as", "vera"]
    result = cli(*args, ok=False)
    assert result.exit_code == 2, result.output
    expected = {
        "raises": ["shop-db: error: the check failed: RuntimeError: env.py broke"],
        "no_models": ["plain-db: not_applicable: no models to compare with"],
        "unknown": ["Error: no target named 'nope'"],
        "both": ["Error: name a TARGET or give --project PROJECT"],
        "neither": ["Error: name a TARGET or give --project PROJECT"],
        "viewer": ["Error: vera (viewer) may not request", "hint: Ask an admin"],
    }[case]
    for text in expected:
        assert text in result.output
    assert "Traceback" not in result.output
    assert stored(app) == {"raises": ["error"], "no_models": ["not_applicable"]}.get(case, [])


def test_a_project_run_checks_every_target_and_the_worst_decides(
    app: Flask, cli: Callable[..., Result], add: Callable[..., str], tmp_path: Path
) -> None:
    calm = models_project(tmp_path / "calm", columns="")
    add("calm", calm, "calm-1")
    add("calm", calm, "calm-2")
    assert cli("drift", "--project", "calm").exit_code == 0

    shop = models_project(tmp_path / "shop")
    add("shop", shop, "shop-1")
    add("shop", shop, "shop-2")
    result = cli("drift", "--project", "shop", "--json", ok=False)
    assert result.exit_code == 1
    data: list[dict[str, Any]] = json.loads(result.stdout)
    assert [(d["target"], d["outcome"]) for d in data] == [("shop-1", "drift"), ("shop-2", "drift")]

    db_engine = sa.create_engine(sqlite_url(tmp_path, "shop-2"))
    with db_engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM alembic_version")
    db_engine.dispose()
    result = cli("drift", "--project", "shop", ok=False)
    assert result.exit_code == 2, "a target that could not be checked outweighs drift"
    assert "shop-2: not_applicable: not checked: the target is not at the project's heads" in (
        result.stdout
    )
    assert cli("drift", "--project", "nope", ok=False).exit_code == 2
