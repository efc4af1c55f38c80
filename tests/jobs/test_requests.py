"""Requests before anything runs: refusals, cancelling, and ``migdash project init``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.script import ScriptDirectory
from flask import Flask

from migdash.cli import main


def test_cancelled_job_is_skipped_by_the_worker(
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    register: Callable[..., None],
    cli: Callable[..., Any],
    cli_json: Callable[..., Any],
    run_queue: Callable[[], int],
    load_job: Callable[[int], Any],
    log_lines: Callable[[int], list[str]],
    status: Callable[[], dict[str, Any]],
) -> None:
    project = make_project("linear")
    register(project, shop=make_target(project, at="a1"))
    job_id = cli_json("upgrade", "shop", "heads")["id"]
    cli("user", "create", "alice", "--role", "operator", "--password", "long-enough-pw")

    assert cli("cancel", str(job_id), "--as", "alice").output.strip() == f"job {job_id} cancelled"
    assert run_queue() == 1, "the message was still queued"

    job = load_job(job_id)
    assert job.state == "cancelled"
    assert job.started_at is None
    assert job.finished_at is not None
    assert log_lines(job_id) == ["requested by cli: upgrade shop to heads", "cancelled by alice"]
    assert status()["shop"]["current"] == ["a1"]
    again = cli("cancel", str(job_id), ok=False)
    assert again.exit_code == 1
    assert f"job {job_id} is cancelled and can no longer be cancelled" in again.output


def test_a_finished_job_cannot_be_cancelled(
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    register: Callable[..., None],
    cli: Callable[..., Any],
    cli_json: Callable[..., Any],
    run_queue: Callable[[], int],
) -> None:
    project = make_project("linear")
    register(project, shop=make_target(project, at="a1"))
    job_id = cli_json("upgrade", "shop", "+1")["id"]
    run_queue()

    refused = cli("cancel", str(job_id), ok=False)

    assert refused.exit_code == 1
    assert "is succeeded and can no longer be cancelled" in refused.output


def test_impossible_requests_are_refused_before_anything_is_queued(
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    register: Callable[..., None],
    cli: Callable[..., Any],
    cli_json: Callable[..., Any],
    app: Flask,
) -> None:
    from migdash.services import services_of

    linear, forked = make_project("linear"), make_project("two_heads")
    register(linear, shop=make_target(linear, at="a1"))
    register(forked, fork=make_target(forked, at="b2"))

    cases = {
        ("upgrade", "shop", "nosuchrev"): "nosuchrev",
        ("upgrade", "shop", "base"): "Did you mean downgrade base?",
        ("downgrade", "shop", "heads"): "Did you mean upgrade?",
        ("upgrade", "fork", "head"): "c3",
        ("merge", "linear", "-m", "nothing to merge"): "a merge needs at least two heads",
        ("revision", "linear", "-m", " "): "a message is required",
        ("upgrade", "nosuchtarget", "heads"): "no target named 'nosuchtarget'",
    }
    for args, message in cases.items():
        result = cli(*args, ok=False)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert cli_json("jobs") == []
    assert services_of(app).queue.pending_count() == 0


def test_project_init_creates_an_alembic_environment_under_the_projects_root(
    make_app: Callable[..., Flask],
    tmp_path: Path,
    run_queue: Callable[[], int],
) -> None:
    root = tmp_path / "alembic-projects"
    other = make_app(MIGDASH_PROJECTS_ROOT=str(root))
    runner = other.test_cli_runner()

    created = runner.invoke(main, ["project", "init", "billing", "--json"])

    assert created.exit_code == 0, (created.output, created.exception)
    folder = root / "billing"
    assert (folder / "alembic.ini").is_file()
    assert (folder / "migrations" / "env.py").is_file()
    assert (folder / "migrations" / "script.py.mako").is_file()
    assert (folder / "migrations" / "versions").is_dir()
    assert json.loads(created.stdout)["script_location"] == str(folder / "migrations")
    listed = json.loads(runner.invoke(main, ["project", "list", "--json"]).stdout)
    assert [(p["project"], p["error"]) for p in listed] == [("billing", None)]
    config = Config()
    config.set_main_option("script_location", str(folder / "migrations"))
    assert list(ScriptDirectory.from_config(config).walk_revisions()) == []

    first = runner.invoke(main, ["revision", "billing", "-m", "first", "--json"])
    assert first.exit_code == 0, (first.output, first.exception)
    run_queue()
    (revision,) = ScriptDirectory.from_config(config).walk_revisions()
    assert (revision.doc, revision.down_revision) == ("first", None)

    escape = runner.invoke(main, ["project", "init", "../outside"])
    assert escape.exit_code == 1
    assert not (tmp_path / "outside").exists()
    twice = runner.invoke(main, ["project", "init", "billing"])
    assert twice.exit_code == 1
    assert "already exists" in twice.output
