"""Approve and Reject are CSRF-protected; the CSRF-exempt API never accepts the session cookie."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from migdash import create_app
from migdash.jobs.requests import request_target_action
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import Approval, AuditEvent, Job, JobState, Role, utcnow
from migdash.store.users import create_user

CSRF_FIELD = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


@pytest.fixture
def csrf_app(
    tmp_path: Path, make_project: Callable[..., Any], make_target: Callable[..., str]
) -> Iterator[Flask]:
    """Like the ``app`` fixture but with CSRF protection on, as in production."""
    (tmp_path / "csrf-instance").mkdir()
    app = create_app(
        {
            "TESTING": True,
            "MIGDASH_INSTANCE": str(tmp_path / "csrf-instance"),
            "MIGDASH_SECRET_KEY": "csrf-secret-key",
            "MIGDASH_PROBE_TIMEOUT": 3.0,
        }
    )
    services = services_of(app)
    services.upgrade_schema()
    project = make_project("linear")
    with services.sessions() as session:
        registry.add_project(session, "linear", str(project.location))
        registry.add_environment(session, "prod", protected=True)
        registry.add_target(
            session,
            "shop-prod",
            project="linear",
            environment="prod",
            url=make_target(project, at="a1", name="shop-prod"),
        )
        create_user(session, "olga", "olga-password", Role.OPERATOR)
        create_user(session, "amir", "amir-password", Role.APPROVER)
        session.commit()
    yield app
    services.probes.close()
    services.db_engine.dispose()


def held_job(app: Flask) -> int:
    services = services_of(app)
    with services.sessions() as session:
        job = request_target_action(
            session,
            services.jobs,
            registry.get_target(session, "shop-prod"),
            "upgrade",
            "heads",
            actor="olga",
            role=Role.OPERATOR,
            now=utcnow(),
        )
        session.commit()
        assert job.state == JobState.AWAITING_APPROVAL.value
        return job.id


def signed_in(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    token = CSRF_FIELD.search(client.get("/login").get_data(as_text=True))
    assert token is not None
    response = client.post(
        "/login",
        data={
            "username": username,
            "password": f"{username}-password",
            "csrf_token": token.group(1),
        },
    )
    assert response.status_code == 302
    return client


def decisions(app: Flask, job_id: int) -> tuple[str, int, int]:
    with services_of(app).sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        approvals = session.scalar(sa.select(sa.func.count()).select_from(Approval)) or 0
        audited = (
            session.scalar(
                sa.select(sa.func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action.in_(["job.approve", "job.reject"]))
            )
            or 0
        )
        return job.state, approvals, audited


def test_approve_and_reject_need_the_csrf_token(csrf_app: Flask) -> None:
    job_id = held_job(csrf_app)
    amir = signed_in(csrf_app, "amir")
    page = amir.get(f"/approvals/{job_id}").get_data(as_text=True)
    plan_hash = re.search(r'name="plan_hash" value="([0-9a-f]{64})"', page)
    token = CSRF_FIELD.search(page)
    assert plan_hash
    assert token

    for path in (f"/approvals/{job_id}/approve", f"/approvals/{job_id}/reject"):
        missing = amir.post(path, data={"plan_hash": plan_hash.group(1)})
        assert missing.status_code == 400
        assert "CSRF" in missing.get_data(as_text=True)
        forged = amir.post(path, data={"plan_hash": plan_hash.group(1), "csrf_token": "forged"})
        assert forged.status_code == 400
        htmx_forged = amir.post(
            path,
            data={"plan_hash": plan_hash.group(1)},
            headers={"HX-Request": "true", "X-CSRFToken": "forged"},
        )
        assert htmx_forged.status_code == 400
    assert decisions(csrf_app, job_id) == ("awaiting_approval", 0, 0), "nothing was decided"

    accepted = amir.post(
        f"/approvals/{job_id}/approve",
        data={"plan_hash": plan_hash.group(1), "csrf_token": token.group(1)},
    )
    assert accepted.status_code == 302
    assert decisions(csrf_app, job_id) == ("queued", 1, 1)


def test_the_api_ignores_the_session_cookie(csrf_app: Flask) -> None:
    """The API is CSRF-exempt because it only believes Bearer tokens; a cookie gets nothing."""
    job_id = held_job(csrf_app)
    amir = signed_in(csrf_app, "amir")
    response = amir.post(f"/api/v1/jobs/{job_id}/approve", json={})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert amir.get("/api/v1/status").status_code == 401
    assert decisions(csrf_app, job_id) == ("awaiting_approval", 0, 0)
