"""Draw a revision graph as DOT, and as SVG through Graphviz's ``dot``.

Long linear runs are collapsed into one "N revisions" node, so a project
with a thousand revisions still draws as a readable picture: only heads,
bases, branch points, merge points, labelled revisions and revisions where a
target sits are drawn individually.  Every label goes through
``graphviz.escape`` and ``dot`` itself escapes text in SVG, so a revision
message cannot inject markup.
"""

from __future__ import annotations

import functools
import hashlib
import html
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import graphviz

from migdash.engine.graph import RevisionGraph
from migdash.engine.window import Window
from migdash.errors import GraphvizUnavailable

MAX_LABEL = 48
MIN_FOLD = 3
"""Runs shorter than this are drawn in full; folding two boxes into one saves nothing."""


@dataclass(frozen=True)
class Marker:
    """A target drawn next to the revision it sits at."""

    name: str
    state: str
    href: str | None = None


def build_dot(
    graph: RevisionGraph,
    markers: Mapping[str, Sequence[Marker]] | None = None,
    *,
    revision_href: Callable[[str], str] | None = None,
    collapse: bool = True,
    window: Window | None = None,
) -> graphviz.Digraph:
    """The graph as a ``graphviz.Digraph`` (bottom: bases, top: heads, like ``alembic history``).

    With a *window*, only its revisions are drawn, unfolded; an edge that
    leaves the window ends in a small "older"/"newer" stub that links to a
    window around the revision beyond it.
    """
    markers = markers or {}
    if window is not None:
        keep = set(window.revisions)
    else:
        keep = _kept_revisions(graph, markers) if collapse else set(graph.nodes)
    dot = graphviz.Digraph("revisions", graph_attr={"rankdir": "BT", "bgcolor": "transparent"})
    dot.attr(
        "node",
        shape="box",
        style="rounded,filled",
        fillcolor="#ffffff",
        fontname="sans-serif",
        fontsize="10",
    )
    dot.attr("edge", arrowsize="0.6")
    for revision in graph.history:
        if revision in keep:
            _draw_revision(dot, graph, revision, revision_href)
    if window is not None:
        _draw_window_edges(dot, graph, keep, revision_href)
    else:
        _draw_folded_edges(dot, graph, keep)
    for revision, targets in markers.items():
        if revision in keep:
            for marker in targets:
                _draw_marker(dot, revision, marker)
    return dot


def _draw_folded_edges(dot: graphviz.Digraph, graph: RevisionGraph, keep: set[str]) -> None:
    for source, target, hidden in _edges(graph, keep):
        if hidden:
            run_id = f"run_{source}_{target}"
            dot.node(
                run_id,
                label=f"… {hidden} revisions …",
                shape="plaintext",
                fontcolor="#666666",
                tooltip=f"{hidden} revisions in a straight line; the history lists them all",
            )
            dot.edge(source, run_id)
            dot.edge(run_id, target)
        else:
            dot.edge(source, target)


def _draw_window_edges(
    dot: graphviz.Digraph,
    graph: RevisionGraph,
    keep: set[str],
    revision_href: Callable[[str], str] | None,
) -> None:
    """Edges inside the window; one stub per revision just outside it."""
    stubs: set[str] = set()
    for rev in sorted(keep):
        node = graph.nodes[rev]
        for parent in node.down_revisions + node.depends_on:
            if parent not in keep:
                _draw_stub(dot, graph, parent, "older", revision_href, stubs)
                parent = f"out_{parent}"
            dot.edge(parent, rev)
        for child in node.children:
            if child not in keep:
                _draw_stub(dot, graph, child, "newer", revision_href, stubs)
                dot.edge(rev, f"out_{child}")


def _draw_stub(
    dot: graphviz.Digraph,
    graph: RevisionGraph,
    revision: str,
    direction: str,
    revision_href: Callable[[str], str] | None,
    drawn: set[str],
) -> None:
    if revision in drawn:
        return
    drawn.add(revision)
    attrs = {
        "tooltip": graphviz.escape(f"{direction}: {revision}: {graph.nodes[revision].message}")
    }
    if revision_href is not None:
        attrs["href"] = _escape_href(revision_href(revision))
        attrs["target"] = "_top"
    dot.node(
        f"out_{revision}",
        label=graphviz.escape(f"{'↓' if direction == 'older' else '↑'} {revision[:12]} …"),
        shape="plaintext",
        fontcolor="#666666",
        **attrs,
    )


_NODE_STATEMENT = re.compile(r"^\s*(?:\"(?:[^\"\\]|\\.)*\"|[\w.]+)\s*\[", re.MULTILINE)
_NOT_NODES = ("graph", "node", "edge")


def dot_node_count(dot: graphviz.Digraph) -> int:
    """How many nodes *dot* declares: what decides how long ``dot`` takes to lay it out."""
    return sum(
        1
        for match in _NODE_STATEMENT.finditer(dot.source)
        if match.group(0).split("[")[0].strip() not in _NOT_NODES
    )


def render_svg(dot: graphviz.Digraph, *, timeout: float = 30.0) -> str:
    """Run ``dot -Tsvg`` and return the ``<svg>`` element alone, ready to inline.

    The same DOT source always gives the same SVG, so results are cached:
    a project page that nobody changed costs no ``dot`` run.
    """
    return _svg_for(dot.source, timeout)


@functools.lru_cache(maxsize=64)
def _svg_for(source: str, timeout: float) -> str:
    executable = shutil.which("dot")
    if executable is None:
        raise GraphvizUnavailable("Graphviz 'dot' is not installed, so the graph cannot be drawn")
    result = subprocess.run(  # noqa: S603 - fixed argv, DOT on stdin
        [executable, "-Tsvg"],
        input=source.encode(),
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise GraphvizUnavailable(f"dot failed: {result.stderr.decode(errors='replace')[:300]}")
    svg: str = result.stdout.decode()
    return svg[svg.index("<svg") :]


MAX_DOT_NODES = 1000
"""No request waits on ``dot`` for more nodes than this; bigger drawings go to the background."""
_BACKGROUND_KEPT = 8
_drawn: dict[str, str | GraphvizUnavailable] = {}
_drawing: dict[str, threading.Thread] = {}
_drawing_guard = threading.Lock()


def render_svg_in_background(dot: graphviz.Digraph, *, timeout: float = 600.0) -> str | None:
    """The SVG of *dot* if it is drawn already, else None while one thread draws it.

    For drawings too big for a request (the full graph of a big project):
    the result is kept by DOT source, which changes only when the revisions,
    heads or target markers do, so it is drawn once per change.  Raises
    :class:`GraphvizUnavailable` if the drawing failed.
    """
    key = hashlib.sha256(dot.source.encode()).hexdigest()
    with _drawing_guard:
        done = _drawn.get(key)
        if done is None:
            thread = _drawing.get(key)
            if thread is None or not thread.is_alive():
                thread = threading.Thread(
                    target=_draw_in_background,
                    args=(key, dot.source, timeout),
                    daemon=True,
                    name="migdash-dot",
                )
                _drawing[key] = thread
                thread.start()
            return None
    if isinstance(done, GraphvizUnavailable):
        raise done
    return done


def _draw_in_background(key: str, source: str, timeout: float) -> None:
    try:
        result: str | GraphvizUnavailable = _svg_for(source, timeout)
    except GraphvizUnavailable as exc:
        result = exc
    except subprocess.TimeoutExpired:
        result = GraphvizUnavailable(f"dot did not finish within {timeout:.0f} s")
    with _drawing_guard:
        _drawn[key] = result
        _drawing.pop(key, None)
        while len(_drawn) > _BACKGROUND_KEPT:
            del _drawn[next(iter(_drawn))]


def revision_json(graph: RevisionGraph, revision: str) -> dict[str, object]:
    """One revision as ``heads``/``history`` list it in ``--json`` and the API."""
    node = graph.nodes[revision]
    return {
        "revision": node.revision,
        "down_revisions": list(node.down_revisions),
        "branch_labels": list(node.branch_labels),
        "depends_on": list(node.depends_on),
        "message": node.message,
        "is_head": node.is_head,
        "is_branch_point": node.is_branch_point,
        "is_merge": node.is_merge_point,
    }


def graph_json(graph: RevisionGraph) -> dict[str, object]:
    """A plain-data view of the graph for ``graph --format json`` and the API."""
    return {
        "heads": list(graph.heads),
        "bases": list(graph.bases),
        "branch_points": list(graph.branch_points),
        "merge_points": list(graph.merge_points),
        "revisions": [
            {
                "revision": rev,
                "down_revisions": list(graph.nodes[rev].down_revisions),
                "depends_on": list(graph.nodes[rev].depends_on),
                "branch_labels": list(graph.nodes[rev].branch_labels),
                "message": graph.nodes[rev].message,
            }
            for rev in graph.history
        ],
    }


def _kept_revisions(graph: RevisionGraph, markers: Mapping[str, Sequence[Marker]]) -> set[str]:
    """Revisions drawn as boxes: every structural one, marked ones, and short runs."""
    keep = set(markers) & set(graph.nodes)
    for rev, node in graph.nodes.items():
        if (
            node.is_head
            or node.is_base
            or node.is_branch_point
            or node.is_merge_point
            or node.branch_labels
            or node.depends_on
            or len(node.children) != 1
            or len(node.down_revisions) != 1
        ):
            keep.add(rev)
    for run in _hidden_runs(graph, keep):
        if len(run) < MIN_FOLD:
            keep.update(run)
    return keep


def _hidden_runs(graph: RevisionGraph, keep: set[str]) -> list[list[str]]:
    """Maximal straight runs of revisions not in *keep*, walked down from each kept child."""
    runs = []
    for rev in keep:
        for parent in graph.nodes[rev].down_revisions:
            run = []
            while parent not in keep:
                run.append(parent)
                parent = graph.nodes[parent].down_revisions[0]
            if run:
                runs.append(run)
    return runs


def _edges(graph: RevisionGraph, keep: set[str]) -> list[tuple[str, str, int]]:
    """Edges between kept revisions; a run of hidden ones becomes a count."""
    edges = []
    for rev in keep:
        for parent in graph.nodes[rev].down_revisions + graph.nodes[rev].depends_on:
            hidden = 0
            while parent not in keep:
                hidden += 1
                parent = graph.nodes[parent].down_revisions[0]
            edges.append((parent, rev, hidden))
    return sorted(edges)


def _draw_revision(
    dot: graphviz.Digraph,
    graph: RevisionGraph,
    revision: str,
    revision_href: Callable[[str], str] | None,
) -> None:
    node = graph.nodes[revision]
    message = (
        node.message if len(node.message) <= MAX_LABEL else node.message[: MAX_LABEL - 1] + "…"
    )
    lines = [revision[:12], message]
    if node.branch_labels:
        lines.append("[" + ", ".join(node.branch_labels) + "]")
    attrs = {"tooltip": graphviz.escape(f"{revision}: {node.message}")}
    if revision_href is not None:
        attrs["href"] = _escape_href(revision_href(revision))
        attrs["target"] = "_top"
    if node.is_head:
        attrs.update(fillcolor="#e6f4ea", penwidth="2")
    label = "\\n".join(graphviz.escape(line) for line in lines)
    dot.node(revision, label=label, **attrs)


def _draw_marker(dot: graphviz.Digraph, revision: str, marker: Marker) -> None:
    marker_id = "marker_" + hashlib.sha1(marker.name.encode()).hexdigest()[:12]  # noqa: S324
    attrs = {
        "shape": "cds",
        "style": "filled",
        "fillcolor": _STATE_COLOURS.get(marker.state, "#dddddd"),
        "fontsize": "9",
        "tooltip": graphviz.escape(f"{marker.name}: {marker.state}"),
    }
    if marker.href:
        attrs["href"] = _escape_href(marker.href)
        attrs["target"] = "_top"
    with dot.subgraph() as same_rank:
        same_rank.attr(rank="same")
        same_rank.node(revision)
        same_rank.node(marker_id, label=graphviz.escape(marker.name), **attrs)
    dot.edge(marker_id, revision, style="dashed", arrowhead="none")


def _escape_href(url: str) -> str:
    """``dot`` copies ``href`` into the SVG attribute as it is, so escape it for XML first.

    Entities pass through ``dot`` untouched, and ``graphviz.escape`` keeps a
    backslash from being read as a DOT escape such as ``\\N``.
    """
    return str(graphviz.escape(html.escape(url, quote=True)))


_STATE_COLOURS = {
    "up_to_date": "#b7e1c1",
    "behind": "#ffe08a",
    "unknown_revision": "#f4b6b6",
    "diverged": "#f4b6b6",
    "failed": "#f4b6b6",
    "busy": "#b9d3f5",
}
