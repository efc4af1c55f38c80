"""What each side lacks, against Alembic's own upgrade planner, on random DAGs.

For random pairs of version-table states A and B of random projects (merges,
several bases, depends_on, branch labels: the generator of
``test_graph_vs_alembic``), "what B lacks of A" must be exactly the steps
``ScriptDirectory._upgrade_revs(<A's revisions>, <B's revisions>)`` runs,
in the same order, whether the states are given as version rows or as what
``alembic current`` lists.  When A holds everything B holds ("A is ahead on
every branch") Alembic never refuses, so every such pair is compared.  The
single destination :func:`promotion_destination` picks must make Alembic run
those same steps.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from itertools import product
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from migdash.engine.compare import (
    compare_sides,
    held_by_any,
    held_by_every,
    missing_revisions,
    promotion_destination,
    tips,
)
from migdash.engine.graph import RevisionGraph
from migdash.engine.project import open_project
from migdash.errors import PlanRefused
from migdash.scaffold import RevisionSpec
from tests.engine.test_graph_vs_alembic import random_currents, random_dag, shuffle_file_names

SEEDS = range(120)


def alembic_upgrade(
    script: ScriptDirectory, destination: str | Sequence[str], current: Sequence[str]
) -> list[str] | None:
    """What ``upgrade <destination>`` applies from *current*; None where Alembic refuses."""
    try:
        # Typed as str, but Alembic's planner takes a tuple of revisions on both sides.
        steps = script._upgrade_revs(destination, tuple(current))  # type: ignore[arg-type]  # noqa: SLF001
    except CommandError:
        return None
    return [step.revision.revision for step in steps]


def includes(graph: RevisionGraph, have: Sequence[str], other: Sequence[str]) -> bool:
    """True when *have* holds every revision *other* holds."""
    held = graph.ancestor_mask(have)
    return graph.ancestor_mask(other) & ~held == 0


@pytest.mark.parametrize("seed", SEEDS)
def test_what_b_lacks_of_a_is_what_alembic_upgrade_to_a_runs_on_b(
    seed: int, make_project: Callable[..., Any], load_graph: Callable[..., RevisionGraph]
) -> None:
    rng = random.Random(seed)
    project = make_project(random_dag(rng))
    shuffle_file_names(rng, project)
    script = open_project(project.location)
    graph = load_graph(project)
    states = sorted(set(random_currents(rng, graph)))

    compared = ahead = 0
    for a, b in product(states, states):
        expected = alembic_upgrade(script, a, b)
        if includes(graph, a, b):
            ahead += 1
            assert expected is not None, f"seed {seed}: Alembic refused upgrade {a} from {b}"
        if expected is None:
            continue
        compared += 1
        where = f"seed {seed}: {b} lacks of {a}"
        assert list(missing_revisions(graph, a, b)) == expected, where
        effective_a, effective_b = graph.effective_current(a), graph.effective_current(b)
        assert list(missing_revisions(graph, effective_a, effective_b)) == expected, where
        both = compare_sides(graph, [effective_a], [effective_b])
        assert list(both.b_lacks) == expected, where
        assert list(both.a_lacks) == list(missing_revisions(graph, b, a)), where
    assert ahead >= len(states), f"seed {seed}: too few pairs with A ahead on every branch"
    assert compared >= len(states)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_promotion_destination_makes_alembic_run_exactly_what_is_lacked(
    seed: int, make_project: Callable[..., Any], load_graph: Callable[..., RevisionGraph]
) -> None:
    rng = random.Random(seed)
    project = make_project(random_dag(rng))
    script = open_project(project.location)
    graph = load_graph(project)
    states = sorted(set(random_currents(rng, graph)))

    for a, b in product(states, states):
        source, current = graph.effective_current(a), graph.effective_current(b)
        lacked = list(missing_revisions(graph, source, current))
        needed = [rev for rev in tips(graph, source) if rev in lacked]
        if len(needed) > 1 and not includes(graph, source, graph.real_heads):
            with pytest.raises(PlanRefused) as refused:
                promotion_destination(graph, source, current)
            assert all(rev in refused.value.message for rev in needed), refused.value.message
            continue
        destination = promotion_destination(graph, source, current)
        if destination is None:
            assert lacked == [], (seed, a, b)
            continue
        assert alembic_upgrade(script, destination, b) == lacked, (seed, a, b, destination)


@pytest.mark.parametrize("seed", SEEDS[:60])
def test_sides_of_several_databases_hide_nothing_and_add_nothing(
    seed: int, make_project: Callable[..., Any], load_graph: Callable[..., RevisionGraph]
) -> None:
    """A side of several databases lacks what any of them lacks (Alembic's answer per database)."""
    rng = random.Random(seed)
    project = make_project(random_dag(rng))
    script = open_project(project.location)
    graph = load_graph(project)
    states = sorted(set(random_currents(rng, graph)))

    for _ in range(10):
        side_a = rng.sample(states, min(len(states), rng.randint(1, 3)))
        side_b = rng.sample(states, min(len(states), rng.randint(1, 3)))
        result = compare_sides(graph, side_a, side_b)
        union_a = tips(graph, held_by_any(graph, side_a))
        per_database = [alembic_upgrade(script, union_a, b) for b in side_b]
        if any(steps is None for steps in per_database):
            continue
        lacked = {rev for steps in per_database if steps for rev in steps}
        assert set(result.b_lacks) == lacked, (seed, side_a, side_b)
        assert len(result.b_lacks) == len(lacked)
        assert set(result.a_lacks) == held_by_any(graph, side_b) - held_by_every(graph, side_a)


def test_the_random_pairs_hold_divergent_sides_and_merges(
    make_project: Callable[..., Any], load_graph: Callable[..., RevisionGraph]
) -> None:
    """The property tests are only as good as their pairs: both sides lacking, and merges."""
    divergent = across_merge = 0
    destinations = {"one revision": 0, "heads": 0, "refused": 0}
    for seed in SEEDS[:40]:
        rng = random.Random(seed)
        specs = random_dag(rng)
        graph = load_graph(make_project(specs))
        states = sorted(set(random_currents(rng, graph)))
        merges = set(graph.merge_points)
        for a, b in product(states, states):
            result = compare_sides(graph, [a], [b])
            divergent += bool(result.a_lacks and result.b_lacks)
            across_merge += bool(merges & set(result.b_lacks))
            try:
                destination = promotion_destination(graph, a, b)
            except PlanRefused:
                destinations["refused"] += 1
                continue
            if destination is not None:
                destinations["heads" if destination == "heads" else "one revision"] += 1
    assert divergent >= 50
    assert across_merge >= 50
    assert min(destinations.values()) >= 50, destinations


BRANCHED = [
    RevisionSpec("a1", None, "create accounts"),
    RevisionSpec("b2", "a1", "branch point"),
    RevisionSpec("c3", "b2", "left one"),
    RevisionSpec("c4", "c3", "left two"),
    RevisionSpec("d3", "b2", "right one"),
    RevisionSpec("d4", "d3", "right two"),
    RevisionSpec("e5", ("c4", "d4"), "merge left and right"),
    RevisionSpec("f6", "e5", "after the merge"),
]


def test_divergent_branches_lack_each_other_and_the_merge_brings_both(
    make_project: Callable[..., Any], load_graph: Callable[..., RevisionGraph]
) -> None:
    project = make_project(BRANCHED)
    script = open_project(project.location)
    graph = load_graph(project)

    left_vs_right = compare_sides(graph, [("c4",)], [("d4",)])
    after_merge = compare_sides(graph, [("f6",)], [("d3",)])

    assert list(left_vs_right.b_lacks) == alembic_upgrade(script, "c4", ["d4"])
    assert list(left_vs_right.a_lacks) == alembic_upgrade(script, "d4", ["c4"])
    assert set(left_vs_right.b_lacks) == {"c3", "c4"}
    assert after_merge.a_lacks == ()
    assert list(after_merge.b_lacks) == alembic_upgrade(script, "f6", ["d3"])
    assert {"e5", "f6", "c3", "c4", "d4"} == set(after_merge.b_lacks)
    one_branch_held = promotion_destination(graph, ["c4", "d4"], ["d4"])
    assert one_branch_held is not None
    assert alembic_upgrade(script, one_branch_held, ["d4"]) == alembic_upgrade(
        script, ("c4", "d4"), ["d4"]
    )


def test_several_revisions_on_separate_branches_are_refused_with_their_names(
    make_project: Callable[..., Any], load_graph: Callable[..., RevisionGraph]
) -> None:
    graph = load_graph(make_project(BRANCHED))

    with pytest.raises(PlanRefused) as refused:
        promotion_destination(graph, ["c4", "d4"], ["b2"])

    assert "c4" in refused.value.message
    assert "d4" in refused.value.message
    assert refused.value.hint
