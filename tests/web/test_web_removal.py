"""The admin's remove link opens a confirmation page; only its POST (with CSRF) removes.

The world is one protected prod target with an upgrade awaiting approval
(requested by an operator through :func:`request_target_action`), one dev
target, and an admin signed in through the login form.  What the pages say
is checked against the metadata database read in a fresh session.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from migdash import create_app
from migdash.jobs.locks import acquire_lease
from migdash.jobs.records import move_job
from migdash.jobs.requests import request_target_action
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import AuditEvent, Job, JobState, Project, Role, Target, utcnow
from migdash.store.users import create_user
from tests.web.pagetext import HOSTILE, INLINE_SCRIPT

SEEN = re.compile(r'<input type="hidden" name="seen" value="([0-9a-f]{64})">')
CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def build_world(
    app: Flask, make_project: Callable[..., Any], make_target: Callable[..., str]
) -> int:
    """shop-dev and shop-prod (protected) of project shop; returns the held prod upgrade's id."""
    project = make_project("linear", name="shop")
    services = services_of(app)
    with services.sessions() as session:
        registry.add_environment(session, "dev")
        registry.add_environment(session, "prod", protected=True)
        registry.add_project(session, "shop", str(project.location))
        for name, env in [("shop-dev", "dev"), ("shop-prod", "prod")]:
            url = make_target(project, at="a1", name=name)
            registry.add_target(session, name, project="shop", environment=env, url=url)
        create_user(session, "olga", "olga-password", Role.OPERATOR)
        session.commit()
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
        assert job is not None
        session.commit()
        return job.id


@pytest.fixture
def held(app: Flask, make_project: Callable[..., Any], make_target: Callable[..., str]) -> int:
    return build_world(app, make_project, make_target)


@pytest.fixture
def admin(login: Callable[..., FlaskClient]) -> FlaskClient:
    return login(Role.ADMIN, username="root")


@pytest.fixture
def read(app: Flask) -> Iterator[Callable[[], Session]]:
    opened: list[Session] = []

    def open_session() -> Session:
        opened.append(services_of(app).sessions())
        return opened[-1]

    yield open_session
    for session in opened:
        session.close()


def snapshot(app: Flask) -> dict[str, Any]:
    """Projects, targets, job states and the audit trail's length: what a removal would change."""
    with services_of(app).sessions() as session:
        return {
            "projects": sorted(session.scalars(sa.select(Project.name))),
            "targets": sorted(session.scalars(sa.select(Target.name))),
            "jobs": sorted((j.id, j.state) for j in session.scalars(sa.select(Job))),
            "audit": session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)),
        }


def seen_on(page: str) -> str:
    match = SEEN.search(page)
    assert match, "the confirmation form carries what it showed"
    return match.group(1)


def run_as_worker(app: Flask, target: str) -> int:
    """Request an upgrade of an unprotected target, then take its lease and claim it."""
    services = services_of(app)
    with services.sessions() as session:
        row = registry.get_target(session, target)
        job = request_target_action(
            session,
            services.jobs,
            row,
            "upgrade",
            "heads",
            actor="olga",
            role=Role.OPERATOR,
            now=utcnow(),
        )
        assert job is not None
        session.commit()
        now = utcnow()
        assert acquire_lease(session, row.id, job.id, "w1", now, timedelta(minutes=5)) is None
        assert move_job(
            session, job.id, JobState.QUEUED, JobState.RUNNING, started_at=now, worker="w1"
        )
        session.commit()
        return job.id


def test_the_registry_links_to_a_confirmation_page_not_a_delete(
    app: Flask, admin: FlaskClient, held: int
) -> None:
    before = snapshot(app)
    index = admin.get("/admin/").get_data(as_text=True)
    assert 'method="post" action="/admin/projects/shop/delete"' not in index
    assert 'href="/admin/projects/shop/delete"' in index
    assert 'href="/admin/targets/shop-prod/delete"' in index
    assert 'href="/admin/environments/prod/delete"' in index

    page = admin.get("/admin/projects/shop/delete")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    targets = body[body.index('id="removal-targets"') : body.index('id="removal-jobs"')]
    assert "shop-dev" in targets
    assert "shop-prod" in targets
    assert f'data-job="{held}" data-state="awaiting_approval"' in body
    assert "upgrade shop-prod to heads" in body
    assert "What will happen" in body
    assert f"Job {held} (upgrade shop-prod to heads, awaiting_approval) is cancelled" in body
    assert 'id="confirm-remove"' in body
    admin.get("/admin/projects/shop/delete")
    admin.get("/admin/targets/shop-prod/delete")
    assert snapshot(app) == before, "a GET removed or cancelled something"


def test_removing_a_project_cancels_its_pending_prod_approval(
    app: Flask, admin: FlaskClient, held: int, read: Callable[[], Session]
) -> None:
    assert f"/approvals/{held}" in admin.get("/approvals/").get_data(as_text=True)
    page = admin.get("/admin/projects/shop/delete").get_data(as_text=True)

    response = admin.post("/admin/projects/shop/delete", data={"seen": seen_on(page)})

    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"
    assert f"Removed project shop. Cancelled job(s) {held}." in admin.get("/admin/").get_data(
        as_text=True
    )
    approvals_page = admin.get("/approvals/").get_data(as_text=True)
    assert "Nothing is waiting." in approvals_page
    assert f"/approvals/{held}" not in approvals_page
    job = read().get(Job, held)
    assert job is not None
    assert job.state == JobState.CANCELLED
    audit = admin.get("/audit/?action=job.cancel").get_data(as_text=True)
    assert f'<a href="/jobs/{held}">{held}</a>' in audit
    assert "reason=project shop removed by root" in audit
    assert read().scalar(sa.select(Project).where(Project.name == "shop")) is None
    job_page = admin.get(f"/jobs/{held}").get_data(as_text=True)
    assert "cancelled by root: project shop removed by root" in job_page


def test_a_running_job_refuses_the_removal(app: Flask, admin: FlaskClient, held: int) -> None:
    running = run_as_worker(app, "shop-dev")
    before = snapshot(app)

    body = admin.get("/admin/projects/shop/delete").get_data(as_text=True)
    assert 'id="removal-refused"' in body
    assert f"job {running} (upgrade shop-dev to heads) is running" in body
    assert 'id="confirm-remove"' not in body
    response = admin.post("/admin/projects/shop/delete")

    assert response.status_code == 409
    refusal = response.get_data(as_text=True)
    assert f"job {running} (upgrade shop-dev to heads) is running" in refusal
    assert "Wait for the running job to end" in refusal
    assert snapshot(app) == before


def test_a_stale_confirmation_is_refused(app: Flask, admin: FlaskClient, held: int) -> None:
    """An upgrade requested after the page was read is not cancelled on a confirmation of less."""
    page = admin.get("/admin/targets/shop-dev/delete").get_data(as_text=True)
    assert 'data-job="' not in page
    services = services_of(app)
    with services.sessions() as session:
        queued = request_target_action(
            session,
            services.jobs,
            registry.get_target(session, "shop-dev"),
            "upgrade",
            "heads",
            actor="olga",
            role=Role.OPERATOR,
            now=utcnow(),
        )
        assert queued is not None
        session.commit()
    before = snapshot(app)

    response = admin.post("/admin/targets/shop-dev/delete", data={"seen": seen_on(page)})

    assert response.status_code == 409
    assert "changed since it was shown to you" in response.get_data(as_text=True)
    assert snapshot(app) == before


def test_an_environment_holding_targets_shows_why_it_stays(
    app: Flask, admin: FlaskClient, held: int
) -> None:
    body = admin.get("/admin/environments/prod/delete").get_data(as_text=True)
    assert "environment &#39;prod&#39; still holds 1 target(s)" in body
    assert 'id="confirm-remove"' not in body
    before = snapshot(app)
    response = admin.post("/admin/environments/prod/delete")
    assert response.status_code == 409
    assert "Move or remove its targets first." in response.get_data(as_text=True)
    assert snapshot(app) == before


def test_non_admins_see_no_confirmation_and_remove_nothing(
    app: Flask, login: Callable[..., FlaskClient], held: int
) -> None:
    client = login(Role.APPROVER)
    before = snapshot(app)
    response = client.get("/admin/projects/shop/delete")
    assert response.status_code == 403
    assert "shop-prod" not in response.get_data(as_text=True)
    assert client.post("/admin/projects/shop/delete").status_code == 403
    assert snapshot(app) == before


def test_hostile_text_is_escaped_on_the_confirmation_page(
    app: Flask, admin: FlaskClient, held: int
) -> None:
    with services_of(app).sessions() as session:  # a pending revision job whose message is markup
        project = registry.get_project(session, "shop")
        session.add(
            Job(
                kind="revision",
                project_id=project.id,
                project_name="shop",
                arguments={"message": HOSTILE},
                requested_by=HOSTILE,
                state=JobState.QUEUED,
            )
        )
        session.commit()
    body = admin.get("/admin/projects/shop/delete").get_data(as_text=True)
    assert "<script>alert(1)" not in body
    assert html.escape(HOSTILE, quote=False).split('"')[0] in body
    assert INLINE_SCRIPT.findall(body) == []
    for path in ("/admin/projects/<script>x/delete", "/admin/<b>x<%2Fb>/shop/delete"):
        response = admin.get(path)
        assert response.status_code in (400, 404)
        text = response.get_data(as_text=True)
        assert "<script>x" not in text
        assert "<b>x" not in text


def test_unknown_kinds_and_names(admin: FlaskClient, held: int) -> None:
    assert admin.get("/admin/users/shop/delete").status_code == 400
    assert admin.post("/admin/users/shop/delete").status_code == 400
    assert admin.get("/admin/projects/nope/delete").status_code == 404
    assert admin.post("/admin/projects/nope/delete").status_code == 404


# --- with CSRF on, as in production -----------------------------------------------------------


@pytest.fixture
def csrf_app(
    tmp_path: Path, make_project: Callable[..., Any], make_target: Callable[..., str]
) -> Iterator[Flask]:
    (tmp_path / "csrf-instance").mkdir()
    app = create_app(
        {
            "TESTING": True,
            "MIGDASH_INSTANCE": str(tmp_path / "csrf-instance"),
            "MIGDASH_SECRET_KEY": "csrf-secret-key",
            "MIGDASH_PROBE_TIMEOUT": 3.0,
        }
    )
    services_of(app).upgrade_schema()
    build_world(app, make_project, make_target)
    with services_of(app).sessions() as session:
        create_user(session, "root", "root-password", Role.ADMIN)
        session.commit()
    yield app
    services_of(app).probes.close()
    services_of(app).db_engine.dispose()


def test_post_without_the_csrf_token_is_refused(csrf_app: Flask) -> None:
    client = csrf_app.test_client()
    login_page = client.get("/login").get_data(as_text=True)
    token = CSRF.search(login_page)
    assert token
    response = client.post(
        "/login",
        data={"username": "root", "password": "root-password", "csrf_token": token.group(1)},
    )
    assert response.status_code == 302
    page = client.get("/admin/projects/shop/delete").get_data(as_text=True)
    before = snapshot(csrf_app)

    refused = client.post("/admin/projects/shop/delete", data={"seen": seen_on(page)})

    assert refused.status_code == 400
    assert snapshot(csrf_app) == before
    form_token = CSRF.search(page)
    assert form_token
    done = client.post(
        "/admin/projects/shop/delete",
        data={"seen": seen_on(page), "csrf_token": form_token.group(1)},
    )
    assert done.status_code == 302
    assert snapshot(csrf_app)["projects"] == []
