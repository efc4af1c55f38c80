"""DOT and SVG drawing: hostile text stays text, long runs fold, markers stay visible.

SVG tests run the real Graphviz ``dot``; they skip when it is not installed
locally and fail under ``CI=true``.
"""

from __future__ import annotations

import os
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from migdash.engine.graph import RevisionGraph, build_graph
from migdash.engine.project import open_project
from migdash.engine.render import Marker, build_dot, graph_json, render_svg
from migdash.errors import GraphvizUnavailable
from migdash.scaffold import RevisionSpec, write_project

HOSTILE = '<script>alert(1)</script> "quotes" back\\slash'
HOSTILE_IN_SVG = "&lt;script&gt;alert(1)&lt;/script&gt; &quot;quotes&quot; back\\slash"
LONG = 1000
_FOLD = re.compile(r"(?:…|&#8230;) (\d+) revisions (?:…|&#8230;)")
_TITLE = re.compile(r"<title>([^<]*)</title>")


@pytest.fixture
def dot_binary() -> str:
    found = shutil.which("dot")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: Graphviz 'dot' is not installed")
        pytest.skip("Graphviz 'dot' is not installed (apt-get install graphviz)")
    return found


@pytest.fixture(scope="module")
def long_graph(tmp_path_factory: pytest.TempPathFactory) -> RevisionGraph:
    """A straight line of 1,000 real revision files, r0000 (base) to r0999 (head)."""
    location = tmp_path_factory.mktemp("long") / "project"
    specs = [
        RevisionSpec(f"r{i:04d}", f"r{i - 1:04d}" if i else None, f"step {i}") for i in range(LONG)
    ]
    write_project(location, specs)
    return build_graph(open_project(location), str(location))


def svg_nodes(svg: str) -> list[str]:
    """The ``<title>`` of every node group in *svg* (node ids as ``dot`` saw them)."""
    root = ET.fromstring(svg)  # noqa: S314 - our own dot output, parsed to prove it is well-formed
    namespace = {"svg": "http://www.w3.org/2000/svg"}
    return [
        group.find("svg:title", namespace).text or ""  # type: ignore[union-attr]
        for group in root.iter("{http://www.w3.org/2000/svg}g")
        if group.get("class") == "node"
    ]


def svg_texts(svg: str) -> list[str]:
    """Every ``<text>`` in *svg* as a reader sees it (entities decoded)."""
    root = ET.fromstring(svg)  # noqa: S314 - our own dot output
    return [element.text or "" for element in root.iter("{http://www.w3.org/2000/svg}text")]


def folded_counts(svg: str) -> list[int]:
    return sorted(int(n) for n in _FOLD.findall(svg))


# --- hostile text -----------------------------------------------------------------------------


@pytest.fixture
def hostile_graph(
    make_project: Callable[..., Any], load_graph: Callable[..., RevisionGraph]
) -> RevisionGraph:
    project = make_project(
        [
            RevisionSpec("a1", None, "plain start"),
            RevisionSpec("b2", "a1", HOSTILE, branch_labels=("<b>bold</b>",)),
            RevisionSpec("c3", "b2", "after"),
        ]
    )
    graph = load_graph(project)
    assert graph.nodes["b2"].message == HOSTILE
    return graph


def test_dot_source_quotes_hostile_text(hostile_graph: RevisionGraph) -> None:
    markers = {"a1": [Marker(HOSTILE, "behind")]}

    source = build_dot(hostile_graph, markers).source

    dot_escaped = '<script>alert(1)</script> \\"quotes\\" back\\\\slash'
    assert f'label="b2\\n{dot_escaped}' in source
    assert f'label="{dot_escaped}"' in source
    assert HOSTILE not in source


def test_svg_escapes_hostile_message_and_marker(
    dot_binary: str, hostile_graph: RevisionGraph
) -> None:
    markers = {"a1": [Marker(HOSTILE, "behind", href="/targets/x?a=1&b=2")]}

    svg = render_svg(build_dot(hostile_graph, markers))

    assert svg.startswith("<svg")
    assert "<script" not in svg.lower()
    # Once as the revision's label and once as the marker's; each also in a tooltip.
    assert svg.count(HOSTILE_IN_SVG) >= 4
    assert "&lt;b&gt;bold&lt;/b&gt;" in svg
    assert "<b>" not in svg
    texts = svg_texts(svg)
    assert texts.count(HOSTILE) == 2
    assert "[<b>bold</b>]" in texts
    nodes = svg_nodes(svg)
    assert {"a1", "b2", "c3"} <= set(nodes)
    assert any(node.startswith("marker_") for node in nodes)


def test_svg_escapes_hostile_links(dot_binary: str, hostile_graph: RevisionGraph) -> None:
    evil_href = '/t/"><script>alert(3)</script>&x=\\N'
    markers = {"c3": [Marker("prod", "up_to_date", href=evil_href)]}

    svg = render_svg(build_dot(hostile_graph, markers, revision_href=lambda rev: evil_href + rev))

    assert "<script" not in svg.lower()
    svg_nodes(svg)  # well-formed XML, so no attribute was broken out of
    assert 'xlink:href="/t/&quot;&gt;&lt;script&gt;alert(3)&lt;/script&gt;&amp;x=\\N"' in svg
    assert 'xlink:href="/t/&quot;&gt;&lt;script&gt;alert(3)&lt;/script&gt;&amp;x=\\Nb2"' in svg


def test_render_svg_without_dot_says_what_is_missing(
    hostile_graph: RevisionGraph, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(GraphvizUnavailable, match="dot"):
        render_svg(build_dot(hostile_graph))


# --- folding ----------------------------------------------------------------------------------


def test_long_linear_project_folds_to_a_few_nodes(
    dot_binary: str, long_graph: RevisionGraph
) -> None:
    svg = render_svg(build_dot(long_graph))

    nodes = svg_nodes(svg)
    drawn = [node for node in nodes if re.fullmatch(r"r\d{4}", node)]
    assert len(nodes) < 20
    assert sorted(drawn) == ["r0000", "r0999"]
    assert folded_counts(svg) == [LONG - 2]
    assert "… 998 revisions …" in svg or "&#8230; 998 revisions &#8230;" in svg


def test_markers_keep_their_revision_unfolded(dot_binary: str, long_graph: RevisionGraph) -> None:
    markers = {
        "r0250": [Marker("staging", "behind")],
        "r0500": [Marker("prod-eu", "behind"), Marker("prod-us", "behind")],
    }

    svg = render_svg(build_dot(long_graph, markers))

    nodes = svg_nodes(svg)
    drawn = sorted(node for node in nodes if re.fullmatch(r"r\d{4}", node))
    assert drawn == ["r0000", "r0250", "r0500", "r0999"]
    assert folded_counts(svg) == [249, 249, 498]
    assert len(drawn) + sum(folded_counts(svg)) == LONG
    assert len([node for node in nodes if node.startswith("marker_")]) == 3
    texts = svg_texts(svg)
    for name in ("staging", "prod-eu", "prod-us"):
        assert name in texts


def test_folding_accounts_for_every_revision_in_dot(long_graph: RevisionGraph) -> None:
    """Without running ``dot``: kept boxes plus folded counts add up to the whole project."""
    source = build_dot(long_graph, {"r0123": [Marker("qa", "behind")]}).source

    drawn = set(re.findall(r"^\s*(r\d{4}) \[label=", source, re.MULTILINE))
    folded = [int(n) for n in re.findall(r"… (\d+) revisions …", source)]
    assert drawn == {"r0000", "r0123", "r0999"}
    assert sorted(folded) == [122, 875]
    assert len(drawn) + sum(folded) == LONG


@pytest.mark.parametrize(("length", "folded"), [(4, []), (5, [3]), (12, [10])])
def test_short_runs_are_drawn_in_full(
    length: int,
    folded: list[int],
    make_project: Callable[..., Any],
    load_graph: Callable[..., RevisionGraph],
) -> None:
    specs = [
        RevisionSpec(f"s{i:02d}", f"s{i - 1:02d}" if i else None, f"step {i}")
        for i in range(length)
    ]
    graph = load_graph(make_project(specs))

    source = build_dot(graph).source

    drawn = re.findall(r"^\s*(s\d{2}) \[label=", source, re.MULTILINE)
    assert [int(n) for n in re.findall(r"… (\d+) revisions …", source)] == folded
    assert len(drawn) + sum(folded) == length


def test_collapse_off_draws_every_revision(
    make_project: Callable[..., Any], load_graph: Callable[..., RevisionGraph]
) -> None:
    specs = [
        RevisionSpec(f"s{i:02d}", f"s{i - 1:02d}" if i else None, f"step {i}") for i in range(9)
    ]
    graph = load_graph(make_project(specs))

    source = build_dot(graph, collapse=False).source

    assert len(re.findall(r"^\s*s\d{2} \[label=", source, re.MULTILINE)) == 9
    assert "revisions …" not in source


def test_branchy_shape_draws_every_structural_revision(
    dot_binary: str, make_project: Callable[..., Any], load_graph: Callable[..., RevisionGraph]
) -> None:
    graph = load_graph(make_project("merged"))

    svg = render_svg(build_dot(graph))

    assert sorted(svg_nodes(svg)) == ["a1", "b2", "c3", "d4", "e5", "f6"]
    edges = set(_TITLE.findall(svg)) - {"revisions", "a1", "b2", "c3", "d4", "e5", "f6"}
    assert edges == {
        "a1&#45;&gt;b2",
        "b2&#45;&gt;c3",
        "b2&#45;&gt;d4",
        "c3&#45;&gt;e5",
        "d4&#45;&gt;e5",
        "e5&#45;&gt;f6",
    }


def test_graph_json_lists_history_newest_first(
    make_project: Callable[..., Any], load_graph: Callable[..., RevisionGraph]
) -> None:
    graph = load_graph(make_project("merged"))

    data = graph_json(graph)

    assert [rev["revision"] for rev in data["revisions"]] == list(graph.history)  # type: ignore[attr-defined]
    assert data["heads"] == ["f6"]
    assert data["merge_points"] == ["e5"]
    assert data["branch_points"] == ["b2"]
