"""Each action end to end: ``migdash <verb>`` -> queue -> worker -> Alembic -> ``migdash status``.

The requests go through the real CLI commands and the app's real Huey queue
(SQLite file in the instance folder); ``run_queue`` executes what is queued
with the same Worker a ``migdash worker`` thread uses, so every action runs
in its child process against a real SQLite database.  One test runs the
whole path with subprocesses: ``migdash upgrade --wait`` and ``migdash worker``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory
from flask import Flask

from migdash.services import services_of


def tables_of(url: str) -> set[str]:
    db_engine = sa.create_engine(url)
    try:
        return set(sa.inspect(db_engine).get_table_names())
    finally:
        db_engine.dispose()


def script_of(location: Path) -> ScriptDirectory:
    """Alembic's own view of a project folder: the oracle for what was written."""
    config = Config()
    config.set_main_option("script_location", str(location))
    return ScriptDirectory.from_config(config)


def test_upgrade_runs_pending_revisions_and_status_shows_head(
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    register: Callable[..., None],
    cli_json: Callable[..., Any],
    run_queue: Callable[[], int],
    load_job: Callable[[int], Any],
    log_lines: Callable[[int], list[str]],
    status: Callable[[], dict[str, Any]],
) -> None:
    project = make_project("linear")
    url = make_target(project, at="a1")
    register(project, shop=url)
    assert status()["shop"]["state"] == "behind"

    requested = cli_json("upgrade", "shop", "heads")
    assert requested["state"] == "queued"
    assert run_queue() == 1

    job = load_job(requested["id"])
    assert job.state == "succeeded", job.error
    assert job.from_revisions == ["a1"]
    assert job.result_revisions == ["c3"]
    assert [step["step"] for step in job.output["steps"]] == [
        "upgrade a1 -> b2, create orders",
        "upgrade b2 -> c3, create items",
    ]
    assert any("Running upgrade b2 -> c3" in line for line in log_lines(job.id))
    report = status()["shop"]
    assert (report["state"], report["current"], report["pending"]) == ("up_to_date", ["c3"], [])
    assert {"accounts", "orders", "items"} <= tables_of(url)


def test_downgrade_runs_the_downgrade_and_status_shows_behind(
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    register: Callable[..., None],
    cli_json: Callable[..., Any],
    run_queue: Callable[[], int],
    load_job: Callable[[int], Any],
    status: Callable[[], dict[str, Any]],
) -> None:
    project = make_project("linear")
    url = make_target(project, at="heads")
    register(project, shop=url)

    job_id = cli_json("downgrade", "shop", "-1")["id"]
    run_queue()

    job = load_job(job_id)
    assert job.state == "succeeded", job.error
    assert job.result_revisions == ["b2"]
    report = status()["shop"]
    assert (report["state"], report["current"], report["pending"]) == ("behind", ["b2"], ["c3"])
    assert "items" not in tables_of(url)
    assert "orders" in tables_of(url)


def test_stamp_rewrites_the_version_table_only(
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    register: Callable[..., None],
    cli_json: Callable[..., Any],
    run_queue: Callable[[], int],
    load_job: Callable[[int], Any],
    status: Callable[[], dict[str, Any]],
) -> None:
    project = make_project("linear")
    url = make_target(project, at="heads")
    register(project, shop=url)

    job_id = cli_json("stamp", "shop", "a1")["id"]
    run_queue()

    assert load_job(job_id).state == "succeeded", load_job(job_id).error
    report = status()["shop"]
    assert (report["current"], report["pending"]) == (["a1"], ["b2", "c3"])
    assert {"accounts", "orders", "items"} <= tables_of(url), "stamp must not run DDL"


def test_merge_writes_a_merge_revision_and_leaves_one_head(
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    register: Callable[..., None],
    cli_json: Callable[..., Any],
    run_queue: Callable[[], int],
    load_job: Callable[[int], Any],
    status: Callable[[], dict[str, Any]],
) -> None:
    project = make_project("two_heads")
    register(project, fork=make_target(project, at="heads"))
    assert sorted(script_of(project.location).get_heads()) == ["c3", "d4"]

    job_id = cli_json("merge", "two_heads", "-m", "join the branches")["id"]
    run_queue()

    job = load_job(job_id)
    assert job.state == "succeeded", job.error
    new_file = Path(job.output["new_file"])
    assert new_file.parent == project.location / "versions"
    assert new_file.is_file()
    script = script_of(project.location)
    (head,) = script.get_heads()
    merge = script.get_revision(head)
    assert sorted(merge.down_revision or ()) == ["c3", "d4"]
    assert merge.doc == "join the branches"
    assert [h["revision"] for h in cli_json("heads", "two_heads")] == [head]
    report = status()["fork"]
    assert (report["state"], report["heads"], report["pending"]) == ("behind", [head], [head])


def test_revision_writes_a_new_file_on_the_head(
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    register: Callable[..., None],
    cli_json: Callable[..., Any],
    run_queue: Callable[[], int],
    load_job: Callable[[int], Any],
    status: Callable[[], dict[str, Any]],
) -> None:
    project = make_project("linear")
    register(project, shop=make_target(project, at="heads"))
    before = set((project.location / "versions").glob("*.py"))

    job_id = cli_json("revision", "linear", "-m", "add a column")["id"]
    run_queue()

    job = load_job(job_id)
    assert job.state == "succeeded", job.error
    (new_file,) = set((project.location / "versions").glob("*.py")) - before
    assert job.output["new_file"] == str(new_file)
    script = script_of(project.location)
    (head,) = script.get_heads()
    revision = script.get_revision(head)
    assert Path(revision.path) == new_file
    assert revision.down_revision == "c3"
    assert revision.doc == "add a column"
    report = status()["shop"]
    assert (report["state"], report["current"], report["pending"]) == ("behind", ["c3"], [head])


def test_upgrade_through_cli_and_worker_processes(
    app: Flask,
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    register: Callable[..., None],
    start_worker: Callable[..., Any],
    status: Callable[[], dict[str, Any]],
    tmp_path: Path,
) -> None:
    """``migdash upgrade --wait --json`` and ``migdash worker`` as separate processes."""
    project = make_project("linear")
    register(project, shop=make_target(project, at=None))
    worker = start_worker(threads=1)
    settings = services_of(app).settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIGDASH_")}
    env.update(
        MIGDASH_INSTANCE=settings["MIGDASH_INSTANCE"],
        MIGDASH_DATABASE_URL=settings["MIGDASH_DATABASE_URL"],
    )

    completed = subprocess.run(  # noqa: S603 - our own module
        [
            sys.executable,
            "-m",
            "migdash",
            "upgrade",
            "shop",
            "heads",
            "--wait",
            "--timeout",
            "60",
            "--json",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    job = json.loads(completed.stdout)
    assert (job["state"], job["from_revisions"], job["result_revisions"]) == (
        "succeeded",
        [],
        ["c3"],
    )
    assert job["worker"].endswith(f":{worker.pid}"), "run by the worker process"
    assert status()["shop"]["state"] == "up_to_date"
