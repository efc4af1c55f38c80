"""The revision graph of one project, read once from Alembic and queried cheaply.

Alembic's ``RevisionMap`` answers every question correctly but some slowly:
``walk_revisions()`` (what ``alembic history`` prints) is quadratic in the
number of revisions.  :func:`build_graph` copies the map into frozen
dataclasses once, precomputes every revision's ancestor set as a bitmask, and
:meth:`RevisionGraph.alembic_order` replays Alembic's own topological sort
against those masks, so history and pending lists come out in exactly
Alembic's order in near-linear time.  Tests compare both against Alembic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from alembic.script import Script, ScriptDirectory
from alembic.util import to_tuple

from migdash.errors import AmbiguousHead, MigdashError, UnknownRevision


@dataclass(frozen=True)
class RevisionNode:
    """One revision, as Alembic sees it once its map is linked."""

    revision: str
    down_revisions: tuple[str, ...]
    """The ``down_revision`` ids as written in the file, in order."""
    depends_on: tuple[str, ...]
    """``depends_on`` resolved to revision ids (labels become the revision carrying them)."""
    branch_labels: tuple[str, ...]
    message: str
    """First paragraph of the docstring: what ``alembic history`` prints."""
    doc: str
    path: str
    is_head: bool
    is_base: bool
    is_branch_point: bool
    is_merge_point: bool
    children: tuple[str, ...]
    ancestry: tuple[str, ...]
    """Alembic's ``_normalized_down_revisions``: the parents its sort walks."""
    is_plain_step: bool
    """Exactly one versioned parent and no dependencies (Alembic's fast path)."""


@dataclass(frozen=True)
class RevisionGraph:
    """Every revision of a project, with heads, bases and Alembic's history order."""

    location: str
    nodes: Mapping[str, RevisionNode]
    """Keyed by revision id, in the order Alembic loaded them."""
    heads: tuple[str, ...]
    """What ``alembic heads`` lists: revisions no other revision names as down_revision."""
    real_heads: tuple[str, ...]
    """What ``upgrade heads`` aims at: heads that nothing depends on either."""
    bases: tuple[str, ...]
    labels: Mapping[str, str]
    """Branch label -> the revision that declares it."""
    history: tuple[str, ...] = ()
    """All revision ids newest first, as ``alembic history`` lists them."""
    _index: Mapping[str, int] = field(default_factory=dict, repr=False)
    _masks: Mapping[str, int] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.nodes)

    def __bool__(self) -> bool:
        """A project with no revisions yet is still a loaded project."""
        return True

    @property
    def branch_points(self) -> tuple[str, ...]:
        return tuple(r for r in self.history if self.nodes[r].is_branch_point)

    @property
    def merge_points(self) -> tuple[str, ...]:
        return tuple(r for r in self.history if self.nodes[r].is_merge_point)

    def ancestor_mask(self, revisions: Iterable[str]) -> int:
        """Bitmask of *revisions* and all their ancestors (dependencies included)."""
        mask = 0
        for rev in revisions:
            mask |= self._masks[rev]
        return mask

    def revisions_in(self, mask: int) -> set[str]:
        """The revision ids whose bits are set in *mask*."""
        ids = list(self._index)
        found = set()
        position = 0
        while mask:
            if mask & 1:
                found.add(ids[position])
            mask >>= 1
            position += 1
        return found

    def in_mask(self, mask: int, revision: str) -> bool:
        """True when *revision*'s bit is set in *mask*."""
        return bool(mask >> self._index[revision] & 1)

    def resolve_quietly(self, symbol: str) -> tuple[str, ...]:
        """:meth:`resolve`, but an empty tuple where that would raise (for display)."""
        try:
            return self.resolve(symbol)
        except MigdashError:
            return ()

    def effective_current(self, rows: Iterable[str]) -> tuple[str, ...]:
        """What ``alembic current`` lists for these version rows.

        Alembic adds what the rows depend on (``depends_on``) and keeps the
        branch tips of everything applied; without dependencies that is
        exactly the rows.
        """
        applied = self.revisions_in(self.ancestor_mask(rows))
        return tuple(
            sorted(
                rev
                for rev in applied
                if not any(child in applied for child in self.nodes[rev].children)
            )
        )

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """True when *ancestor* is *descendant* or lies below it."""
        return bool(self._masks[descendant] >> self._index[ancestor] & 1)

    def resolve(self, symbol: str) -> tuple[str, ...]:
        """Turn what a person types into revision ids, as Alembic would.

        Accepts ``heads``, ``head``, ``base``, a full or unique partial id, a
        branch label, and ``label@head``.
        """
        if symbol == "heads":
            return self.real_heads
        if symbol == "base":
            return ()
        if symbol == "head":
            if len(self.real_heads) > 1:
                raise AmbiguousHead(
                    f"'head' is ambiguous: the project has {len(self.real_heads)} heads "
                    f"({', '.join(self.real_heads)})"
                )
            return self.real_heads
        label, at, rest = symbol.partition("@")
        if at and rest == "head":
            return (self._branch_head(label),)
        if symbol in self.nodes:
            return (symbol,)
        if symbol in self.labels:
            return (self.labels[symbol],)
        matches = [rev for rev in self.nodes if rev.startswith(symbol)]
        if len(matches) == 1:
            return (matches[0],)
        raise UnknownRevision(symbol)

    def _branch_head(self, label: str) -> str:
        start = self.resolve(label)[0]
        heads = [h for h in self.real_heads if self.is_ancestor(start, h)]
        if len(heads) != 1:
            raise AmbiguousHead(f"branch {label!r} has {len(heads)} heads")
        return heads[0]

    def alembic_order(self, todo: set[str], heads: Iterable[str]) -> list[str]:
        """Order *todo* newest first exactly as Alembic's ``_topological_sort`` does.

        Alembic keeps one lane per open head and, before emitting a lane's
        revision, checks that no other lane still needs it as an ancestor.
        The same walk runs here; the ancestor test is one bit test instead of
        a recomputed set.
        """
        todo = set(todo)
        lanes = sorted({h for h in heads if h in todo}, key=self._index.__getitem__)
        output: list[str] = []
        current = 0
        while lanes:
            candidate = lanes[current]
            bit = 1 << self._index[candidate]
            for other, head in enumerate(lanes):
                if other != current and self._masks[head] & bit:
                    current = other
                    break
            else:
                if candidate in todo:
                    output.append(candidate)
                    todo.remove(candidate)
                parents = [
                    r for r in self.nodes[candidate].ancestry if r in todo and r not in lanes
                ]
                if not parents:
                    del lanes[current]
                    current = max(current - 1, 0)
                else:
                    lanes[current] = parents[0]
                    lanes.extend(parents[1:])
        return output

    def upgrade_path(self, current: Iterable[str], destination: str = "heads") -> list[str]:
        """Revisions an ``upgrade`` from *current* to *destination* applies, in apply order."""
        targets = self.resolve(destination)
        needed = self.ancestor_mask(targets) & ~self.ancestor_mask(current)
        return list(reversed(self.alembic_order(self.revisions_in(needed), targets)))


def build_graph(script_dir: ScriptDirectory, location: str) -> RevisionGraph:
    """Copy a loaded ``ScriptDirectory`` into a :class:`RevisionGraph` (in a child process)."""
    return graph_from_data(location, graph_data(script_dir))


def graph_data(script_dir: ScriptDirectory) -> dict[str, Any]:
    """The revision map as plain JSON-able data: what a child process hands its parent.

    Reading the map imports every revision file, so this runs only where
    project code may run; :func:`graph_from_data` rebuilds the graph anywhere.
    """
    revision_map = script_dir.revision_map
    scripts: list[Script] = [
        rev
        for key, rev in revision_map._revision_map.items()  # noqa: SLF001 - Alembic's load order
        if isinstance(rev, Script) and key == rev.revision
    ]
    return {
        "nodes": [asdict(_node_from_script(script)) for script in scripts],
        "heads": list(revision_map.heads),
        "real_heads": list(revision_map._real_heads),  # noqa: SLF001 - what "heads" resolves to
        "bases": list(revision_map.bases),
    }


def graph_from_data(location: str, data: Mapping[str, Any]) -> RevisionGraph:
    """Rebuild a :class:`RevisionGraph` from :func:`graph_data` (masks and history included).

    *data* may carry ``history`` from an earlier rebuild (the catalog's disk
    cache keeps it): replaying Alembic's sort is the dearest step at 10,000
    revisions, and the order depends on nothing but the nodes.
    """
    nodes = {raw["revision"]: _node_from_data(raw) for raw in data["nodes"]}
    index = {rev: position for position, rev in enumerate(nodes)}
    labels = {label: node.revision for node in nodes.values() for label in node.branch_labels}
    graph = RevisionGraph(
        location=location,
        nodes=nodes,
        heads=tuple(data["heads"]),
        real_heads=tuple(data["real_heads"]),
        bases=tuple(data["bases"]),
        labels=labels,
        _index=index,
        _masks=_ancestor_masks(nodes, index),
    )
    known = tuple(data.get("history") or ())
    if len(known) == len(nodes) and set(known) == nodes.keys():
        history = known
    else:
        history = tuple(graph.alembic_order(set(nodes), graph.real_heads))
    object.__setattr__(graph, "history", history)
    return graph


def _node_from_data(raw: Mapping[str, Any]) -> RevisionNode:
    return RevisionNode(
        revision=raw["revision"],
        down_revisions=tuple(raw["down_revisions"]),
        depends_on=tuple(raw["depends_on"]),
        branch_labels=tuple(raw["branch_labels"]),
        message=raw["message"],
        doc=raw["doc"],
        path=raw["path"],
        is_head=raw["is_head"],
        is_base=raw["is_base"],
        is_branch_point=raw["is_branch_point"],
        is_merge_point=raw["is_merge_point"],
        children=tuple(raw["children"]),
        ancestry=tuple(raw["ancestry"]),
        is_plain_step=raw["is_plain_step"],
    )


def _node_from_script(script: Script) -> RevisionNode:
    return RevisionNode(
        revision=script.revision,
        down_revisions=tuple(to_tuple(script.down_revision, default=())),
        depends_on=tuple(script._resolved_dependencies),  # noqa: SLF001
        branch_labels=_declared_labels(script),
        message=script.doc,
        doc=script.longdoc,
        path=str(Path(script.path)),
        is_head=script.is_head,
        is_base=script.is_base,
        is_branch_point=script.is_branch_point,
        is_merge_point=script.is_merge_point,
        children=tuple(sorted(script.nextrev)),
        ancestry=tuple(script._normalized_down_revisions),  # noqa: SLF001
        is_plain_step=(
            not script._normalized_resolved_dependencies  # noqa: SLF001
            and len(script._versioned_down_revisions) == 1  # noqa: SLF001
        ),
    )


def _declared_labels(script: Script) -> tuple[str, ...]:
    """Labels the file itself declares (Alembic copies them onto descendants too)."""
    return tuple(sorted(script._orig_branch_labels))  # noqa: SLF001


def _ancestor_masks(nodes: Mapping[str, RevisionNode], index: Mapping[str, int]) -> dict[str, int]:
    """Each revision's inclusive ancestor set as an int bitmask, parents first."""
    masks: dict[str, int] = {}
    for rev in nodes:
        stack = [rev]
        while stack:
            top = stack[-1]
            if top in masks:
                stack.pop()
                continue
            missing = [p for p in nodes[top].ancestry if p not in masks]
            if missing:
                stack.extend(missing)
                continue
            mask = 1 << index[top]
            for parent in nodes[top].ancestry:
                mask |= masks[parent]
            masks[top] = mask
            stack.pop()
    return masks
