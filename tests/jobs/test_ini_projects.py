"""A project registered by its ``alembic.ini`` (as ``alembic init`` lays it out) can be acted on.

The ini is read the way Alembic's CLI reads it (``script_location``,
``%(here)s``), by the graph loader, the plan child and the job child alike.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask

from migdash.scaffold import RevisionSpec, migrate_database, write_project
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import JobState

INI = """[alembic]
script_location = %(here)s/db/migrations
sqlalchemy.url = sqlite:///nowhere-this-is-overridden.db
"""


def ini_project(root: Path) -> Path:
    """An Alembic layout with the ini beside the code and the scripts below it."""
    write_project(
        root / "db" / "migrations",
        [
            RevisionSpec("a1", None, "create accounts", table="accounts"),
            RevisionSpec("b2", "a1", "create orders", table="orders"),
        ],
    )
    (root / "alembic.ini").write_text(INI)
    return root / "alembic.ini"


def test_an_ini_registered_project_plans_and_runs(
    app: Flask,
    cli: Callable[..., Any],
    cli_json: Callable[..., Any],
    run_queue: Callable[[], int],
    load_job: Callable[[int], Any],
    tmp_path: Path,
) -> None:
    ini = ini_project(tmp_path / "service")
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate_database(ini.parent / "db" / "migrations", url, "a1")
    with services_of(app).sessions() as session:
        registry.add_project(session, "service", str(ini))
        registry.add_target(session, "service-dev", project="service", environment="dev", url=url)
        session.commit()

    plan = cli_json("upgrade", "service-dev", "heads", "--sql")
    assert plan["steps"] == ["upgrade a1 -> b2"]
    assert "CREATE TABLE orders" in plan["sql"]
    job_id = cli_json("upgrade", "service-dev", "heads")["id"]
    run_queue()
    job = load_job(job_id)
    assert job.state == JobState.SUCCEEDED, job.error
    assert job.result_revisions == ["b2"]
    revision = cli_json("revision", "service", "-m", "add notes")["id"]
    run_queue()
    new_file = Path(load_job(revision).output["new_file"])
    assert new_file.parent == ini.parent / "db" / "migrations" / "versions"
    shutil.rmtree(tmp_path / "service" / "db" / "migrations" / "versions" / "__pycache__", True)
    assert cli("heads", "service").exit_code == 0
