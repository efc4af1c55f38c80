"""Sign-in: every page needs it, wrong passwords are refused, roles are enforced."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from migdash.jobs.records import list_jobs
from migdash.services import services_of
from migdash.store.models import Role
from migdash.store.queries import all_projects, find_targets
from migdash.store.users import create_user
from tests.web.pagetext import uncovered_endpoints

PAGES = [
    "/",
    "/overview/matrix",
    "/projects/",
    "/projects/linear",
    "/projects/linear/graph.svg",
    "/projects/linear/revisions/b2",
    "/projects/linear/history",
    "/projects/linear/loading",
    "/targets/linear-dev",
    "/history/targets/linear-dev",
    "/schemas/targets/linear-dev",
    "/schemas/diff?left=linear-dev&right=linear-dev",
    "/admin/",
    "/admin/projects/new",
    "/admin/projects/init",
    "/admin/projects/linear/edit",
    "/admin/environments/new",
    "/admin/environments/dev/edit",
    "/admin/targets/new",
    "/admin/targets/linear-dev/edit",
    "/admin/projects/linear/delete",
    "/users/",
    "/users/alice",
    "/jobs/",
    "/jobs/1",
    "/jobs/1/live",
    "/approvals/",
    "/approvals/1",
    "/audit/",
    "/audit/export.csv",
    "/audit/export.json",
    "/actions/targets/linear-dev?action=upgrade&revision=heads",
    "/actions/targets/linear-dev/plan.sql?action=upgrade&revision=heads",
    "/actions/environment?environment=dev&project=linear",
    "/compare/",
    "/compare/linear?a=dev&b=dev",
    "/compare/linear/promote?from=dev&to=dev",
    "/webhooks/",
    "/rollouts/",
    "/rollouts/1",
    "/api/v1/docs",
    "/webhooks/new",
    "/webhooks/alerts",
    "/webhooks/alerts/edit",
]
POSTS = [
    "/overview/probe",
    "/targets/linear-dev/probe",
    "/admin/projects/new",
    "/admin/targets/linear-dev/delete",
    "/admin/projects/linear/delete",
    "/actions/targets/linear-dev",
    "/actions/environment",
    "/actions/projects/linear/merge",
    "/actions/projects/linear/revision",
    "/jobs/1/cancel",
    "/compare/linear/promote",
    "/webhooks/new",
    "/webhooks/alerts/test",
    "/webhooks/alerts/delete",
]


@pytest.fixture
def seeded(
    make_project: Callable[..., Any],
    register_project: Callable[..., Any],
    register_target: Callable[..., str],
    probe_all: Callable[[], Any],
) -> Any:
    project = make_project("linear")
    register_project(project)
    register_target(project, "linear-dev", env="dev", at="b2")
    (report,) = probe_all()
    assert report.status.state.value == "behind"
    return project


@pytest.fixture
def make_user(app: Flask) -> Callable[..., str]:
    def factory(username: str, password: str, role: Role = Role.VIEWER) -> str:
        with services_of(app).sessions() as session:
            create_user(session, username, password, role)
            session.commit()
        return username

    return factory


def assert_sent_to_login(response: Any, asked_for: str) -> None:
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login"
    assert asked_for.split("?")[0] in location.query.replace("%2F", "/")


def test_pages_cover_every_get_endpoint(app: Flask) -> None:
    assert uncovered_endpoints(app, PAGES) == set()


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_get_is_sent_to_login_without_data(
    client: FlaskClient, seeded: Any, path: str
) -> None:
    response = client.get(path)
    assert_sent_to_login(response, path)
    body = response.get_data(as_text=True)
    assert "<table" not in body
    assert "behind" not in body
    assert str(seeded.location) not in body
    assert "create orders" not in body


@pytest.mark.parametrize("path", POSTS)
def test_anonymous_post_changes_nothing(
    client: FlaskClient, seeded: Any, app: Flask, path: str
) -> None:
    form = {
        "name": "intruder",
        "script_location": "/tmp",
        "environment": "dev",
        "project": "linear",
        "action": "upgrade",
        "revision": "heads",
        "message": "m",
    }
    response = client.post(path, data=form)
    assert_sent_to_login(response, path)
    with services_of(app).sessions() as session:
        assert [p.name for p in all_projects(session)] == ["linear"]
        assert [t.name for t in find_targets(session)] == ["linear-dev"]
        assert list_jobs(session) == []


def test_wrong_password_shows_an_error_and_does_not_sign_in(
    client: FlaskClient, make_user: Callable[..., str]
) -> None:
    make_user("alice", "right-password")
    response = client.post("/login", data={"username": "alice", "password": "wrong-password"})
    assert response.status_code == 200
    assert "Wrong username or password." in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_unknown_user_gets_the_same_error(client: FlaskClient) -> None:
    response = client.post("/login", data={"username": "nobody", "password": "whatever-pw"})
    assert "Wrong username or password." in response.get_data(as_text=True)


def test_right_password_signs_in_and_follows_next(
    client: FlaskClient, make_user: Callable[..., str]
) -> None:
    make_user("alice", "right-password")
    response = client.post(
        "/login?next=/projects/", data={"username": "alice", "password": "right-password"}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/projects/"
    page = client.get("/")
    assert page.status_code == 200
    assert "alice (viewer)" in page.get_data(as_text=True)


@pytest.mark.parametrize("evil", ["https://evil.example/", "//evil.example/x", "javascript:x"])
def test_next_never_leaves_the_site(
    client: FlaskClient, make_user: Callable[..., str], evil: str
) -> None:
    make_user("alice", "right-password")
    response = client.post(
        "/login",
        query_string={"next": evil},
        data={"username": "alice", "password": "right-password"},
    )
    assert response.headers["Location"] == "/"


def test_sign_out_ends_the_session(login: Callable[..., FlaskClient]) -> None:
    client = login(Role.VIEWER)
    assert client.get("/").status_code == 200
    assert client.post("/logout").status_code == 302
    assert client.get("/").status_code == 302


ADMIN_PAGES = [
    "/admin/",
    "/admin/projects/new",
    "/admin/environments/new",
    "/admin/targets/new",
    "/admin/projects/linear/edit",
    "/admin/targets/linear-dev/edit",
    "/admin/projects/linear/delete",
]


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR, Role.APPROVER])
def test_non_admins_get_403_on_admin_pages(
    login: Callable[..., FlaskClient], seeded: Any, role: Role
) -> None:
    client = login(role)
    for path in ADMIN_PAGES:
        response = client.get(path)
        assert response.status_code == 403, path
        body = response.get_data(as_text=True)
        assert "this needs the admin role" in body
        assert str(seeded.location) not in body


def test_viewer_cannot_delete_through_a_post(
    login: Callable[..., FlaskClient], seeded: Any, app: Flask
) -> None:
    client = login(Role.VIEWER)
    assert client.post("/admin/targets/linear-dev/delete").status_code == 403
    assert (
        client.post(
            "/admin/projects/new", data={"name": "x", "script_location": "/tmp"}
        ).status_code
        == 403
    )
    with services_of(app).sessions() as session:
        assert [t.name for t in find_targets(session)] == ["linear-dev"]
        assert [p.name for p in all_projects(session)] == ["linear"]


def test_viewer_sees_no_registry_link(login: Callable[..., FlaskClient], seeded: Any) -> None:
    body = login(Role.VIEWER).get("/").get_data(as_text=True)
    assert 'href="/admin/"' not in body


def test_admin_sees_the_registry(login: Callable[..., FlaskClient], seeded: Any) -> None:
    client = login(Role.ADMIN)
    assert 'href="/admin/"' in client.get("/").get_data(as_text=True)
    assert client.get("/admin/").status_code == 200
