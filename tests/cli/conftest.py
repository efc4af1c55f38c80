"""Fixtures for the CLI suite: run migdash's own command group against the test app.

``runner.invoke(main, args)`` hands the group a ``ScriptInfo`` that returns the
test ``app`` (Flask's ``FlaskCliRunner`` does that when no ``obj`` is given),
so every command runs against the fixture's temporary metadata database.
"""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from click.testing import Result
from flask.testing import FlaskCliRunner

from migdash.cli import main
from migdash.store import registry


@pytest.fixture
def cli(runner: FlaskCliRunner) -> Callable[..., Result]:
    """Run ``migdash ARGS``; insist on exit code 0, or with ``ok=False`` on a non-zero one.

    Every error path is asserted to fail (no error may exit 0), whatever else
    the test then checks about the message or the exact code.
    """

    def invoke(*args: str, ok: bool = True, input: str | None = None) -> Result:
        result = runner.invoke(main, list(args), input=input)
        if ok:
            assert result.exit_code == 0, (result.output, result.exception)
        else:
            assert result.exit_code != 0, f"an error path exited 0: {result.output}"
        return result

    return invoke


@pytest.fixture
def cli_json(cli: Callable[..., Result]) -> Callable[..., Any]:
    """Run ``migdash ARGS --json`` and parse what it printed on stdout."""

    def invoke(*args: str) -> Any:
        return json.loads(cli(*args, "--json").stdout)

    return invoke


@pytest.fixture
def register(db_session: Any, make_target: Callable[..., str]) -> Callable[..., dict[str, str]]:
    """Register a ``make_project`` result with targets; returns target name -> URL.

    *targets* maps a name to ``(environment, at)`` (a SQLite database made at
    revision *at*); extra keyword arguments map a name to a ready URL (in ``dev``).
    """

    def factory(
        project: Any, targets: dict[str, tuple[str, str | None]] | None = None, **urls: str
    ) -> dict[str, str]:
        registry.add_project(db_session, project.name, str(project.location))
        planned = {
            name: (environment, make_target(project, at=at, name=name))
            for name, (environment, at) in (targets or {}).items()
        }
        planned.update({name: ("dev", url) for name, url in urls.items()})
        for name, (environment, url) in planned.items():
            registry.add_target(
                db_session, name, project=project.name, environment=environment, url=url
            )
        db_session.commit()
        return {name: url for name, (_environment, url) in planned.items()}

    return factory


@pytest.fixture
def alembic_history() -> Callable[[Path], list[str]]:
    """Revision ids in the order ``alembic history`` prints them (Alembic's own command)."""

    def run(location: Path) -> list[str]:
        buffer = io.StringIO()
        config = Config(stdout=buffer)
        config.set_main_option("script_location", str(location))
        command.history(config)
        return re.findall(r"-> (\w+)", buffer.getvalue())

    return run


@pytest.fixture
def alembic_apply_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> Callable[..., list[str]]:
    """The revisions ``alembic upgrade heads`` really runs, on a copy of a SQLite target."""

    def run(project: Any, url: str) -> list[str]:
        source = Path(sa.engine.make_url(url).database or "")
        copy = tmp_path / f"apply-order-{source.name}"
        shutil.copy(source, copy)
        db_engine = sa.create_engine(f"sqlite:///{copy}")
        caplog.clear()
        with (
            caplog.at_level(logging.INFO, logger="alembic.runtime.migration"),
            db_engine.begin() as connection,
        ):
            config = project.alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "heads")
        db_engine.dispose()
        return re.findall(r"Running upgrade .*? -> (\w+)", caplog.text)

    return run


@pytest.fixture
def alembic_script() -> Callable[[Path], ScriptDirectory]:
    """Alembic's own ``ScriptDirectory`` for a project folder: the oracle for fields."""

    def load(location: Path) -> ScriptDirectory:
        config = Config()
        config.set_main_option("script_location", str(location))
        return ScriptDirectory.from_config(config)

    return load
