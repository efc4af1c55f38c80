"""Which part of a big revision graph to draw, and finding a revision in it.

A project of 10,000 revisions folds to a few thousand boxes at best, which
``dot`` lays out in tens of seconds into a multi-megabyte SVG.  Pages draw a
window instead: every revision within a few steps (down_revisions and
children, both ways) of chosen anchors, by default the heads, capped at
:data:`WINDOW_LIMIT` revisions.  The full picture is drawn in the background
(see :mod:`migdash.engine.render`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from migdash.engine.graph import RevisionGraph

DEFAULT_DEPTH = 20
MAX_DEPTH = 200
WINDOW_LIMIT = 400
"""At most this many revisions in one window (well under what ``dot`` lays out in a second)."""
SEARCH_LIMIT = 20


@dataclass(frozen=True)
class Window:
    """A part of the graph to draw: the revisions in it, and what it was centred on."""

    anchors: tuple[str, ...]
    depth: int
    revisions: frozenset[str]
    truncated: bool
    """True when :data:`WINDOW_LIMIT` stopped the walk before *depth* was reached."""


def window_around(
    graph: RevisionGraph,
    anchors: Iterable[str],
    depth: int = DEFAULT_DEPTH,
    *,
    limit: int = WINDOW_LIMIT,
) -> Window:
    """Revisions at most *depth* steps from any anchor, nearest first, at most *limit*.

    The walk goes breadth first in both directions (parents, dependencies,
    children), so the window is the neighbourhood a person looks at, and a
    wide graph hits *limit* before a narrow one.
    """
    start = tuple(dict.fromkeys(a for a in anchors if a in graph.nodes))
    seen = dict.fromkeys(start[:limit])
    frontier = list(seen)
    truncated = len(start) > limit
    for _ in range(depth):
        following = []
        for rev in frontier:
            node = graph.nodes[rev]
            for near in (*node.down_revisions, *node.depends_on, *node.children):
                if near in seen:
                    continue
                if len(seen) >= limit:
                    return Window(start, depth, frozenset(seen), True)
                seen[near] = None
                following.append(near)
        if not following:
            break
        frontier = following
    return Window(start, depth, frozenset(seen), truncated)


def search_revisions(graph: RevisionGraph, query: str, limit: int = SEARCH_LIMIT) -> list[str]:
    """Revisions matching *query*: an exact id or label, an id prefix, or words of the message.

    Matches come newest first (history order); at most *limit*.
    """
    query = query.strip()
    if not query:
        return []
    if query in graph.nodes:
        return [query]
    if query in graph.labels:
        return [graph.labels[query]]
    lowered = query.lower()
    found = []
    for rev in graph.history:
        if rev.startswith(lowered) or lowered in graph.nodes[rev].message.lower():
            found.append(rev)
            if len(found) >= limit:
                break
    return found
