"""The engine's revision graph against Alembic itself.

Every shape the suite knows is written as a real project, and what the
engine says (heads, history order, current revisions) is compared with what
Alembic's own commands print for the same files and databases.  A seeded
property test then throws a few hundred random DAGs (merges, several bases,
depends_on, branch labels) at :meth:`RevisionGraph.alembic_order` and
:meth:`RevisionGraph.upgrade_path` and compares them with Alembic's
``walk_revisions()`` and upgrade planner.
"""

from __future__ import annotations

import io
import random
import re
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from migdash.engine.graph import RevisionGraph
from migdash.engine.probe import ProbePool, ProbeRequest, TargetProbe
from migdash.engine.project import open_project
from migdash.engine.state import assess_target
from migdash.scaffold import RevisionSpec
from tests.conftest import SHAPES

_HISTORY_REVISION = re.compile(r"-> ([^\s,]+)")


def run_alembic(project: Any, verb: str, url: str | None = None) -> list[str]:
    """Run ``alembic <verb>`` on *project* and return the lines it printed."""
    out = io.StringIO()
    config = Config(stdout=out)
    config.set_main_option("script_location", str(project.location))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url)
    getattr(command, verb)(config)
    return [line for line in out.getvalue().splitlines() if line.strip()]


def first_tokens(lines: list[str]) -> list[str]:
    """``heads`` and ``current`` print one revision per line, id first: ``c3 (head)``."""
    return [line.split()[0] for line in lines]


def history_revisions(lines: list[str]) -> list[str]:
    """``history`` prints ``<parents> -> <revision> (flags), message``; keep the revision."""
    found = []
    for line in lines:
        match = _HISTORY_REVISION.search(line)
        assert match, f"unexpected history line from Alembic: {line!r}"
        found.append(match.group(1))
    return found


def version_rows(url: str) -> tuple[str, ...]:
    """The version rows as read by Alembic's ``MigrationContext`` (where ``current`` starts)."""
    db_engine = sa.create_engine(url)
    try:
        with db_engine.connect() as connection:
            return tuple(sorted(MigrationContext.configure(connection).get_current_heads()))
    finally:
        db_engine.dispose()


def effective_current(graph: RevisionGraph, rows: tuple[str, ...]) -> set[str]:
    """What ``alembic current`` lists for version rows *rows*, as migdash reports it."""
    return set(assess_target(graph, TargetProbe(rows, True)).current)


# --- every shape, against Alembic's printed output ------------------------------------------


@pytest.mark.parametrize("shape_name", sorted(SHAPES))
def test_heads_match_alembic_heads_command(
    shape_name: str, make_project: Callable[..., Any], load_graph: Callable[..., RevisionGraph]
) -> None:
    project = make_project(shape_name)
    graph = load_graph(project)

    printed = first_tokens(run_alembic(project, "heads"))

    assert printed, "alembic heads printed nothing"
    assert sorted(printed) == sorted(graph.heads)
    assert len(set(printed)) == len(printed)


@pytest.mark.parametrize("shape_name", sorted(SHAPES))
def test_history_matches_alembic_history_command(
    shape_name: str, make_project: Callable[..., Any], load_graph: Callable[..., RevisionGraph]
) -> None:
    project = make_project(shape_name)
    graph = load_graph(project)

    printed = history_revisions(run_alembic(project, "history"))

    assert printed == list(graph.history)
    assert sorted(printed) == sorted(spec.revision for spec in project.revisions)


@pytest.mark.parametrize(
    ("shape", "at"),
    [
        (name, at)
        for name, specs in sorted(SHAPES.items())
        for at in [None, "base", *(spec.revision for spec in specs), "heads"]
    ],
)
def test_current_matches_alembic_current_command(
    shape: str,
    at: str | None,
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    load_graph: Callable[..., RevisionGraph],
    probes: ProbePool,
) -> None:
    project = make_project(shape)
    graph = load_graph(project)
    url = make_target(project, at=at)

    probe = probes.probe(ProbeRequest(url))
    printed = first_tokens(run_alembic(project, "current", url))

    assert probe.error is None
    assert probe.current == version_rows(url)
    assert len(set(printed)) == len(printed)
    assert set(printed) == effective_current(graph, probe.current)
    if not any(node.depends_on for node in graph.nodes.values()):
        assert sorted(printed) == list(probe.current)
    if at is None or at == "base":
        assert probe.current == ()
    elif at != "heads":
        assert at in probe.current


def test_current_sees_both_heads_after_upgrade_heads(
    make_project: Callable[..., Any], make_target: Callable[..., str], probes: ProbePool
) -> None:
    project = make_project("two_heads")
    url = make_target(project, at="heads")

    probe = probes.probe(ProbeRequest(url))
    printed = first_tokens(run_alembic(project, "current", url))

    assert probe.current == ("c3", "d4")
    assert sorted(printed) == ["c3", "d4"]


def test_current_with_depends_on_lists_the_dependency_too(
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    probes: ProbePool,
    load_graph: Callable[..., RevisionGraph],
) -> None:
    """The probe reports version rows; the status reports what ``alembic current`` prints.

    ``upgrade x2`` stores only ``x2``; Alembic's ``current`` also prints
    ``b2``, which x2 depends on, as an "effective head", and so does migdash.
    """
    project = make_project("depends")
    url = make_target(project, at="x2")

    probe = probes.probe(ProbeRequest(url))
    printed = first_tokens(run_alembic(project, "current", url))

    assert probe.current == ("x2",)
    assert sorted(printed) == ["b2", "x2"]
    assert list(assess_target(load_graph(project), probe).current) == sorted(printed)


# --- random DAGs, against Alembic's RevisionMap ---------------------------------------------


def random_dag(rng: random.Random) -> list[RevisionSpec]:
    """1-40 revisions with merges, several bases, depends_on and a few branch labels.

    Ids are random hex, like Alembic's, so load order differs from creation
    order; parents and dependencies are always earlier revisions, so there are
    no cycles.
    """
    specs: list[RevisionSpec] = []
    for position in range(rng.randint(1, 40)):
        revision = f"{rng.getrandbits(48):012x}"
        earlier = [spec.revision for spec in specs]
        roll = rng.random()
        down: str | tuple[str, ...] | None
        if not earlier or roll < 0.1:
            down = None
        elif roll < 0.3 and len(earlier) >= 2:
            down = tuple(rng.sample(earlier, rng.choice((2, 2, 3)) if len(earlier) >= 3 else 2))
        elif roll < 0.65:
            down = earlier[-1]
        else:
            down = rng.choice(earlier)
        parents = set(down or ()) if isinstance(down, tuple) else {down}
        depends: tuple[str, ...] = ()
        candidates = [rev for rev in earlier if rev not in parents]
        if candidates and rng.random() < 0.15:
            depends = tuple(rng.sample(candidates, min(len(candidates), rng.choice((1, 1, 2)))))
        labels = (f"lbl{position}",) if rng.random() < 0.08 else ()
        specs.append(RevisionSpec(revision, down, f"step {position}", labels, depends))
    return specs


def shuffle_file_names(rng: random.Random, project: Any) -> None:
    """Prefix every revision file with a random number.

    Alembic loads files in name order and breaks ties in its sort by that
    load order; the scaffold names files after their ids, so without this the
    load order would always equal id order and hide a wrong tie-break.
    """
    for path in sorted((project.location / "versions").glob("*.py")):
        path.rename(path.with_name(f"{rng.randrange(10**6):06d}_{path.name}"))


def random_currents(rng: random.Random, graph: RevisionGraph) -> list[tuple[str, ...]]:
    """A few plausible version-table contents: base, heads, and random sets of tips."""
    revisions = list(graph.nodes)
    currents: list[tuple[str, ...]] = [(), tuple(graph.real_heads)]
    for _ in range(6):
        picked = set(rng.sample(revisions, min(len(revisions), rng.randint(1, 3))))
        tips = {
            rev
            for rev in picked
            if not any(other != rev and graph.is_ancestor(rev, other) for other in picked)
        }
        currents.append(tuple(sorted(tips)))
    return currents


SEEDS = range(200)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_dag_matches_alembic(
    seed: int, make_project: Callable[..., Any], load_graph: Callable[..., RevisionGraph]
) -> None:
    rng = random.Random(seed)
    specs = random_dag(rng)
    project = make_project(specs)
    shuffle_file_names(rng, project)
    script_dir: ScriptDirectory = open_project(project.location)
    graph = load_graph(project)

    assert list(graph.heads) == list(script_dir.revision_map.heads)
    assert sorted(graph.bases) == sorted(script_dir.revision_map.bases)
    assert list(graph.history) == [script.revision for script in script_dir.walk_revisions()]

    compared = 0
    for current in random_currents(rng, graph):
        try:
            # Alembic's own planner; typed as str but takes the tuple of current heads.
            steps = script_dir._upgrade_revs("heads", current)  # type: ignore[arg-type]
        except CommandError:
            continue
        compared += 1
        expected = [step.revision.revision for step in steps]
        assert graph.upgrade_path(current) == expected, f"seed {seed}, current {current}"
    assert compared >= 2, f"seed {seed}: Alembic planned fewer than two upgrades"


def test_random_dags_include_the_hard_cases() -> None:
    """The property test is only as good as its inputs: check they hold every hard case."""
    dags = [random_dag(random.Random(seed)) for seed in SEEDS]

    def count(predicate: Callable[[list[RevisionSpec]], bool]) -> int:
        return sum(1 for dag in dags if predicate(dag))

    assert count(lambda dag: len(dag) == 1) >= 1
    assert count(lambda dag: len(dag) >= 30) >= 20
    assert count(lambda dag: any(isinstance(s.down_revision, tuple) for s in dag)) >= 100
    assert count(lambda dag: sum(s.down_revision is None for s in dag) >= 2) >= 100
    assert count(lambda dag: any(s.depends_on for s in dag)) >= 100
    assert count(lambda dag: any(s.branch_labels for s in dag)) >= 50
