"""The target page's drift section, its button, the overview's badge, and where env.py runs.

The button is for operators (``Permission.REQUEST``): a check runs the
project's ``env.py`` against the target, as an autogenerate preview does,
so a viewer reads the latest check but cannot start one.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from migdash import create_app
from migdash.cli import main
from migdash.scaffold import migrate_database
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import Project, Role
from migdash.store.schema_models import DriftCheck
from migdash.store.users import create_user
from tests.jobs.test_drift_models import NOTE_OPERATION, models_project, sqlite_url
from tests.people.test_csrf import CSRF_FIELD, signed_in
from tests.web.pagetext import section

HX = {"HX-Request": "true"}
TAGS = re.compile(r"<[^>]+>")


def text_of(fragment: str) -> str:
    """What a reader sees: tags removed, entities decoded."""
    return html.unescape(TAGS.sub("", fragment))


def drift_section(page: str) -> str:
    return section(page, '<section id="drift"', "</section>")


def register(app: Flask, project: str, location: Path, target: str, url: str) -> None:
    migrate_database(location, url, "heads")
    with services_of(app).sessions() as session:
        if session.scalar(sa.select(Project).where(Project.name == project)) is None:
            registry.add_project(session, project, str(location))
        registry.add_target(session, target, project=project, environment="dev", url=url)
        session.commit()


def drift_rows(app: Flask) -> list[tuple[str, str]]:
    with services_of(app).sessions() as session:
        return [(c.kind, c.outcome) for c in session.scalars(sa.select(DriftCheck)).all()]


@pytest.fixture
def shop(app: Flask, tmp_path: Path) -> str:
    """A target whose models have a column no revision has (drift)."""
    register(
        app, "shop", models_project(tmp_path / "shop"), "shop-db", sqlite_url(tmp_path, "shop")
    )
    return "shop-db"


# --- the section and the button -----------------------------------------------------------------


def test_a_viewer_reads_the_section_but_gets_no_button(
    shop: str, login: Callable[..., FlaskClient]
) -> None:
    viewer = login(Role.VIEWER)
    part = drift_section(viewer.get(f"/targets/{shop}").get_data(as_text=True))
    assert "Never checked." in part
    assert 'id="check-drift"' not in part
    response = viewer.post(f"/targets/{shop}/drift")
    assert response.status_code == 403
    assert "needs the operator role" in response.get_data(as_text=True)


def test_the_button_records_a_check_and_the_page_shows_the_operations(
    app: Flask, shop: str, login: Callable[..., FlaskClient]
) -> None:
    operator = login(Role.OPERATOR)
    page = operator.get(f"/targets/{shop}").get_data(as_text=True)
    assert 'id="check-drift"' in drift_section(page)

    response = operator.post(f"/targets/{shop}/drift")
    assert response.status_code == 303
    assert response.headers["Location"] == f"/targets/{shop}#drift"
    assert drift_rows(app) == [("models", "drift")]

    part = drift_section(operator.get(f"/targets/{shop}").get_data(as_text=True))
    assert 'data-outcome="drift"' in part
    assert "1 difference: add_column accounts.note" in text_of(part)
    assert "column accounts.note (VARCHAR(200)) is only in the models" in text_of(part)
    operations = section(part, '<div id="drift-operations">', "</div>\n")
    assert '<span class="n">op</span>' in operations, "highlighted by Pygments"
    assert NOTE_OPERATION in text_of(operations)


def test_an_htmx_check_answers_with_the_section_only(
    shop: str, login: Callable[..., FlaskClient]
) -> None:
    operator = login(Role.OPERATOR)
    response = operator.post(f"/targets/{shop}/drift", headers=HX)
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith('<section id="drift" data-outcome="drift">')
    assert "<html" not in body
    assert NOTE_OPERATION in text_of(body)


def test_a_failing_env_py_shows_the_error_and_no_drift(
    app: Flask, tmp_path: Path, login: Callable[..., FlaskClient]
) -> None:
    location = models_project(tmp_path / "sick")
    register(app, "sick", location, "sick-db", sqlite_url(tmp_path, "sick"))
    env = location / "env.py"
    env.write_text('raise RuntimeError("env.py <b>broke</b>")\n' + env.read_text())
    operator = login(Role.OPERATOR)
    operator.post("/targets/sick-db/drift")
    part = drift_section(operator.get("/targets/sick-db").get_data(as_text=True))
    assert 'data-outcome="error"' in part
    assert "RuntimeError: env.py &lt;b&gt;broke&lt;/b&gt;" in part, "escaped"
    assert "drift-operations" not in part
    assert drift_rows(app) == [("models", "error")]


@pytest.fixture
def csrf_app(tmp_path: Path) -> Iterator[Flask]:
    """The app with CSRF protection on, as in production, and a drifting target."""
    app = create_app(
        {
            "TESTING": True,
            "MIGDASH_INSTANCE": str(tmp_path / "csrf-instance"),
            "MIGDASH_SECRET_KEY": "csrf-secret-key",
            "MIGDASH_PROBE_TIMEOUT": 3.0,
        }
    )
    (tmp_path / "csrf-instance").mkdir(exist_ok=True)
    services = services_of(app)
    services.upgrade_schema()
    register(
        app, "shop", models_project(tmp_path / "shop"), "shop-db", sqlite_url(tmp_path, "shop")
    )
    with services.sessions() as session:
        create_user(session, "olga", "olga-password", Role.OPERATOR)
        session.commit()
    yield app
    services.probes.close()
    services.db_engine.dispose()


def test_the_check_needs_the_csrf_token(csrf_app: Flask) -> None:
    olga = signed_in(csrf_app, "olga")
    for forged in ({}, {"csrf_token": "forged"}):
        assert olga.post("/targets/shop-db/drift", data=forged).status_code == 400
    assert drift_rows(csrf_app) == []
    page = olga.get("/targets/shop-db").get_data(as_text=True)
    token = CSRF_FIELD.search(drift_section(page))
    assert token is not None, "the form carries its token"
    response = olga.post("/targets/shop-db/drift", data={"csrf_token": token.group(1)})
    assert response.status_code == 303
    assert drift_rows(csrf_app) == [("models", "drift")]


# --- the overview badge ---------------------------------------------------------------------------


def test_the_overview_badges_drifted_targets_only_from_one_query(
    app: Flask, tmp_path: Path, login: Callable[..., FlaskClient]
) -> None:
    register(
        app, "shop", models_project(tmp_path / "shop"), "shop-db", sqlite_url(tmp_path, "shop")
    )
    register(app, "shop", models_project(tmp_path / "shop"), "shop-db2", sqlite_url(tmp_path, "s2"))
    calm = models_project(tmp_path / "calm", columns="")
    register(app, "calm", calm, "calm-db", sqlite_url(tmp_path, "calm"))
    register(app, "calm", calm, "never-db", sqlite_url(tmp_path, "never"))
    operator = login(Role.OPERATOR)
    for target in ("shop-db", "shop-db2", "calm-db"):
        assert operator.post(f"/targets/{target}/drift").status_code == 303

    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    db_engine = services_of(app).db_engine
    sa.event.listen(db_engine, "before_cursor_execute", record)
    try:
        page = operator.get("/").get_data(as_text=True)
    finally:
        sa.event.remove(db_engine, "before_cursor_execute", record)
    badged = set(re.findall(r'href="/targets/([^"#]+)#drift"', page))
    assert badged == {"shop-db", "shop-db2"}
    assert "1 difference: add_column accounts.note" in page, "the badge's title says what"
    reads = [s for s in statements if "drift_check" in s]
    assert len(reads) == 2, "one query per kind of check (models, history), not one per target"


# --- project code never runs in this process ---------------------------------------------

SPY = """import json as _json, os as _os, sys as _sys
with open({log!r}, "a") as _log:
    _log.write(_json.dumps({{"pid": _os.getpid(), "env": dict(_os.environ)}}) + "\\n")
"""


def test_env_py_runs_only_in_a_child_without_the_keys(
    app: Flask,
    tmp_path: Path,
    login: Callable[..., FlaskClient],
    runner: FlaskCliRunner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = tmp_path / "spy.log"
    location = models_project(tmp_path / "spied", prelude=SPY.format(log=str(log)))
    register(app, "spied", location, "spied-db", sqlite_url(tmp_path, "spied"))
    log.unlink()  # setting the target up ran env.py here; from now on it must not
    instance = Path(services_of(app).settings["MIGDASH_INSTANCE"])
    keys = {
        "MIGDASH_ENCRYPTION_KEY": (instance / "encryption.key").read_text().strip(),
        "MIGDASH_SECRET_KEY": "test-secret-key",
        "MIGDASH_DATABASE_URL": services_of(app).settings["MIGDASH_DATABASE_URL"],
    }
    for name, value in keys.items():
        monkeypatch.setenv(name, value)

    operator = login(Role.OPERATOR)
    assert operator.post("/targets/spied-db/drift").status_code == 303
    assert operator.post("/targets/spied-db/drift", headers=HX).status_code == 200
    assert runner.invoke(main, ["drift", "spied-db"]).exit_code == 1

    seen = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(seen) == 3, "env.py ran once per check"
    assert os.getpid() not in {record["pid"] for record in seen}
    for record in seen:
        leaked = {n for n, v in keys.items() if any(v in value for value in record["env"].values())}
        assert leaked == set()
        assert not any(name.startswith("MIGDASH_") for name in record["env"])
    assert drift_rows(app) == [("models", "drift")] * 3
