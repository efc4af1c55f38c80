"""``migdash demo --no-serve`` and the instance folder, including one real ``migdash`` process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from click.testing import Result
from flask import Flask

from migdash.demo import DEMO_PASSWORD, DEMO_USER, demo_targets


@pytest.fixture
def demo(cli: Callable[..., Result], app: Flask) -> Path:
    result = cli("demo", "--no-serve")
    workspace = Path(app.instance_path) / "demo"
    assert f"demo workspace: {workspace} (9 targets)" in result.stdout
    assert f"sign in as {DEMO_USER} / {DEMO_PASSWORD}" in result.stdout
    return workspace


def test_demo_builds_nine_targets_in_every_state_it_promises(
    demo: Path, cli_json: Callable[..., Any]
) -> None:
    reports = cli_json("status")
    assert len(reports) == 9
    states = [r["state"] for r in reports]
    assert states.count("unreachable") == 1
    assert states.count("uninitialised") == 1
    assert "behind" in states
    assert "up_to_date" in states
    (dead,) = (r for r in reports if r["state"] == "unreachable")
    assert "demo-secret" not in json.dumps(reports)
    assert dead["error"]


def test_demo_targets_sit_where_the_demo_put_them(demo: Path, cli_json: Callable[..., Any]) -> None:
    reports = {r["target"]: r for r in cli_json("status")}
    for planned in demo_targets(demo / "databases"):
        if planned.at is None:
            continue
        config = Config()
        config.set_main_option("script_location", str(demo / "projects" / planned.project))
        script = ScriptDirectory.from_config(config)
        expected = {s.revision for s in script.get_revisions(planned.at)}
        assert set(reports[planned.name]["current"]) == expected, planned.name
        assert reports[planned.name]["project"] == planned.project
        assert reports[planned.name]["environment"] == planned.environment


def test_demo_is_idempotent_and_its_user_can_sign_in(
    demo: Path, cli: Callable[..., Result], cli_json: Callable[..., Any], app: Flask
) -> None:
    cli("demo", "--no-serve")
    assert len(cli_json("status")) == 9
    client = app.test_client()
    response = client.post("/login", data={"username": DEMO_USER, "password": DEMO_PASSWORD})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200
    environments = [e["environment"] for e in cli_json("status", "--project", "shop")]
    assert environments == sorted(environments, key=["dev", "staging", "prod"].index)


def migdash_command() -> list[str]:
    """The installed console script beside this interpreter (what users run)."""
    script = Path(sys.executable).with_name("migdash")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from migdash.cli import main; main()"]


def test_migdash_instance_is_honoured_by_a_real_process(
    tmp_path: Path, make_project: Callable[..., Any]
) -> None:
    instance = tmp_path / "custom-instance"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIGDASH_")}
    env["MIGDASH_INSTANCE"] = str(instance)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*migdash_command(), *args],
            env=env,
            cwd=tmp_path,
            text=True,
            capture_output=True,
            timeout=60,
            check=False,
        )

    upgraded = run("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert (instance / "migdash.db").is_file()
    assert (instance / "secret_key").stat().st_mode & 0o077 == 0
    assert not (tmp_path / "instance").exists()
    project = make_project("linear")
    added = run("project", "add", "p", "--script-location", str(project.location), "--json")
    assert json.loads(added.stdout)["revisions"] == 3
    missing = run("heads", "nope")
    assert missing.returncode == 1
    assert "no project named 'nope'" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_the_demo_shows_drift_and_a_schema_diff_without_writing_anything(
    demo: Path, cli: Callable[..., Result], app: Flask
) -> None:
    """Issue 9's demo: models with a change in no revision, and a target changed by hand."""
    models = cli("drift", "analytics-dev", "--json", ok=False)
    assert models.exit_code == 1
    assert "op.add_column('events', sa.Column('source'" in json.loads(models.stdout)["operations"]
    history = cli("drift-history", "analytics-staging", "--json", ok=False)
    assert history.exit_code == 1
    assert "column daily_rollups.note added" in history.stdout
    assert cli("drift-history", "analytics-qa").exit_code == 0
    differs = cli("diff", "analytics-qa", "analytics-staging", ok=False)
    assert differs.exit_code == 1
    assert "column daily_rollups.note added" in differs.stdout
    client = app.test_client()
    client.post("/login", data={"username": DEMO_USER, "password": DEMO_PASSWORD})
    overview = client.get("/").get_data(as_text=True)
    assert overview.count('data-flag="schema-differs"') == 2, "the demo was observed when built"
    assert 'data-drift="models"' in overview
    assert 'href="/targets/analytics-staging#history-drift"' in overview
