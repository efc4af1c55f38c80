"""What state a target is in: a pure function of the project's graph and the target's probe.

Kept apart from probing so the rules can be tested with no database at all,
and so a page can re-assess cached probes when the project changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from migdash.engine.graph import RevisionGraph
from migdash.engine.probe import TargetProbe
from migdash.errors import MigdashError


class TargetState(StrEnum):
    """The states DESIGN.md names; the UI colours cells by them."""

    UP_TO_DATE = "up_to_date"
    BEHIND = "behind"
    UNKNOWN_REVISION = "unknown_revision"
    DIVERGED = "diverged"
    UNINITIALISED = "uninitialised"
    UNREACHABLE = "unreachable"
    BROKEN_PROJECT = "broken_project"
    NOT_PROBED = "not_probed"
    BUSY = "busy"
    FAILED = "failed"


@dataclass(frozen=True)
class TargetStatus:
    """A target's state, as the overview, the target page and ``status --json`` show it."""

    state: TargetState
    current: tuple[str, ...]
    """As ``alembic current`` lists them: version rows plus what they depend on."""
    heads: tuple[str, ...]
    pending: tuple[str, ...]
    """Revisions an upgrade to the tracked head(s) would apply, in apply order."""
    error: str | None = None


def pending_revisions(
    graph: RevisionGraph, current: Sequence[str], track: str = "heads"
) -> tuple[str, ...]:
    """Revisions ``alembic upgrade <track>`` would apply from *current*, in apply order."""
    return tuple(graph.upgrade_path(current, track))


def assess_target(
    graph: RevisionGraph | None,
    probe: TargetProbe,
    *,
    track: str = "heads",
    project_error: str | None = None,
) -> TargetStatus:
    """Combine a probe with the project's graph into a :class:`TargetStatus`.

    ``graph`` is None when the project cannot be loaded; the target's own
    revision is still reported, with the project's error.
    """
    if probe.error is not None:
        heads = graph.resolve_quietly(track) if graph is not None else ()
        return TargetStatus(TargetState.UNREACHABLE, (), heads, (), probe.error)
    if graph is None:
        return TargetStatus(TargetState.BROKEN_PROJECT, probe.current, (), (), project_error)
    heads = graph.resolve_quietly(track)
    if not probe.has_version_table:
        return TargetStatus(
            TargetState.UNINITIALISED, (), heads, pending_revisions(graph, (), track)
        )
    unknown = [rev for rev in probe.current if rev not in graph.nodes]
    if unknown:
        return TargetStatus(
            TargetState.UNKNOWN_REVISION,
            probe.current,
            heads,
            (),
            f"the database is at {', '.join(unknown)}, which this project does not contain "
            "(applied from a newer or different branch of the code?)",
        )
    try:
        tracked_mask = graph.ancestor_mask(graph.resolve(track))
    except MigdashError as exc:
        return TargetStatus(TargetState.DIVERGED, probe.current, heads, (), str(exc))
    off_track = [rev for rev in probe.current if not graph.in_mask(tracked_mask, rev)]
    if off_track:
        return TargetStatus(
            TargetState.DIVERGED,
            probe.current,
            heads,
            (),
            f"{', '.join(off_track)} is not on the way to {track}",
        )
    pending = pending_revisions(graph, probe.current, track)
    state = TargetState.BEHIND if pending else TargetState.UP_TO_DATE
    return TargetStatus(state, graph.effective_current(probe.current), heads, pending)


@dataclass(frozen=True)
class Destinations:
    """What a target page offers to upgrade, downgrade or stamp to, from where it stands.

    Only walks that lead somewhere are offered; Alembic still has the last
    word when the plan is made (an ambiguous walk is refused there with its
    reason).
    """

    upgrade: tuple[str, ...]
    downgrade: tuple[str, ...]
    stamp: tuple[str, ...]


def offered_destinations(graph: RevisionGraph, current: Sequence[str]) -> Destinations:
    """``heads``/``+1`` and every revision not applied yet; ``-1``, applied ancestors, ``base``.

    ``-1`` is offered only from a single revision with at most one parent:
    from a merge or several heads Alembic cannot tell which way one step goes.
    """
    known = [rev for rev in current if rev in graph.nodes]
    pending = tuple(graph.upgrade_path(known, "heads"))
    upgrade = (("heads", "+1") if pending else ()) + pending
    applied = graph.revisions_in(graph.ancestor_mask(known)) - set(known)
    below = tuple(rev for rev in graph.history if rev in applied)
    single_step = len(known) == 1 and len(graph.nodes[known[0]].ancestry) <= 1
    downgrade = (("-1",) if single_step else ()) + below + (("base",) if known else ())
    stamp = ("heads", *graph.history, "base")
    return Destinations(upgrade, downgrade, stamp)
