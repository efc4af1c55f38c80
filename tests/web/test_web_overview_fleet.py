"""A fleet cell (many targets of one project in one environment) lists who needs attention.

Hundreds of tenants in one cell would make the overview unreadable and slow;
a big cell lists the targets that are not up to date (or are flagged) and
counts the rest by state, and ``?project=&environment=`` lists a cell whole.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st

from migdash.engine.state import TargetState, TargetStatus
from migdash.status import ATTENTION_LIMIT, CELL_LISTS_ALL, TargetReport, fold_cell
from migdash.store import registry
from migdash.store.models import Role
from tests.web.pagetext import target_states

HX = {"HX-Request": "true"}
FOLDED = re.compile(r'<span class="count state-([a-z_]+)" data-state="\1">(\d+) ')


@pytest.fixture
def big_cell(
    make_project: Callable[..., Any],
    register_project: Callable[..., Any],
    make_target: Callable[..., str],
    db_session: Any,
    tmp_path: Path,
) -> dict[str, str]:
    """30 tenants of one project in prod: 27 up to date, 3 behind; one dev target."""
    linear = make_project("linear")
    register_project(linear)
    at_head, at_a1 = make_target(linear, at="heads"), make_target(linear, at="a1")
    expected = {}
    for i in range(30):
        behind = i % 10 == 3
        path = tmp_path / f"tenant{i:02d}.db"
        shutil.copyfile((at_a1 if behind else at_head).removeprefix("sqlite:///"), path)
        name = f"tenant-{i:02d}"
        registry.add_target(
            db_session, name, project="linear", environment="prod", url=f"sqlite:///{path}"
        )
        expected[name] = "behind" if behind else "up_to_date"
    registry.add_target(db_session, "dev-1", project="linear", environment="dev", url=at_a1)
    db_session.commit()
    return expected


def folded(html: str) -> dict[str, int]:
    return {state: int(count) for state, count in FOLDED.findall(html)}


def test_a_big_cell_lists_who_needs_attention_and_counts_the_rest(
    login: Callable[..., FlaskClient], big_cell: dict[str, str]
) -> None:
    client = login(Role.VIEWER)
    html = client.get("/overview/matrix", headers=HX).get_data(as_text=True)

    listed = target_states(html)
    behind = {name for name, state in big_cell.items() if state == "behind"}
    assert {n for n, s in listed.items() if n.startswith("tenant-")} == behind
    assert all(listed[name] == "behind" for name in behind)
    assert listed["dev-1"] == "behind", "a small cell still lists every target"
    assert folded(html) == {"up_to_date": 27}
    assert 'href="/?project=linear&amp;environment=prod">list all 30</a>' in html


def test_a_filtered_cell_lists_every_target_and_keeps_its_filter_when_refreshing(
    login: Callable[..., FlaskClient], big_cell: dict[str, str]
) -> None:
    client = login(Role.VIEWER)
    client.get("/overview/matrix", headers=HX)  # probe once
    html = client.get("/?project=linear&environment=prod").get_data(as_text=True)

    assert target_states(html) == big_cell
    assert folded(html) == {}
    assert 'hx-get="/overview/matrix?project=linear&amp;environment=prod"' in html
    assert "Show everything" in html
    only_env = client.get("/?environment=dev").get_data(as_text=True)
    assert set(target_states(only_env)) == {"dev-1"}


@pytest.mark.parametrize(
    ("query", "message"),
    [("project=nope", "no project named"), ("environment=nope", "no environment named")],
)
def test_an_unknown_filter_is_a_404_naming_it(
    login: Callable[..., FlaskClient], big_cell: dict[str, str], query: str, message: str
) -> None:
    response = login(Role.VIEWER).get(f"/?{query}")
    assert response.status_code == 404
    assert message in response.get_data(as_text=True)


STATES = st.sampled_from(list(TargetState))


@given(
    states=st.lists(STATES, max_size=60),
    flagged_at=st.sets(st.integers(0, 59)),
    full=st.booleans(),
)
def test_fold_cell_hides_no_one_who_needs_attention_until_the_limit(
    states: list[TargetState], flagged_at: set[int], full: bool
) -> None:
    reports = [
        TargetReport(f"t{i}", "p", "e", TargetStatus(state, (), (), (), None), None, i)
        for i, state in enumerate(states)
    ]
    flagged = {f"t{i}" for i in flagged_at}
    cell = fold_cell(reports, {}, flagged, full=full)

    listed = [r.target for r in cell.reports]
    assert cell.total == len(reports)
    assert len(listed) + sum(count for _, count in cell.folded) == len(reports)
    assert len(set(listed)) == len(listed)
    if full or len(reports) <= CELL_LISTS_ALL:
        assert listed == [r.target for r in reports]
        return
    needing = [
        r.target
        for r in reports
        if r.status.state is not TargetState.UP_TO_DATE or r.target in flagged
    ]
    assert listed == needing[:ATTENTION_LIMIT], "attention first, in order, up to the limit"
    by_state = dict(cell.folded)
    for report in reports:
        if report.target not in listed:
            assert by_state.get(report.status.state.value, 0) > 0
