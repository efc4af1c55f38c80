"""Big graphs in the engine: one background load, the persisted history, windows and search.

The 1,000-revision synthetic project (:mod:`migdash.synthetic`) is big enough
to show every shape (branches, merges, open heads, labels, depends_on) and
small enough for Alembic's own ``walk_revisions`` to be the reference.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory

import migdash.engine.catalog as catalog_module
import migdash.engine.render as render_module
from migdash.engine.catalog import GraphCatalog
from migdash.engine.graph import RevisionGraph, graph_from_data
from migdash.engine.render import (
    MAX_DOT_NODES,
    build_dot,
    dot_node_count,
    render_svg_in_background,
)
from migdash.engine.window import WINDOW_LIMIT, search_revisions, window_around
from migdash.scaffold import RevisionSpec, write_revision
from migdash.synthetic import synthetic_revisions, write_synthetic_project


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_project(tmp_path_factory.mktemp("synthetic") / "p1000", 1_000)


@pytest.fixture(scope="module")
def graph(project: Path) -> RevisionGraph:
    return GraphCatalog().graph(str(project))


def test_the_synthetic_project_has_every_shape(graph: RevisionGraph) -> None:
    assert len(graph) == 1_000
    assert len(graph.heads) > 1
    assert len(graph.merge_points) > 10
    assert len(graph.branch_points) > 10
    assert graph.labels
    assert any(node.depends_on for node in graph.nodes.values())


def test_synthetic_revisions_are_the_same_for_a_seed() -> None:
    assert synthetic_revisions(300) == synthetic_revisions(300)
    assert synthetic_revisions(300) != synthetic_revisions(300, seed=11)


def test_history_is_walk_revisions_and_survives_the_disk_cache(
    project: Path, graph: RevisionGraph, tmp_path: Path
) -> None:
    walked = [script.revision for script in ScriptDirectory(str(project)).walk_revisions()]
    assert list(graph.history) == walked
    GraphCatalog(tmp_path).graph(str(project))
    (cache_file,) = tmp_path.glob("*.json")
    stored = json.loads(cache_file.read_text())
    assert stored["data"]["history"] == walked
    assert list(GraphCatalog(tmp_path).graph(str(project)).history) == walked


def test_a_stored_history_that_does_not_fit_the_nodes_is_recomputed(
    project: Path, graph: RevisionGraph, tmp_path: Path
) -> None:
    GraphCatalog(tmp_path).graph(str(project))
    (cache_file,) = tmp_path.glob("*.json")
    data = json.loads(cache_file.read_text())["data"]
    shortened = {**data, "history": data["history"][:-1]}
    assert graph_from_data(str(project), shortened).history == graph.history


def test_concurrent_callers_share_one_background_load(
    project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[str] = []
    release = threading.Event()
    real = catalog_module.call_child

    def slow_child(module: str, payload: Any, **kwargs: Any) -> Any:
        calls.append(payload)
        release.wait(30)
        return real(module, payload, **kwargs)

    monkeypatch.setattr(catalog_module, "call_child", slow_child)
    monkeypatch.setattr(catalog_module, "BACKGROUND_FROM", 10)
    catalog = GraphCatalog(tmp_path)
    started = time.perf_counter()
    answers = [catalog.graph_or_none(str(project), wait=0.1) for _ in range(5)]
    assert time.perf_counter() - started < 5
    assert answers == [None] * 5
    assert catalog.loading(str(project))
    release.set()
    deadline = time.monotonic() + 120
    while catalog.loading(str(project)) and time.monotonic() < deadline:
        time.sleep(0.05)
    loaded = catalog.graph_or_none(str(project), wait=0.0)
    assert loaded is not None
    assert len(loaded) == 1_000
    assert calls == [str(project)]


def test_a_window_is_bounded_and_grows_with_depth(graph: RevisionGraph) -> None:
    small = window_around(graph, graph.heads, 2)
    large = window_around(graph, graph.heads, 30)
    assert set(graph.heads) <= small.revisions <= large.revisions
    assert len(small.revisions) < len(large.revisions) <= WINDOW_LIMIT
    capped = window_around(graph, graph.heads, 10_000, limit=50)
    assert len(capped.revisions) == 50
    assert capped.truncated
    for rev in small.revisions - set(graph.heads):  # reached through a drawn neighbour
        node = graph.nodes[rev]
        assert {*node.down_revisions, *node.depends_on, *node.children} & small.revisions


def test_a_window_draws_its_revisions_and_stubs_for_what_lies_outside(
    graph: RevisionGraph,
) -> None:
    window = window_around(graph, graph.heads, 5)
    dot = build_dot(graph, window=window)
    outside = {
        near
        for rev in window.revisions
        for near in (
            *graph.nodes[rev].down_revisions,
            *graph.nodes[rev].depends_on,
            *graph.nodes[rev].children,
        )
        if near not in window.revisions
    }
    assert outside
    assert dot_node_count(dot) == len(window.revisions) + len(outside)
    assert dot_node_count(build_dot(graph)) <= MAX_DOT_NODES


def test_search_finds_ids_prefixes_labels_and_messages(graph: RevisionGraph) -> None:
    some = graph.history[123]
    assert search_revisions(graph, some) == [some]
    assert some in search_revisions(graph, some[:6])
    label, labelled = next(iter(graph.labels.items()))
    assert search_revisions(graph, label) == [labelled]
    message = graph.nodes[some].message
    assert some in search_revisions(graph, message.upper(), limit=1_000)
    found = search_revisions(graph, "merge side branch")
    assert len(found) == 20
    assert (
        found
        == [rev for rev in graph.history if "merge side branch" in graph.nodes[rev].message][:20]
    )
    assert search_revisions(graph, "   ") == []


def test_a_change_to_a_big_project_is_loaded_again_after_the_recheck_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_module, "BACKGROUND_FROM", 10)
    location = write_synthetic_project(tmp_path / "p", 40)
    catalog = GraphCatalog(tmp_path / "cache")
    before = wait_for(catalog, location)
    head = before.heads[0]
    write_revision(location / "versions", RevisionSpec("feedface0001", head, "one more"))
    assert catalog.graph_or_none(str(location), wait=0.0) is before  # signed a moment ago
    monkeypatch.setattr(catalog_module, "RECHECK_AFTER", 0.0)
    after = wait_for(catalog, location)
    assert len(after) == len(before) + 1
    assert "feedface0001" in after.heads


def wait_for(catalog: GraphCatalog, location: Path) -> RevisionGraph:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        graph = catalog.graph_or_none(str(location), wait=0.1)
        if graph is not None:
            return graph
    pytest.fail("the graph did not load")


def test_a_background_drawing_is_made_once_and_kept(
    graph: RevisionGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[str] = []
    real = render_module._svg_for

    def counted(source: str, timeout: float) -> str:
        runs.append(source)
        return real(source, timeout)

    monkeypatch.setattr(render_module, "_svg_for", counted)
    dot = build_dot(graph, window=window_around(graph, graph.bases, 4))
    first = render_svg_in_background(dot)
    deadline = time.monotonic() + 60
    svg = first
    while svg is None and time.monotonic() < deadline:
        time.sleep(0.05)
        svg = render_svg_in_background(dot)
    assert first is None
    assert svg is not None
    assert svg.startswith("<svg")
    assert render_svg_in_background(dot) == svg
    assert runs == [dot.source]
