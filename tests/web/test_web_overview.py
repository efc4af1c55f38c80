"""The overview matrix: every target with its state, as a page and as an htmx fragment."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from flask.testing import FlaskClient

from migdash.store.models import Role
from tests.web.pagetext import section, target_states

HX = {"HX-Request": "true"}


@pytest.fixture
def fleet(
    make_project: Callable[..., Any],
    register_project: Callable[..., Any],
    register_target: Callable[..., str],
    tmp_path: Path,
) -> dict[str, str]:
    """One target in each state a probe can find; returns target -> expected state."""
    linear = make_project("linear")
    other = make_project("labels")
    register_project(linear)
    register_target(linear, "t-current", env="dev", at="heads")
    register_target(linear, "t-behind", env="staging", at="a1")
    register_target(linear, "t-empty", env="prod", at=None)
    register_target(
        linear, "t-dead", env="prod", url=f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}"
    )
    # a database written by another project: its revision is unknown to "linear"
    register_target(other, "t-alien", env="prod", at="x2", registered_as="linear")
    # tracking one branch of two: a database on the other branch has diverged
    forked = make_project("two_heads")
    register_project(forked, track="c3")
    register_target(forked, "t-forked", env="dev", at="d4")
    return {
        "t-forked": "diverged",
        "t-current": "up_to_date",
        "t-behind": "behind",
        "t-empty": "uninitialised",
        "t-dead": "unreachable",
        "t-alien": "unknown_revision",
    }


def test_matrix_fragment_probes_and_shows_each_target_with_its_state(
    login: Callable[..., FlaskClient], fleet: dict[str, str]
) -> None:
    client = login(Role.VIEWER)
    response = client.get("/overview/matrix", headers=HX)
    assert response.status_code == 200
    assert target_states(response.get_data(as_text=True)) == fleet


def test_matrix_fragment_is_the_partial_only_and_varies_on_hx_request(
    login: Callable[..., FlaskClient], fleet: dict[str, str]
) -> None:
    client = login(Role.VIEWER)
    fragment = client.get("/overview/matrix", headers=HX)
    body = fragment.get_data(as_text=True)
    assert "<html" not in body
    assert "<head" not in body
    assert body.lstrip().startswith('<div id="matrix"')
    assert "HX-Request" in fragment.headers.get("Vary", "")
    page = client.get("/")
    assert "<html" in page.get_data(as_text=True)
    assert "HX-Request" in page.headers.get("Vary", "")


def test_page_shows_states_from_the_latest_snapshots(
    login: Callable[..., FlaskClient], fleet: dict[str, str], probe_all: Callable[[], Any]
) -> None:
    probe_all()
    html = login(Role.VIEWER).get("/").get_data(as_text=True)
    assert target_states(html) == fleet
    matrix = section(html, '<div id="matrix"')
    for name in fleet:
        assert f'href="/targets/{name}"' in matrix


def test_environments_are_columns_in_their_order(
    login: Callable[..., FlaskClient], fleet: dict[str, str], probe_all: Callable[[], Any]
) -> None:
    probe_all()
    html = login(Role.VIEWER).get("/").get_data(as_text=True)
    header = section(html, "<thead>", "</thead>")
    assert header.index(">dev") < header.index(">staging") < header.index(">prod")


def test_cells_show_current_revision_message_and_pending_count(
    login: Callable[..., FlaskClient], fleet: dict[str, str], probe_all: Callable[[], Any]
) -> None:
    probe_all()
    html = login(Role.VIEWER).get("/").get_data(as_text=True)
    behind = section(html, 'data-target="t-behind"', "</td>")
    assert "<code>a1</code> create accounts" in behind
    assert "2 pending" in behind
    dead = section(html, 'data-target="t-dead"', "</td>")
    assert "unable to open database file" in dead


def test_probe_now_posts_and_returns_the_fresh_matrix(
    login: Callable[..., FlaskClient],
    make_project: Callable[..., Any],
    register_project: Callable[..., Any],
    register_target: Callable[..., str],
    probe_all: Callable[[], Any],
) -> None:
    project = make_project("linear")
    register_project(project)
    url = register_target(project, "t-moving", at="a1")
    client = login(Role.VIEWER)
    probe_all()
    assert 'hx-post="/overview/probe"' in client.get("/").get_data(as_text=True)
    assert client.get("/overview/probe").status_code == 405
    # the database moves behind migdash's back: the cached matrix keeps the recent snapshot ...
    command.upgrade(project.alembic_config(url), "heads")
    cached = client.get("/overview/matrix", headers=HX).get_data(as_text=True)
    assert target_states(cached) == {"t-moving": "behind"}
    # ... and "Probe now" re-probes whatever the snapshot's age
    response = client.post("/overview/probe", headers=HX)
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "<html" not in body
    assert target_states(body) == {"t-moving": "up_to_date"}


def test_empty_overview_invites_an_admin_to_register(login: Callable[..., FlaskClient]) -> None:
    body = login(Role.ADMIN).get("/").get_data(as_text=True)
    assert "No projects yet." in body
    assert 'href="/admin/projects/new"' in body
