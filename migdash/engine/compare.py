"""What separates two places in a revision graph: the revisions each side lacks, in apply order.

A side is what one or several databases hold: for each, the revisions it is
at.  "What B lacks of A" is the difference of ancestor sets (``depends_on``
included, so it works across merges, several bases and dependencies),
ordered as ``alembic upgrade <A's revisions>`` run on B would apply it.  The
order is Alembic's own topological walk (:meth:`RevisionGraph.alembic_order`),
and a property test holds it against ``ScriptDirectory._upgrade_revs``.

Promotion needs one more thing Alembic's command line imposes: ``upgrade``
takes one destination.  :func:`promotion_destination` names it, or says why
there is none.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from migdash.engine.graph import RevisionGraph
from migdash.errors import PlanRefused


@dataclass(frozen=True)
class SideComparison:
    """The revisions each side lacks of the other, each list in apply order."""

    a_lacks: tuple[str, ...]
    """Held by some database of side B, not by every database of side A."""
    b_lacks: tuple[str, ...]
    """Held by some database of side A, not by every database of side B."""

    @property
    def same(self) -> bool:
        return not self.a_lacks and not self.b_lacks


def tips(graph: RevisionGraph, revisions: Iterable[str]) -> tuple[str, ...]:
    """The fewest of *revisions* whose ancestors (dependencies included) cover all of them.

    ``alembic current`` lists a revision a later one depends on (``x2``
    depending on ``b2`` lists both); upgrading to ``x2`` alone applies ``b2``
    too, so only ``x2`` is a destination.  (Alembic itself refuses
    ``upgrade`` to both: "x2 overlaps with other requested revisions b2".)
    """
    unique = sorted(set(revisions))
    below = graph.ancestor_mask(parent for rev in unique for parent in graph.nodes[rev].ancestry)
    return tuple(rev for rev in unique if not graph.in_mask(below, rev))


def held_by_any(graph: RevisionGraph, currents: Iterable[Sequence[str]]) -> set[str]:
    """Revisions at least one database holds (each database given by its current revisions)."""
    revisions = [rev for current in currents for rev in current]
    return graph.revisions_in(graph.ancestor_mask(revisions))


def held_by_every(graph: RevisionGraph, currents: Iterable[Sequence[str]]) -> set[str]:
    """Revisions every database holds; an empty side holds nothing."""
    masks = [graph.ancestor_mask(current) for current in currents]
    if not masks:
        return set()
    common = masks[0]
    for mask in masks[1:]:
        common &= mask
    return graph.revisions_in(common)


def missing_revisions(
    graph: RevisionGraph, have: Iterable[str], lack: Iterable[str]
) -> tuple[str, ...]:
    """Revisions at or below *have* that *lack* does not hold, as ``upgrade <have>`` applies them.

    Both arguments are revision ids (current revisions, or whole ancestor
    sets); *lack* may hold revisions *have* does not, which stay where they are.
    """
    destination = tips(graph, have)
    needed = graph.ancestor_mask(destination) & ~graph.ancestor_mask(lack)
    return tuple(reversed(graph.alembic_order(graph.revisions_in(needed), destination)))


def compare_sides(
    graph: RevisionGraph, a: Sequence[Sequence[str]], b: Sequence[Sequence[str]]
) -> SideComparison:
    """Compare two sides, each a list of databases' current revisions.

    With one database a side, or databases that agree, this is the plain
    difference of ancestor sets both ways.  When a side's databases
    disagree, a revision counts as lacked if any of them lacks it, and as
    held if any of them holds it: nothing a promotion would have to apply is
    hidden.
    """
    return SideComparison(
        a_lacks=missing_revisions(graph, held_by_any(graph, b), held_by_every(graph, a)),
        b_lacks=missing_revisions(graph, held_by_any(graph, a), held_by_every(graph, b)),
    )


def promotion_destination(
    graph: RevisionGraph, source: Sequence[str], current: Sequence[str]
) -> str | None:
    """The one destination ``alembic upgrade`` needs to bring *current* to hold *source*.

    None when *current* already holds every revision of *source*.  Only the
    revisions of *source* that *current* lacks count, so a database already
    holding one of several source revisions is upgraded to the other one;
    when *source* holds every head of the project, ``heads`` is that
    destination.  Otherwise Alembic's ``upgrade`` cannot get there in one
    command.

    :raises PlanRefused: several revisions are needed and they are not the project's heads.
    """
    held = graph.ancestor_mask(current)
    needed = [rev for rev in tips(graph, source) if not graph.in_mask(held, rev)]
    if not needed:
        return None
    if len(needed) == 1:
        return needed[0]
    if graph.ancestor_mask(source) == graph.ancestor_mask(graph.real_heads):
        return "heads"
    raise PlanRefused(
        f"the revisions to reach ({', '.join(needed)}) are on separate branches and are not "
        "the project's heads; an Alembic upgrade goes to one destination",
        hint="Merge those branches, or upgrade to each revision in turn from the target's page.",
    )
