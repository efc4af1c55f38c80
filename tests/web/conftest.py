"""Fixtures for the web suite: register real projects and targets, probe them, read pages.

Data goes in through ``migdash.store.registry`` (the functions the admin pages
and the CLI call); states come from probing real SQLite databases, so every
page is checked against what Alembic itself would say about those databases.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from flask import Flask

from migdash import create_app
from migdash.jobs.requests import request_target_action
from migdash.scaffold import RevisionSpec, write_project
from migdash.services import services_of
from migdash.status import refresh_status
from migdash.store import registry
from migdash.store.models import Role, utcnow
from migdash.store.queries import find_targets
from migdash.store.users import create_user
from tests.web.pagetext import HOSTILE, Site


@pytest.fixture
def register_project(app: Flask, db_session: Any) -> Callable[..., Any]:
    """Register a ``make_project`` result under its name (or *name*) and commit."""

    def factory(project: Any, name: str | None = None, **options: Any) -> Any:
        row = registry.add_project(
            db_session, name or project.name, str(project.location), **options
        )
        db_session.commit()
        return row

    return factory


@pytest.fixture
def register_target(db_session: Any, make_target: Callable[..., str]) -> Callable[..., str]:
    """Create a SQLite database at revision *at* (unless *url* is given) and register it."""

    def factory(
        project: Any,
        name: str,
        *,
        env: str = "dev",
        at: str | None = "heads",
        url: str | None = None,
        registered_as: str | None = None,
    ) -> str:
        url = url or make_target(project, at=at, name=name)
        registry.add_target(
            db_session, name, project=registered_as or project.name, environment=env, url=url
        )
        db_session.commit()
        return url

    return factory


@pytest.fixture
def probe_all(app: Flask) -> Callable[[], list[Any]]:
    """Probe every registered target now and store snapshots (what the overview does)."""

    def run() -> list[Any]:
        services = services_of(app)
        with services.sessions() as session:
            reports = refresh_status(
                session, services.catalog, services.probes, find_targets(session)
            )
            session.commit()
        return reports

    return run


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


# --- one shared, read-mostly site for page sweeps -----------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """An app with a ``shop`` project, a ``hostile`` one and probed targets, built once per module.

    For tests that only read pages: signing in costs two password hashes, which
    would dominate a sweep over every page if each page built its own app.
    """
    root = tmp_path_factory.mktemp("site")
    (root / "instance").mkdir()
    app = create_app(
        {
            "TESTING": True,
            "MIGDASH_INSTANCE": str(root / "instance"),
            "MIGDASH_SECRET_KEY": "site-secret-key",
            "MIGDASH_PROBE_TIMEOUT": 3.0,
            "WTF_CSRF_ENABLED": False,
        }
    )
    services = services_of(app)
    services.upgrade_schema()
    shop = write_project(
        root / "shop",
        [
            RevisionSpec("a1", None, "create accounts", table="accounts"),
            RevisionSpec("b2", "a1", "create orders", table="orders"),
            RevisionSpec("c3", "b2", "left branch", table="lefty"),
            RevisionSpec("d4", "b2", "right branch", table="righty"),
            RevisionSpec("e5", ("c3", "d4"), "merge left and right"),
        ],
    )
    hostile = write_project(
        root / "<script>alert(1)<" / "script>" / "hostile",
        [
            RevisionSpec("a1", None, HOSTILE, table="t1", extra_doc=f"Details: {HOSTILE}"),
            RevisionSpec("b2", "a1", f"{HOSTILE} two", branch_labels=("x<b>",), table="t2"),
        ],
    )
    with services.sessions() as session:
        registry.add_project(session, "shop", str(shop))
        registry.add_project(session, "hostile", str(hostile))
        gone = write_project(hostile.parent / "missing", [RevisionSpec("a1", None, "soon gone")])
        registry.add_project(session, "hostile-gone", str(gone))
        shutil.rmtree(gone)  # registered while sound, then removed from the disk
        for name, location, at in [("shop-dev", shop, "c3"), ("hostile-dev", hostile, "a1")]:
            url = f"sqlite:///{root / name}.db"
            _upgrade(location, url, at)
            registry.add_target(
                session, name, project=name.split("-")[0], environment="dev", url=url
            )
        create_user(session, "site-admin", "site-password", Role.ADMIN)
        targets = find_targets(session)
        reports = refresh_status(session, services.catalog, services.probes, targets)
        assert [r.status.state.value for r in reports] == ["behind", "behind"]
        for target in targets:  # job rows only; nothing is queued or run
            request_target_action(
                session,
                services.jobs,
                target,
                "upgrade",
                "heads",
                actor="site-admin",
                role=Role.ADMIN,
                now=utcnow(),
            )
        session.commit()
    client = app.test_client()
    response = client.post("/login", data={"username": "site-admin", "password": "site-password"})
    assert response.status_code == 302
    yield Site(app, client, hostile)
    services.probes.close()
    services.db_engine.dispose()


def _upgrade(location: Path, url: str, revision: str) -> None:
    db_engine = sa.create_engine(url)
    with db_engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(location))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    db_engine.dispose()
