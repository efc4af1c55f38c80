"""Big projects on the web: the first request never waits on the load, the DAG stays small.

A synthetic project of 10,000 revisions (branches, merges, labels,
depends_on; :mod:`migdash.synthetic`) is written once per session.  The app
of each test starts with an empty graph cache, so its first request meets a
cold load: that request must answer with "Loading graph…" while the loader
child runs on a background thread, and later requests must show a window of
the graph that ``dot`` lays out in well under a second.  History order is
checked against Alembic's own ``alembic history`` on the 1,000-revision one.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import graphviz
import pytest
from flask import Flask
from flask.testing import FlaskClient

import migdash.web.projects as project_views
from migdash.engine.catalog import GraphCatalog
from migdash.engine.render import MAX_DOT_NODES, dot_node_count
from migdash.services import services_of
from migdash.store.models import Role
from migdash.synthetic import write_synthetic_project
from tests.web.pagetext import revision_links, section

FIRST_REQUEST_BUDGET = 2.0
"""Seconds; the goal is 1 s (bench/graph_bench.py measures it), this allows a busy machine."""
LOAD_TIMEOUT = 120.0


@dataclass(frozen=True)
class BigProject:
    name: str
    location: Path


@pytest.fixture(scope="session")
def big_projects(tmp_path_factory: pytest.TempPathFactory) -> dict[int, BigProject]:
    root = tmp_path_factory.mktemp("big-projects")
    return {
        size: BigProject(f"big{size}", write_synthetic_project(root / f"big{size}", size))
        for size in (1_000, 10_000)
    }


@pytest.fixture(scope="session")
def warm_cache(
    tmp_path_factory: pytest.TempPathFactory, big_projects: dict[int, BigProject]
) -> Path:
    """A graph cache holding the 10,000-revision project, loaded once for the session."""
    folder = tmp_path_factory.mktemp("graph-cache")
    GraphCatalog(folder).graph(str(big_projects[10_000].location))
    return folder


@pytest.fixture
def warmed(app: Flask, warm_cache: Path) -> None:
    """Start the app with the session's disk cache (a restart after an earlier load)."""
    shutil.copytree(
        warm_cache, Path(app.config["MIGDASH_INSTANCE"]) / "graph-cache", dirs_exist_ok=True
    )


@pytest.fixture
def viewer(login: Callable[..., FlaskClient]) -> FlaskClient:
    return login(Role.VIEWER)


def history_rows(html: str) -> list[str]:
    table = section(html, '<table class="list" id="history">', "</table>")
    return [revision_links(row)[0] for row in table.split("<tr>")[2:]]


def wait_for_graph(client: FlaskClient, name: str) -> None:
    """Poll the loading fragment, as the page does, until it asks for a reload."""
    deadline = time.monotonic() + LOAD_TIMEOUT
    while time.monotonic() < deadline:
        response = client.get(f"/projects/{name}/loading", headers={"HX-Request": "true"})
        assert response.status_code == 200
        if response.headers.get("HX-Refresh") == "true":
            return
        time.sleep(0.2)
    pytest.fail(f"the graph of {name} did not load within {LOAD_TIMEOUT:.0f} s")


@pytest.fixture
def dot_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Node counts of every drawing a page hands to ``dot``; more than the limit fails at once."""
    sizes: list[int] = []
    real = project_views.render_svg

    def spy(dot: graphviz.Digraph, **kwargs: Any) -> str:
        sizes.append(dot_node_count(dot))
        assert sizes[-1] <= MAX_DOT_NODES, f"a request waits on dot for {sizes[-1]} nodes"
        return real(dot, **kwargs)

    monkeypatch.setattr(project_views, "render_svg", spy)
    return sizes


@pytest.mark.parametrize("page", ["/projects/big10000", "/projects/big10000/history"])
def test_first_request_answers_while_the_graph_loads_in_the_background(
    app: Flask,
    viewer: FlaskClient,
    register_project: Callable[..., Any],
    big_projects: dict[int, BigProject],
    page: str,
) -> None:
    project = big_projects[10_000]
    register_project(project)
    catalog: GraphCatalog = services_of(app).catalog

    started = time.perf_counter()
    response = viewer.get(page)
    elapsed = time.perf_counter() - started

    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Loading graph…" in html
    assert elapsed < FIRST_REQUEST_BUDGET, f"first request took {elapsed:.2f} s"
    assert catalog.loading(str(project.location)), "the loader should still run, in the background"
    fragment = section(html, 'id="graph-loading"', "</section>")
    assert 'hx-trigger="load delay:2s"' in fragment, "one poll per fragment, never a storm"
    assert "every " not in fragment
    polled = viewer.get("/projects/big10000/loading", headers={"HX-Request": "true"})
    assert "HX-Refresh" not in polled.headers
    assert polled.get_data(as_text=True).count("hx-trigger=") == 1
    listing = viewer.get("/projects/").get_data(as_text=True)
    assert re.search(r'<td colspan="2" class="loading">loading graph…</td>', listing)

    wait_for_graph(viewer, project.name)
    assert not catalog.loading(str(project.location))
    loaded = viewer.get(page).get_data(as_text=True)
    assert "Loading graph…" not in loaded
    assert len(history_rows(loaded)) == 50


@pytest.mark.usefixtures("warmed")
def test_the_default_dag_of_10000_revisions_is_a_small_window(
    viewer: FlaskClient,
    register_project: Callable[..., Any],
    big_projects: dict[int, BigProject],
    dot_sizes: list[int],
) -> None:
    register_project(big_projects[10_000])
    viewer.get("/projects/big10000")
    wait_for_graph(viewer, "big10000")
    dot_sizes.clear()

    started = time.perf_counter()
    response = viewer.get("/projects/big10000")
    elapsed = time.perf_counter() - started

    html = response.get_data(as_text=True)
    assert dot_sizes
    assert max(dot_sizes) <= MAX_DOT_NODES, dot_sizes
    assert response.status_code == 200
    assert len(response.data) < 1_000_000, f"the page ships {len(response.data)} bytes"
    assert 'id="graph-window"' in html
    assert "around the heads" in html
    svg = section(html, '<div class="svg-wrap" id="revision-graph">', "</div>")
    assert svg.count('class="node"') >= 10
    assert elapsed < FIRST_REQUEST_BUDGET, f"a loaded page took {elapsed:.2f} s"


@pytest.mark.usefixtures("warmed")
def test_search_centres_the_window_on_the_revision_found(
    viewer: FlaskClient,
    register_project: Callable[..., Any],
    big_projects: dict[int, BigProject],
    dot_sizes: list[int],
) -> None:
    register_project(big_projects[10_000])
    viewer.get("/projects/big10000")
    wait_for_graph(viewer, "big10000")
    oldest = history_rows(viewer.get("/projects/big10000/history?n=500&page=20").get_data(True))
    wanted = oldest[-1]  # the base: as far from the heads as the graph goes

    html = viewer.get(f"/projects/big10000?q={wanted[:8]}&depth=5").get_data(as_text=True)

    window = section(html, 'id="graph-window"', "</p>")
    assert wanted[:12] in window
    assert "around the heads" not in window
    svg = section(html, '<div class="svg-wrap" id="revision-graph">', "</div>")
    assert f"/projects/big10000/revisions/{wanted}" in svg
    assert max(dot_sizes) <= MAX_DOT_NODES
    by_message = viewer.get("/projects/big10000?q=merge+side+branch").get_data(as_text=True)
    matches = section(by_message, 'id="graph-matches"', "</p>")
    assert matches.startswith('id="graph-matches">20 matches (the first 20)')
    assert "around the heads" not in section(by_message, 'id="graph-window"', "</p>")


def test_history_pages_of_1000_revisions_are_alembic_history(
    viewer: FlaskClient,
    register_project: Callable[..., Any],
    big_projects: dict[int, BigProject],
    alembic_history: Callable[[Path], list[str]],
) -> None:
    project = big_projects[1_000]
    register_project(project)
    expected = alembic_history(project.location)
    shown = []
    for page in (1, 2):
        html = viewer.get(f"/projects/big1000/history?n=500&page={page}").get_data(as_text=True)
        if "Loading graph…" in html:
            wait_for_graph(viewer, project.name)
            html = viewer.get(f"/projects/big1000/history?n=500&page={page}").get_data(True)
        shown += history_rows(html)
    assert len(expected) == 1_000
    assert shown == expected


@pytest.mark.usefixtures("warmed")
def test_the_whole_drawing_of_a_big_graph_is_made_in_the_background(
    viewer: FlaskClient,
    register_project: Callable[..., Any],
    big_projects: dict[int, BigProject],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drawn: list[int] = []
    monkeypatch.setattr(
        project_views,
        "render_svg_in_background",
        lambda dot: drawn.append(dot_node_count(dot)),  # stands for "not drawn yet"
    )
    register_project(big_projects[10_000])
    viewer.get("/projects/big10000")
    wait_for_graph(viewer, "big10000")
    response = viewer.get("/projects/big10000/graph.svg")
    assert response.status_code == 202
    assert response.headers["Retry-After"]
    assert drawn
    assert drawn[0] > MAX_DOT_NODES
    assert re.search(r"\d+ boxes", response.get_data(as_text=True))
