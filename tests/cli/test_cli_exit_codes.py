"""Exit status: 0 done, 1 refused or failed, 2 a wrong command line (``migdash.cli.base``).

No error path may exit 0: scripts and CI jobs branch on the status alone.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from flask import Flask

import migdash
from migdash import create_app
from migdash.cli import main
from migdash.cli.base import MigdashGroup
from migdash.errors import MigdashError
from migdash.jobs.consumer import build_worker
from migdash.services import services_of

ENTRY_POINTS = {"migdash.__main__", "migdash.wsgi"}


def every_error_class() -> list[type[MigdashError]]:
    """MigdashError and every subclass defined anywhere in the package."""
    for module in pkgutil.walk_packages(migdash.__path__, "migdash."):
        # entry points build an app or run on import; migrations need Alembic's context
        if module.name in ENTRY_POINTS or ".migrations" in module.name:
            continue
        importlib.import_module(module.name)
    found: list[type[MigdashError]] = [MigdashError]
    for cls in found:
        found.extend(sub for sub in cls.__subclasses__() if sub not in found)
    return found


@pytest.mark.parametrize("error_class", every_error_class(), ids=lambda cls: cls.__name__)
def test_every_migdash_error_exits_1_with_its_message_and_hint(
    app: Flask, error_class: type[MigdashError]
) -> None:
    error = error_class.__new__(error_class)
    MigdashError.__init__(error, f"{error_class.__name__} happened")

    @click.group(cls=MigdashGroup, create_app=lambda: app, add_default_commands=False)
    def group() -> None:
        pass

    @group.command("fail")
    def fail() -> None:
        raise error

    result = CliRunner().invoke(group, ["fail"])
    assert result.exit_code == 1
    assert f"Error: {error_class.__name__} happened" in result.stderr
    if error.hint:
        assert f"hint: {error.hint}" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no-such-command"], "No such command 'no-such-command'"),
        (["status", "--no-such-option"], "No such option '--no-such-option'"),
        (["upgrade"], "Missing argument 'TARGET'"),
        (["user", "set-role", "bob", "superuser"], "'superuser' is not one of"),
        (["cancel", "seven"], "'seven' is not a valid integer"),
        (["env", "add", "qa", "--as"], "Option '--as' requires an argument"),
    ],
)
def test_a_wrong_command_line_exits_2(
    cli: Callable[..., Result], args: list[str], message: str
) -> None:
    result = cli(*args, ok=False)
    assert result.exit_code == 2
    assert message in result.output


def test_an_unusable_metadata_database_exits_1(tmp_path: Path) -> None:
    app = create_app(
        {
            "TESTING": True,
            "MIGDASH_INSTANCE": str(tmp_path / "instance"),
            "MIGDASH_SECRET_KEY": "test-secret-key",
            "MIGDASH_DATABASE_URL": f"sqlite:///{tmp_path / 'no-such-folder' / 'migdash.db'}",
        }
    )
    for args in (["status"], ["env", "add", "qa"], ["env", "add", "qa", "--as", "ada"]):
        result = app.test_cli_runner().invoke(main, args)
        assert result.exit_code == 1, args
        assert "the metadata database cannot be used" in result.output
        assert "Traceback" not in result.output


def test_a_cut_short_password_prompt_exits_1(cli: Callable[..., Result]) -> None:
    result = cli("user", "create", "eve", input="", ok=False)
    assert result.exit_code == 1
    assert "Aborted!" in result.output
    assert cli("user", "list").output == "no users\n"


# --- actions on targets ----------------------------------------------------------------------


@pytest.fixture
def dead_target(register: Callable[..., dict[str, str]], make_project: Callable[..., Any]) -> str:
    """A registered target nothing answers on (port 1), with a password to keep secret."""
    register(make_project("linear"), dead="postgresql+psycopg://app:Pa55-dead@127.0.0.1:1/app")
    return "dead"


@pytest.mark.parametrize("sql", [True, False], ids=["--sql", "request"])
def test_an_action_on_an_unreachable_target_exits_1(
    cli: Callable[..., Result], dead_target: str, sql: bool
) -> None:
    result = cli("upgrade", dead_target, "heads", *(["--sql"] if sql else []), ok=False)
    assert result.exit_code == 1
    assert "cannot plan: the target is unreachable" in result.output
    assert "Pa55-dead" not in result.output
    assert result.stdout == "", "nothing half-printed"
    assert cli("jobs", "--json").stdout.strip() == "[]"


@pytest.fixture
def run_one_job_soon(app: Flask) -> Iterator[Callable[[], None]]:
    """Start a thread that runs the next queued job, as one ``migdash worker`` thread would."""
    services = services_of(app)
    build_worker(services)
    threads: list[threading.Thread] = []

    def run() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            task = services.queue.huey.dequeue()
            if task is not None:
                services.queue.huey.execute(task)
                return
            time.sleep(0.05)

    def start() -> None:
        threads.append(threading.Thread(target=run, daemon=True))
        threads[-1].start()

    yield start
    for thread in threads:
        thread.join(timeout=60)


@pytest.mark.parametrize("outcome", ["succeeded", "failed"])
def test_wait_exits_1_unless_the_job_succeeded(
    cli: Callable[..., Result],
    make_project: Callable[..., Any],
    register: Callable[..., dict[str, str]],
    run_one_job_soon: Callable[[], None],
    outcome: str,
) -> None:
    project = make_project("linear")
    url = register(project, {"shop": ("dev", "a1")})["shop"]
    if outcome == "failed":  # b2 creates "orders": make that table exist already
        with sa.create_engine(url).begin() as connection:
            connection.exec_driver_sql("CREATE TABLE orders (id INTEGER)")
    run_one_job_soon()
    result = cli("upgrade", "shop", "heads", "--wait", "--timeout", "60", ok=outcome == "succeeded")
    assert result.stdout.endswith(f"[{outcome}]\n")
    assert result.exit_code == (0 if outcome == "succeeded" else 1)


def test_wait_exits_1_when_no_worker_ran_the_job_in_time(
    cli: Callable[..., Result],
    make_project: Callable[..., Any],
    register: Callable[..., dict[str, str]],
) -> None:
    register(make_project("linear"), {"shop": ("dev", "a1")})
    result = cli("upgrade", "shop", "heads", "--wait", "--timeout", "0.5", ok=False)
    assert result.exit_code == 1
    assert result.stdout.endswith("[queued]\n")


# --- a real process ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        (["no-such-command"], {}, 2, "No such command"),
        (["status"], {"MIGDASH_PROBE_TIMEOUT": "soon"}, 1, "MIGDASH_PROBE_TIMEOUT='soon'"),
        (["heads", "nope"], {}, 1, "no project named 'nope'"),
    ],
)
def test_a_real_process_exits_with_the_documented_status(
    tmp_path: Path, args: list[str], env: dict[str, str], code: int, message: str
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MIGDASH_")}
    done = subprocess.run(  # noqa: S603 - our own module
        [sys.executable, "-m", "migdash", *args],
        env={**clean, "MIGDASH_INSTANCE": str(tmp_path / "instance"), **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == code, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
