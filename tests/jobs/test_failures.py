"""A failed job leaves an honest record: state, step, traceback, the real revision; no secrets.

And a job never touches a database other than its target, even when the
project's ``env.py`` ignores the URL migdash hands it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import sqlalchemy as sa

from migdash.scaffold import ENV_PY, RevisionSpec
from tests.conftest import migrate_to

PLANTED = "Pl4nted/S3cr3t@job"
"""A password with characters URL-encoding changes, so every written form is looked for."""

HALF_WAY = (
    'op.create_table("half", sa.Column("id", sa.Integer, primary_key=True))\n'
    "url = op.get_bind().engine.url.render_as_string(hide_password=False)\n"
    'raise RuntimeError("boom after creating half, on " + url)\n'
)
"""Creates a table, then fails with the full URL (password included) in the message."""


def failing_project(make_project: Callable[..., Any]) -> Any:
    return make_project(
        [
            RevisionSpec("a1", None, "create accounts", table="accounts"),
            RevisionSpec("b2", "a1", "half way", upgrade_body=HALF_WAY),
            RevisionSpec("c3", "b2", "never reached", table="items"),
        ]
    )


def schema_of(url: str) -> tuple[set[str], list[str]]:
    db_engine = sa.create_engine(url)
    try:
        with db_engine.connect() as connection:
            tables = set(sa.inspect(connection).get_table_names())
            versions = (
                [
                    row[0]
                    for row in connection.exec_driver_sql("SELECT version_num FROM alembic_version")
                ]
                if "alembic_version" in tables
                else []
            )
        return tables, versions
    finally:
        db_engine.dispose()


def with_planted_password(url: str) -> str:
    """*url* with PLANTED as its password; the server's real one rides in the query string.

    The test role cannot create roles, so it cannot own a second password;
    libpq takes ``?password=`` over the URL's, and the planted one is what
    migdash treats as the target's secret.
    """
    real = sa.make_url(url).password
    return (
        sa.make_url(url)
        .set(password=PLANTED)
        .update_query_dict({"password": str(real)})
        .render_as_string(hide_password=False)
    )


def leaks(text: str) -> list[str]:
    return [
        form for form in {PLANTED, quote(PLANTED, safe=""), quote_plus(PLANTED)} if form in text
    ]


@pytest.mark.server
def test_failed_postgres_migration_is_recorded_honestly_without_the_password(
    make_project: Callable[..., Any],
    register: Callable[..., None],
    cli: Callable[..., Any],
    cli_json: Callable[..., Any],
    run_queue: Callable[[], int],
    load_job: Callable[[int], Any],
    log_lines: Callable[[int], list[str]],
    postgres_url: str,
) -> None:
    url = with_planted_password(postgres_url)
    project = failing_project(make_project)
    migrate_to(project, url, "a1")
    register(project, pg=url)

    job_id = cli_json("upgrade", "pg", "heads")["id"]
    run_queue()

    job = load_job(job_id)
    assert job.state == "failed"
    assert "a1 -> b2" in (job.failed_step or "")
    assert job.result_revisions == ["a1"], "re-probed after the failure"
    assert schema_of(postgres_url) == ({"accounts", "alembic_version"}, ["a1"]), (
        "PostgreSQL rolled the half-done revision back"
    )
    assert "Traceback (most recent call last)" in job.error
    assert "RuntimeError: boom after creating half" in job.error
    assert "b2_half_way.py" in job.error, "the traceback names the revision file"
    assert ":***@" in job.error, "the URL was there, masked"
    lines = log_lines(job_id)
    assert any("failed at step upgrade a1 -> b2" in line for line in lines), lines
    shown = cli("job", str(job_id), "--json").stdout
    assert json.loads(shown)["state"] == "failed"
    listed = cli("jobs", "--json").stdout
    assert leaks(job.error) == []
    assert leaks("\n".join(lines)) == []
    assert leaks(shown) == []
    assert leaks(listed) == []
    assert leaks(cli("job", str(job_id)).stdout) == []


@pytest.mark.server
def test_failed_mariadb_migration_is_recorded(
    make_project: Callable[..., Any],
    register: Callable[..., None],
    cli_json: Callable[..., Any],
    run_queue: Callable[[], int],
    load_job: Callable[[int], Any],
    mariadb_url: str,
) -> None:
    project = failing_project(make_project)
    migrate_to(project, mariadb_url, "a1")
    register(project, maria=mariadb_url)

    job_id = cli_json("upgrade", "maria", "heads")["id"]
    run_queue()

    job = load_job(job_id)
    assert job.state == "failed"
    assert "a1 -> b2" in job.failed_step
    assert job.result_revisions == ["a1"]
    assert "RuntimeError: boom after creating half" in job.error
    assert schema_of(mariadb_url)[1] == ["a1"]
    assert cli_json("status")[0]["current"] == ["a1"]


def file_digest(url: str) -> str:
    return hashlib.sha256(Path(sa.make_url(url).database or "").read_bytes()).hexdigest()


def test_env_py_that_ignores_the_url_fails_with_wrong_database_and_changes_nothing(
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    register: Callable[..., None],
    cli_json: Callable[..., Any],
    run_queue: Callable[[], int],
    load_job: Callable[[int], Any],
) -> None:
    project = make_project("linear")
    target = make_target(project, at="a1", name="target")
    elsewhere = make_target(project, at="a1", name="elsewhere")
    hardwired = ENV_PY.replace(
        'connection = config.attributes.get("connection")',
        'connection = None\n    config.set_main_option("sqlalchemy.url", '
        f"{elsewhere!r})  # ignores the URL it is given",
    )
    assert hardwired != ENV_PY
    (project.location / "env.py").write_text(hardwired)
    register(project, shop=target)
    digests = (file_digest(target), file_digest(elsewhere))

    job_id = cli_json("upgrade", "shop", "heads")["id"]
    run_queue()

    job = load_job(job_id)
    assert job.state == "failed"
    assert "WrongDatabase" in job.error
    assert "nothing was run" in job.error
    assert job.result_revisions == ["a1"]
    assert schema_of(target) == ({"accounts", "alembic_version"}, ["a1"])
    assert schema_of(elsewhere) == ({"accounts", "alembic_version"}, ["a1"])
    assert (file_digest(target), file_digest(elsewhere)) == digests


LEFTOVER = (
    "import subprocess, sys\n"
    "leftover = subprocess.Popen(  # holds the job's stdout, in a session of its own\n"
    '    [sys.executable, "-c", "import time; print(\'leftover says hi\', flush=True); '
    'time.sleep(60)"],\n'
    "    start_new_session=True,\n"
    ")\n"
    'open({pid_file!r}, "w").write(str(leftover.pid))\n'
    'op.create_table("left", sa.Column("id", sa.Integer, primary_key=True))\n'
)


def test_a_process_a_revision_leaves_running_does_not_hold_the_job(
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    register: Callable[..., None],
    cli_json: Callable[..., Any],
    run_queue: Callable[[], int],
    load_job: Callable[[int], Any],
    tmp_path: Path,
) -> None:
    """A revision that starts a detached process holding stdout: the job still ends at once."""
    pid_file = tmp_path / "leftover.pid"
    project = make_project(
        [
            RevisionSpec("a1", None, "create accounts", table="accounts"),
            RevisionSpec(
                "b2", "a1", "leaves a process", upgrade_body=LEFTOVER.format(pid_file=str(pid_file))
            ),
        ]
    )
    register(project, db=make_target(project, at="a1", name="db"))
    job_id = cli_json("upgrade", "db", "heads")["id"]
    started = time.monotonic()
    try:
        run_queue()
        took = time.monotonic() - started
        job = load_job(job_id)
        assert job.state == "succeeded", job.error
        assert took < 30, f"the job waited {took:.0f} s for a process its revision left"
    finally:
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
