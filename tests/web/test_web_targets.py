"""Target pages: state, current revision(s), pending revisions in apply order, Probe now."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from alembic import command
from flask.testing import FlaskClient

from migdash.store.models import Role
from tests.web.pagetext import revision_links, section

HX = {"HX-Request": "true"}


@pytest.fixture
def viewer(login: Callable[..., FlaskClient]) -> FlaskClient:
    return login(Role.VIEWER)


def status_of(html: str) -> str:
    return section(html, '<section id="target-status"', "</section>")


@pytest.mark.parametrize(
    ("shape", "at"), [("linear", "a1"), ("two_heads", "a1"), ("merged", "c3"), ("depends", "a1")]
)
def test_target_page_lists_pending_in_apply_order(
    viewer: FlaskClient,
    make_project: Callable[..., Any],
    register_project: Callable[..., Any],
    register_target: Callable[..., str],
    probe_all: Callable[[], Any],
    alembic_apply_order: Callable[..., list[str]],
    shape: str,
    at: str,
) -> None:
    project = make_project(shape)
    register_project(project)
    url = register_target(project, "db1", at=at)
    probe_all()
    html = viewer.get("/targets/db1").get_data(as_text=True)
    status = status_of(html)
    assert 'data-state="behind"' in status
    pending = section(status, '<ol class="pending-list">', "</ol>")
    expected = alembic_apply_order(project, url)
    assert expected  # the scenario really is behind
    assert revision_links(pending) == expected
    assert f"Pending ({len(expected)}, in apply order)" in status


def test_target_page_shows_current_revision_with_message(
    viewer: FlaskClient,
    make_project: Callable[..., Any],
    register_project: Callable[..., Any],
    register_target: Callable[..., str],
    probe_all: Callable[[], Any],
) -> None:
    project = make_project("two_heads")
    register_project(project)
    register_target(project, "both", at="heads")
    probe_all()
    status = status_of(viewer.get("/targets/both").get_data(as_text=True))
    assert 'data-state="up_to_date"' in status
    current = section(status, "<dt>Current</dt>", "</dd>")
    assert sorted(revision_links(current)) == ["c3", "d4"]
    assert "left branch" in current
    assert "right branch" in current
    assert "nothing pending" in status


@pytest.mark.parametrize(
    ("at", "state", "text"),
    [
        (None, "uninitialised", "no version table"),
        ("heads", "up_to_date", "nothing pending"),
    ],
)
def test_target_page_states(
    viewer: FlaskClient,
    make_project: Callable[..., Any],
    register_project: Callable[..., Any],
    register_target: Callable[..., str],
    probe_all: Callable[[], Any],
    at: str | None,
    state: str,
    text: str,
) -> None:
    project = make_project("linear")
    register_project(project)
    register_target(project, "db1", at=at)
    probe_all()
    status = status_of(viewer.get("/targets/db1").get_data(as_text=True))
    assert f'data-state="{state}"' in status
    assert text in status


def test_unreachable_target_shows_a_scrubbed_error(
    viewer: FlaskClient,
    make_project: Callable[..., Any],
    register_project: Callable[..., Any],
    register_target: Callable[..., str],
    probe_all: Callable[[], Any],
) -> None:
    project = make_project("linear")
    register_project(project)
    register_target(project, "far", url="postgresql+psycopg://bob:s3cret-pw@127.0.0.1:1/app")
    probe_all()
    html = viewer.get("/targets/far").get_data(as_text=True)
    assert 'data-state="unreachable"' in status_of(html)
    assert 'class="err"' in status_of(html)
    assert "s3cret-pw" not in html
    assert "bob:***@127.0.0.1:1/app" in html


def test_a_target_never_probed_is_probed_on_its_first_view(
    viewer: FlaskClient,
    make_project: Callable[..., Any],
    register_project: Callable[..., Any],
    register_target: Callable[..., str],
) -> None:
    project = make_project("linear")
    register_project(project)
    register_target(project, "fresh", at="a1")
    html = viewer.get("/targets/fresh").get_data(as_text=True)
    assert "not probed yet" not in status_of(html)
    assert 'data-state="behind"' in status_of(html)
    assert "Not probed yet." not in html, "the snapshot it took is listed"


def test_probe_now_posts_and_swaps_the_status(
    viewer: FlaskClient,
    make_project: Callable[..., Any],
    register_project: Callable[..., Any],
    register_target: Callable[..., str],
    probe_all: Callable[[], Any],
) -> None:
    project = make_project("linear")
    register_project(project)
    url = register_target(project, "db1", at="a1")
    probe_all()
    page = viewer.get("/targets/db1").get_data(as_text=True)
    assert 'hx-post="/targets/db1/probe"' in page
    assert 'hx-target="#target-status"' in page
    assert viewer.get("/targets/db1/probe").status_code == 405
    command.upgrade(project.alembic_config(url), "b2")
    response = viewer.post("/targets/db1/probe", headers=HX)
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "<html" not in body
    assert body.lstrip().startswith('<section id="target-status"')
    assert 'data-state="behind"' in body
    assert revision_links(section(body, "<dt>Current</dt>", "</dd>")) == ["b2"]
    assert revision_links(section(body, '<ol class="pending-list">', "</ol>")) == ["c3"]
    # the new snapshot is kept: the full page now shows two rows of history
    html = viewer.get("/targets/db1").get_data(as_text=True)
    snapshots = section(html, "<h2>Recent snapshots</h2>", "</table>")
    assert snapshots.count("<tr><td>") == 2
