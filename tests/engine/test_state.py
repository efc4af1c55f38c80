"""A target's state from a real probe of a real database, judged against the project's graph."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from migdash.engine.graph import RevisionGraph
from migdash.engine.probe import ProbePool, ProbeRequest
from migdash.engine.project import open_project
from migdash.engine.state import TargetState, TargetStatus, assess_target, pending_revisions
from migdash.errors import BrokenProject


@pytest.fixture
def assess(
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    load_graph: Callable[..., RevisionGraph],
    probes: ProbePool,
) -> Callable[..., TargetStatus]:
    """Make *shape*, a SQLite target at *at*, probe it and assess it against *track*."""

    def factory(shape: str, at: str | None, track: str = "heads") -> TargetStatus:
        project = make_project(shape)
        probe = probes.probe(ProbeRequest(make_target(project, at=at)))
        assert probe.error is None, probe.error
        return assess_target(load_graph(project), probe, track=track)

    return factory


def test_up_to_date(assess: Callable[..., TargetStatus]) -> None:
    status = assess("linear", "heads")

    assert status.state is TargetState.UP_TO_DATE
    assert status.current == ("c3",)
    assert status.heads == ("c3",)
    assert status.pending == ()
    assert status.error is None


def test_merged_project_at_its_single_head_is_up_to_date(
    assess: Callable[..., TargetStatus],
) -> None:
    status = assess("merged", "heads")

    assert status.state is TargetState.UP_TO_DATE
    assert status.current == ("f6",)


def test_behind_lists_pending_in_apply_order(assess: Callable[..., TargetStatus]) -> None:
    status = assess("linear", "a1")

    assert status.state is TargetState.BEHIND
    assert status.current == ("a1",)
    assert status.pending == ("b2", "c3")


def test_behind_across_a_merge(assess: Callable[..., TargetStatus]) -> None:
    status = assess("merged", "c3")

    assert status.state is TargetState.BEHIND
    assert status.pending == ("d4", "e5", "f6")


def test_two_heads_target_at_one_head_is_behind(assess: Callable[..., TargetStatus]) -> None:
    status = assess("two_heads", "c3")

    assert status.state is TargetState.BEHIND
    assert status.current == ("c3",)
    assert sorted(status.heads) == ["c3", "d4"]
    assert status.pending == ("d4",)


def test_two_heads_target_at_both_heads_is_up_to_date(
    assess: Callable[..., TargetStatus],
) -> None:
    status = assess("two_heads", "heads")

    assert status.state is TargetState.UP_TO_DATE
    assert status.current == ("c3", "d4")


def test_dependency_is_pending_before_what_depends_on_it(
    assess: Callable[..., TargetStatus],
) -> None:
    status = assess("depends", "x1")

    assert status.state is TargetState.BEHIND
    assert status.pending.index("b2") < status.pending.index("x2")
    assert set(status.pending) == {"a1", "b2", "x2"}


@pytest.mark.parametrize(
    ("shape", "at"), [("linear", "a1"), ("merged", "d4"), ("two_heads", "b2"), ("depends", None)]
)
def test_pending_matches_what_alembic_upgrade_applies(
    shape: str,
    at: str | None,
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    load_graph: Callable[..., RevisionGraph],
    probes: ProbePool,
) -> None:
    project = make_project(shape)
    probe = probes.probe(ProbeRequest(make_target(project, at=at)))
    script_dir = open_project(project.location)
    steps = script_dir._upgrade_revs("heads", probe.current)  # type: ignore[arg-type]

    status = assess_target(load_graph(project), probe)

    assert list(status.pending) == [step.revision.revision for step in steps]
    assert status.pending == pending_revisions(load_graph(project), probe.current)


def test_unknown_revision(
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    load_graph: Callable[..., RevisionGraph],
    probes: ProbePool,
) -> None:
    project = make_project("linear")
    url = make_target(project, at="b2")
    db_engine = sa.create_engine(url)
    with db_engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = 'ffff9999'")
    db_engine.dispose()

    status = assess_target(load_graph(project), probes.probe(ProbeRequest(url)))

    assert status.state is TargetState.UNKNOWN_REVISION
    assert status.current == ("ffff9999",)
    assert status.pending == ()
    assert status.error is not None
    assert "ffff9999" in status.error


def test_uninitialised_lists_every_revision_as_pending(
    assess: Callable[..., TargetStatus],
) -> None:
    status = assess("linear", None)

    assert status.state is TargetState.UNINITIALISED
    assert status.current == ()
    assert status.pending == ("a1", "b2", "c3")


def test_unreachable(
    tmp_path: Path,
    make_project: Callable[..., Any],
    load_graph: Callable[..., RevisionGraph],
    probes: ProbePool,
) -> None:
    graph = load_graph(make_project("linear"))
    probe = probes.probe(ProbeRequest(f"sqlite:///{tmp_path / 'gone.db'}"))

    status = assess_target(graph, probe)

    assert status.state is TargetState.UNREACHABLE
    assert status.error == probe.error
    assert status.error
    assert status.pending == ()


def test_broken_project_still_reports_the_target_revision(
    make_project: Callable[..., Any], make_target: Callable[..., str], probes: ProbePool
) -> None:
    project = make_project("linear")
    url = make_target(project, at="b2")
    (bad,) = (project.location / "versions").glob("c3_*.py")
    bad.write_text("def upgrade(:\n")
    with pytest.raises(BrokenProject) as info:
        open_project(project.location)

    status = assess_target(None, probes.probe(ProbeRequest(url)), project_error=str(info.value))

    assert status.state is TargetState.BROKEN_PROJECT
    assert status.current == ("b2",)
    assert status.error == str(info.value)
    assert bad.name in status.error


def test_diverged_when_on_the_branch_not_tracked(assess: Callable[..., TargetStatus]) -> None:
    status = assess("two_heads", "d4", track="c3")

    assert status.state is TargetState.DIVERGED
    assert status.current == ("d4",)
    assert status.heads == ("c3",)
    assert status.pending == ()
    assert status.error is not None
    assert "d4" in status.error


def test_tracking_one_branch_from_below_it_is_behind(assess: Callable[..., TargetStatus]) -> None:
    status = assess("two_heads", "b2", track="c3")

    assert status.state is TargetState.BEHIND
    assert status.pending == ("c3",)


def test_tracking_a_branch_label(assess: Callable[..., TargetStatus]) -> None:
    at_tip = assess("labels", "c3", track="orders@head")
    below = assess("labels", "a1", track="orders@head")
    other_branch = assess("labels", "x2", track="orders@head")

    assert at_tip.state is TargetState.UP_TO_DATE
    assert below.state is TargetState.BEHIND
    assert below.pending == ("b2", "c3")
    assert other_branch.state is TargetState.DIVERGED
