"""``migdash status`` against real PostgreSQL and MariaDB targets."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from migdash.store import registry

pytestmark = pytest.mark.server


@pytest.fixture(params=["postgres_url", "mariadb_url"])
def server_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database on each real server (skips when the server is not there)."""
    url: str = request.getfixturevalue(request.param)
    return url


def test_status_then_alembic_upgrade_agree(
    cli_json: Callable[..., Any],
    make_project: Callable[..., Any],
    db_session: Any,
    server_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    project = make_project("two_heads")
    command.upgrade(project.alembic_config(server_url), "a1")
    registry.add_project(db_session, project.name, str(project.location))
    registry.add_target(
        db_session, "server-db", project=project.name, environment="dev", url=server_url
    )
    db_session.commit()
    (report,) = cli_json("status")
    assert (report["state"], report["current"]) == ("behind", ["a1"])
    caplog.clear()  # only this upgrade's steps, whatever an earlier test left the level at
    with caplog.at_level(logging.INFO, logger="alembic.runtime.migration"):
        command.upgrade(project.alembic_config(server_url), "heads")
    applied = re.findall(r"Running upgrade .*? -> (\w+)", caplog.text)
    assert report["pending"] == applied
    (after,) = cli_json("status")
    assert after["state"] == "up_to_date"
    assert sorted(after["current"]) == sorted(after["heads"]) == ["c3", "d4"]


def test_wrong_password_is_unreachable_and_scrubbed(
    cli_json: Callable[..., Any],
    make_project: Callable[..., Any],
    db_session: Any,
    server_url: str,
) -> None:
    project = make_project("linear")
    wrong = sa.engine.make_url(server_url).set(password="Wr0ng-Pa55-xyz")
    registry.add_project(db_session, project.name, str(project.location))
    registry.add_target(
        db_session,
        "locked-out",
        project=project.name,
        environment="dev",
        url=wrong.render_as_string(hide_password=False),
    )
    db_session.commit()
    (report,) = cli_json("status")
    assert report["state"] == "unreachable"
    assert report["error"]
    assert "Wr0ng-Pa55-xyz" not in str(report)
