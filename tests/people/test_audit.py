"""The audit trail is append-only (ORM and database both refuse), filterable and exportable."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from migdash import create_app
from migdash.services import services_of
from migdash.store import audit
from migdash.store.audit import EXPORT_FIELDS, AuditImmutable
from migdash.store.models import AuditEvent

ROW = re.compile(r"<tr><td>[\d-]+ [\d:]+</td><td>([^<]*)</td><td><code>([^<]+)</code></td>")


def seed_event(sessions: Any, **fields: Any) -> int:
    with sessions() as session:
        event = audit.record(session, **fields)
        session.commit()
        return event.id


def snapshot(db_engine: sa.Engine) -> list[tuple[Any, ...]]:
    with db_engine.connect() as connection:
        return [
            tuple(r)
            for r in connection.execute(sa.select(AuditEvent.__table__).order_by(AuditEvent.id))
        ]


# --- append-only --------------------------------------------------------------------------


def test_the_orm_refuses_to_change_or_delete_an_event(app: Flask) -> None:
    services = services_of(app)
    event_id = seed_event(services.sessions, actor="olga", action="job.request", target="t1")
    before = snapshot(services.db_engine)

    with services.sessions() as session:
        event = session.get(AuditEvent, event_id)
        assert event is not None
        event.actor = "mallory"
        with pytest.raises(AuditImmutable, match="append-only"):
            session.commit()
    with services.sessions() as session:
        session.delete(session.get(AuditEvent, event_id))
        with pytest.raises(AuditImmutable):
            session.flush()
    # bulk statements skip before_flush; the database refuses them
    with services.sessions() as session, pytest.raises(sa.exc.DBAPIError, match="append-only"):
        session.execute(sa.update(AuditEvent).values(actor="mallory"))
    with services.sessions() as session, pytest.raises(sa.exc.DBAPIError, match="append-only"):
        session.execute(sa.delete(AuditEvent).where(AuditEvent.id == event_id))
    assert snapshot(services.db_engine) == before


def assert_database_refuses_changes(db_engine: sa.Engine) -> None:
    before = snapshot(db_engine)
    assert before, "there is something to protect"
    for statement in (
        "UPDATE audit_event SET actor = 'mallory'",
        "UPDATE audit_event SET detail = '{}' WHERE id = 1",
        "DELETE FROM audit_event",
        "DELETE FROM audit_event WHERE id = 1",
    ):
        with (
            pytest.raises(sa.exc.DBAPIError, match="audit events are append-only"),
            db_engine.begin() as connection,
        ):
            connection.execute(sa.text(statement))
    assert snapshot(db_engine) == before
    with db_engine.begin() as connection:  # appending still works
        connection.execute(
            sa.insert(AuditEvent.__table__).values(
                at=datetime(2030, 1, 1), actor="core", action="test.append", detail={}
            )
        )
    assert len(snapshot(db_engine)) == len(before) + 1


def test_sqlite_refuses_raw_updates_and_deletes(app: Flask) -> None:
    services = services_of(app)
    seed_event(services.sessions, actor="olga", action="job.request")
    assert_database_refuses_changes(services.db_engine)


@pytest.fixture
def postgres_app(tmp_path: Path, postgres_url: str) -> Iterator[Flask]:
    """The metadata database on PostgreSQL (a fresh database, dropped afterwards)."""
    (tmp_path / "pg-instance").mkdir()
    app = create_app(
        {
            "TESTING": True,
            "MIGDASH_INSTANCE": str(tmp_path / "pg-instance"),
            "MIGDASH_SECRET_KEY": "pg-secret",
            "MIGDASH_DATABASE_URL": postgres_url,
        }
    )
    services_of(app).upgrade_schema()
    yield app
    services_of(app).probes.close()
    services_of(app).db_engine.dispose()


@pytest.mark.server
def test_postgresql_refuses_raw_updates_and_deletes(postgres_app: Flask) -> None:
    services = services_of(postgres_app)
    assert services.db_engine.dialect.name == "postgresql"
    seed_event(services.sessions, actor="olga", action="job.request", detail={"k": "v"})
    seed_event(services.sessions, actor="amir", action="job.approve")
    with services.sessions() as session:
        session.execute(sa.select(AuditEvent)).all()
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            session.execute(sa.update(AuditEvent).values(actor="mallory"))
    assert_database_refuses_changes(services.db_engine)


# --- the page and the exports -------------------------------------------------------------


@pytest.fixture
def trail(app: Flask, login: Callable[..., FlaskClient]) -> FlaskClient:
    """A few events with known fields, and a client signed in as an approver (who may audit)."""
    sessions = services_of(app).sessions
    seed_event(
        sessions,
        actor="olga",
        action="job.request",
        project="shop",
        environment="prod",
        target="shop-prod",
        job_id=7,
        from_revisions=["a1"],
        to_revision="heads",
        sql="CREATE TABLE orders (id INTEGER)",
        detail={"kind": "upgrade"},
    )
    seed_event(
        sessions,
        actor="amir",
        action="job.approve",
        project="shop",
        environment="prod",
        target="shop-prod",
        job_id=7,
        from_revisions=["a1"],
        to_revision="heads",
        sql="CREATE TABLE orders (id INTEGER)",
        detail={"comment": "fine"},
    )
    seed_event(
        sessions,
        actor="olga",
        action="job.request",
        project="billing",
        target="billing-dev",
        job_id=8,
        from_revisions=[],
        to_revision="+1",
    )
    seed_event(
        sessions,
        actor="cli",
        action="user.set_role",
        now=datetime(2020, 1, 2, 3, 4),
        detail={"user": "olga", "from": "viewer", "to": "operator"},
    )
    client = login("approver", username="auditor")
    # a failed sign-in whose username is a spreadsheet formula
    client.post("/login", data={"username": '=HYPERLINK("http://x")', "password": "nope-nope"})
    return client


def page_rows(client: FlaskClient, query: str) -> list[tuple[str, str]]:
    response = client.get(f"/audit/?{query}")
    assert response.status_code == 200
    return [(a.replace("&#34;", '"'), b) for a, b in ROW.findall(response.get_data(as_text=True))]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("actor=olga", [("olga", "job.request"), ("olga", "job.request")]),
        (
            "action=job.",
            [("olga", "job.request"), ("amir", "job.approve"), ("olga", "job.request")],
        ),
        ("action=job.approve", [("amir", "job.approve")]),
        ("target=shop-prod", [("amir", "job.approve"), ("olga", "job.request")]),
        ("project=billing", [("olga", "job.request")]),
        ("since=2020-01-02T03:04&action=user", [("cli", "user.set_role")]),
        ("since=2020-01-03&action=user", []),
        ("actor=olga&project=shop", [("olga", "job.request")]),
        ("action=auth.login_failed", [('=HYPERLINK("http://x")', "auth.login_failed")]),
    ],
)
def test_the_audit_page_filters(
    trail: FlaskClient, query: str, expected: list[tuple[str, str]]
) -> None:
    assert page_rows(trail, query) == expected


def test_a_bad_since_is_a_clear_400(trail: FlaskClient) -> None:
    response = trail.get("/audit/?since=last+tuesday")
    assert response.status_code == 400
    assert "&#39;since&#39; must be a date like 2026-11-24" in response.get_data(as_text=True)


def test_csv_and_json_exports_hold_the_filtered_events(trail: FlaskClient) -> None:
    exported = trail.get("/audit/export.csv?target=shop-prod")
    assert exported.mimetype == "text/csv"
    assert "attachment" in exported.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    as_json = trail.get("/audit/export.json?target=shop-prod").get_json()
    assert (
        [r["action"] for r in rows]
        == [e["action"] for e in as_json]
        == ["job.approve", "job.request"]
    )
    assert list(rows[0]) == list(EXPORT_FIELDS)
    assert [int(r["id"]) for r in rows] == [e["id"] for e in as_json]

    approve_row, request_row = rows
    expected_hash = audit.sql_hash("CREATE TABLE orders (id INTEGER)")
    assert request_row["actor"] == "olga"
    assert (request_row["project"], request_row["environment"], request_row["job_id"]) == (
        "shop",
        "prod",
        "7",
    )
    assert (request_row["from_revisions"], request_row["to_revision"]) == ("a1", "heads")
    assert request_row["sql_hash"] == approve_row["sql_hash"] == expected_hash
    assert json.loads(approve_row["detail"]) == {"comment": "fine"}
    approve_json = as_json[0]
    assert approve_json["actor"] == "amir"
    assert approve_json["from_revisions"] == ["a1"]
    assert approve_json["detail"] == {"comment": "fine"}
    assert approve_json["sql_hash"] == expected_hash
    assert approve_json["at"].endswith("Z")


def test_exported_cells_never_run_as_spreadsheet_formulas(trail: FlaskClient) -> None:
    rows = list(
        csv.DictReader(
            io.StringIO(
                trail.get("/audit/export.csv?action=auth.login_failed").get_data(as_text=True)
            )
        )
    )
    assert [r["actor"] for r in rows] == ['\'=HYPERLINK("http://x")']
    assert rows[0]["ip"] == "127.0.0.1"
    (event,) = trail.get("/audit/export.json?action=auth.login_failed").get_json()
    assert event["actor"] == '=HYPERLINK("http://x")', "JSON keeps the value as it was"
