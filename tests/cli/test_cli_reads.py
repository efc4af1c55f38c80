"""Read commands: status, current, heads, history, show, graph; checked against Alembic."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from click.testing import Result

from migdash.scaffold import RevisionSpec
from migdash.store import registry

STATUS_FIELDS = {
    "project",
    "environment",
    "target",
    "state",
    "current",
    "heads",
    "pending",
    "error",
    "checked_at",
}
HISTORY_FIELDS = {
    "revision",
    "down_revisions",
    "branch_labels",
    "depends_on",
    "message",
    "is_head",
    "is_branch_point",
    "is_merge",
}


@pytest.fixture
def fleet(
    make_project: Callable[..., Any], register: Callable[..., dict[str, str]], tmp_path: Path
) -> tuple[Any, dict[str, str]]:
    """A ``two_heads`` project with a target at head, one behind, one empty, one dead."""
    project = make_project("two_heads")
    urls = register(
        project,
        {"db-head": ("dev", "heads"), "db-a1": ("staging", "a1"), "db-empty": ("prod", None)},
        **{"db-dead": f"sqlite:///{tmp_path / 'missing' / 'x.db'}"},
    )
    return project, urls


def test_status_json_fields(
    cli_json: Callable[..., Any],
    fleet: tuple[Any, dict[str, str]],
    alembic_script: Callable[[Path], ScriptDirectory],
    alembic_apply_order: Callable[..., list[str]],
) -> None:
    project, urls = fleet
    script = alembic_script(project.location)
    heads = sorted(script.get_heads())
    reports = {r["target"]: r for r in cli_json("status")}
    assert set(reports) == {"db-head", "db-a1", "db-empty", "db-dead"}
    for report in reports.values():
        assert set(report) == STATUS_FIELDS
        assert report["project"] == "two_heads"
        assert isinstance(report["heads"], list)
    for name in ("db-head", "db-a1", "db-empty"):
        assert isinstance(reports[name]["current"], list)
        assert isinstance(reports[name]["pending"], list)
    # the unreachable database told us nothing: unknown is null, never an empty list
    dead = reports["db-dead"]
    assert (dead["state"], dead["current"], dead["pending"]) == ("unreachable", None, None)
    head, behind = reports["db-head"], reports["db-a1"]
    assert (head["state"], sorted(head["current"]), head["pending"], head["error"]) == (
        "up_to_date",
        heads,
        [],
        None,
    )
    assert (behind["state"], behind["current"], behind["environment"]) == (
        "behind",
        ["a1"],
        "staging",
    )
    assert sorted(behind["heads"]) == heads
    assert behind["pending"] == alembic_apply_order(project, urls["db-a1"])
    assert reports["db-empty"]["state"] == "uninitialised"
    assert reports["db-empty"]["current"] == []
    assert sorted(reports["db-empty"]["heads"]) == heads
    assert reports["db-empty"]["pending"] == alembic_apply_order(project, urls["db-empty"])
    assert reports["db-dead"]["state"] == "unreachable"
    assert "unable to open database file" in reports["db-dead"]["error"]


@pytest.mark.parametrize(
    ("shape", "at"),
    [("linear", "a1"), ("merged", "c3"), ("merged", "d4"), ("depends", "a1"), ("labels", "b2")],
)
def test_status_pending_is_in_alembic_apply_order(
    cli_json: Callable[..., Any],
    make_project: Callable[..., Any],
    register: Callable[..., dict[str, str]],
    alembic_apply_order: Callable[..., list[str]],
    shape: str,
    at: str,
) -> None:
    project = make_project(shape)
    urls = register(project, {"db": ("dev", at)})
    (report,) = cli_json("status")
    expected = alembic_apply_order(project, urls["db"])
    assert len(expected) > 1
    assert report["state"] == "behind"
    assert report["pending"] == expected


def test_status_filters_by_project_and_environment(
    cli_json: Callable[..., Any],
    make_project: Callable[..., Any],
    register: Callable[..., dict[str, str]],
) -> None:
    register(make_project("linear"), {"l-dev": ("dev", "a1"), "l-prod": ("prod", "a1")})
    register(make_project("merged"), {"m-dev": ("dev", "a1")})
    assert [r["target"] for r in cli_json("status", "--project", "linear")] == ["l-dev", "l-prod"]
    assert [r["target"] for r in cli_json("status", "--env", "dev")] == ["l-dev", "m-dev"]
    assert cli_json("status", "--project", "merged", "--env", "prod") == []


def test_status_text_lists_each_target(cli: Callable[..., Result], fleet: Any) -> None:
    lines = cli("status").stdout.splitlines()
    assert len(lines) == 4
    by_target = {line.split()[2]: line.split() for line in lines}
    assert by_target["db-a1"][:5] == ["two_heads", "staging", "db-a1", "behind", "a1"]
    assert "3 pending" in " ".join(by_target["db-a1"])
    assert by_target["db-head"][3] == "up_to_date"


def test_status_with_nothing_registered(
    cli: Callable[..., Result], cli_json: Callable[..., Any]
) -> None:
    assert cli("status").stdout == "no targets\n"
    assert cli_json("status") == []


def test_current(cli: Callable[..., Result], cli_json: Callable[..., Any], fleet: Any) -> None:
    data = {r["target"]: r for r in cli_json("current")}
    assert sorted(data["db-head"]["current"]) == ["c3", "d4"]
    assert data["db-a1"] == {"target": "db-a1", "current": ["a1"], "error": None}
    assert data["db-dead"]["current"] == []
    assert data["db-dead"]["error"]
    text = cli("current", "--env", "staging").stdout
    assert text == "db-a1: a1\n"
    head_line = cli("current", "--env", "dev").stdout
    assert "c3 (head)" in head_line
    assert "d4 (head)" in head_line


@pytest.mark.parametrize("shape", ["linear", "two_heads", "merged", "labels", "depends"])
def test_heads_match_alembic(
    cli_json: Callable[..., Any],
    make_project: Callable[..., Any],
    register: Callable[..., dict[str, str]],
    alembic_script: Callable[[Path], ScriptDirectory],
    shape: str,
) -> None:
    project = make_project(shape)
    register(project)
    data = cli_json("heads", shape)
    assert sorted(h["revision"] for h in data) == sorted(
        alembic_script(project.location).get_heads()
    )
    assert all(h["is_head"] for h in data)


@pytest.mark.parametrize("shape", ["linear", "two_heads", "merged", "labels", "depends"])
def test_history_matches_alembic_order_and_fields(
    cli_json: Callable[..., Any],
    make_project: Callable[..., Any],
    register: Callable[..., dict[str, str]],
    alembic_history: Callable[[Path], list[str]],
    alembic_script: Callable[[Path], ScriptDirectory],
    shape: str,
) -> None:
    project = make_project(shape)
    register(project)
    expected = alembic_history(project.location)
    full = cli_json("history", shape)
    assert [item["revision"] for item in full] == expected
    script = alembic_script(project.location)
    for item in full:
        assert set(item) == HISTORY_FIELDS
        rev = script.get_revision(item["revision"])
        assert item["down_revisions"] == list(rev._versioned_down_revisions)
        assert item["message"] == rev.doc
        assert set(item["branch_labels"]) == set(rev._orig_branch_labels)
        assert (item["is_head"], item["is_branch_point"], item["is_merge"]) == (
            rev.is_head,
            rev.is_branch_point,
            rev.is_merge_point,
        )
    newest_two = cli_json("history", shape, "-n", "2")
    assert newest_two == full[:2]


def test_history_reports_depends_on(
    cli_json: Callable[..., Any],
    make_project: Callable[..., Any],
    register: Callable[..., dict[str, str]],
) -> None:
    project = make_project("depends")
    register(project)
    items = {i["revision"]: i for i in cli_json("history", "depends")}
    spec = {s.revision: s for s in project.revisions}
    for revision, item in items.items():
        assert item["depends_on"] == list(spec[revision].depends_on)


def test_history_text_reads_like_alembic(
    cli: Callable[..., Result],
    make_project: Callable[..., Any],
    register: Callable[..., dict[str, str]],
) -> None:
    register(make_project("merged"))
    lines = cli("history", "merged", "-n", "3").stdout.splitlines()
    assert lines[0] == "e5 -> f6 (head), after the merge"
    assert lines[1] == "c3, d4 -> e5 (mergepoint), merge left and right"
    assert len(lines) == 3


def test_show(
    cli: Callable[..., Result],
    cli_json: Callable[..., Any],
    make_project: Callable[..., Any],
    register: Callable[..., dict[str, str]],
    alembic_script: Callable[[Path], ScriptDirectory],
) -> None:
    project = make_project("merged")
    register(project)
    script = alembic_script(project.location).get_revision("e5")
    data = cli_json("show", "merged", "e5")
    assert data["revision"] == "e5"
    assert data["down_revisions"] == ["c3", "d4"]
    assert data["children"] == ["f6"]
    assert data["is_merge"] is True
    assert data["doc"] == script.longdoc
    assert Path(data["path"]) == Path(script.path)
    assert data["source"] == Path(script.path).read_text()
    text = cli("show", "merged", "e5").stdout
    assert text.startswith("Rev: e5\nParent: c3, d4\n")
    assert script.path in text


def test_show_accepts_symbols_alembic_accepts(
    cli_json: Callable[..., Any],
    make_project: Callable[..., Any],
    register: Callable[..., dict[str, str]],
) -> None:
    register(make_project("labels"))
    assert cli_json("show", "labels", "audit@head")["revision"] == "x2"
    assert cli_json("show", "labels", "orders")["revision"] == "b2"


def test_graph_formats(
    cli: Callable[..., Result],
    make_project: Callable[..., Any],
    register: Callable[..., dict[str, str]],
    alembic_script: Callable[[Path], ScriptDirectory],
) -> None:
    project = make_project("merged")
    register(project)
    dot = cli("graph", "merged", "--format", "dot").stdout
    assert dot.startswith("digraph revisions {")
    assert '"c3" -> "e5"' in dot or "c3 -> e5" in dot
    svg = cli("graph", "merged", "--format", "svg").stdout
    assert svg.startswith("<svg")
    assert "after the merge" in svg
    data = json.loads(cli("graph", "merged", "--format", "json").stdout)
    script = alembic_script(project.location)
    assert data["heads"] == list(script.get_heads())
    assert {r["revision"] for r in data["revisions"]} == {s.revision for s in project.revisions}
    assert data["merge_points"] == ["e5"]
    assert data["branch_points"] == ["b2"]
    assert cli("graph", "merged").stdout == dot  # dot is the default


def test_graph_folds_long_runs_unless_all(
    cli: Callable[..., Result],
    make_project: Callable[..., Any],
    register: Callable[..., dict[str, str]],
) -> None:
    specs = [
        RevisionSpec(f"r{i:02d}", f"r{i - 1:02d}" if i else None, f"step {i}") for i in range(12)
    ]
    register(make_project(specs, name="long"))
    folded = cli("graph", "long").stdout
    everything = cli("graph", "long", "--all").stdout
    assert "10 revisions" in folded
    assert all(f'"r{i:02d}"' in everything or f"r{i:02d} [" in everything for i in range(12))
    assert "revisions …" not in everything


@pytest.fixture
def broken(make_project: Callable[..., Any], register: Callable[..., dict[str, str]]) -> Path:
    project = make_project("linear", name="broken")
    bad = next((project.location / "versions").glob("b2_*.py"))
    bad.write_text(bad.read_text().replace("down_revision = 'a1'", "down_revision = 'zz'"))
    register(project)
    return bad


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["heads", "nope"], "no project named 'nope'"),
        (["history", "nope"], "no project named 'nope'"),
        (["show", "nope", "a1"], "no project named 'nope'"),
        (["graph", "nope"], "no project named 'nope'"),
        (["show", "linear", "zz99"], "Unknown revision 'zz99'"),
        (["show", "two_heads", "head"], "2 heads"),
        (["show", "broken", "a1"], "cannot be loaded"),
        (["heads", "broken"], "cannot be loaded"),
        (["history", "broken", "--json"], "cannot be loaded"),
        (["graph", "broken", "--format", "svg"], "cannot be loaded"),
    ],
)
def test_errors_are_a_clean_message_and_non_zero_exit(
    cli: Callable[..., Result],
    make_project: Callable[..., Any],
    register: Callable[..., dict[str, str]],
    broken: Path,
    args: list[str],
    message: str,
) -> None:
    register(make_project("linear"))
    register(make_project("two_heads"))
    result = cli(*args, ok=False)
    assert result.exit_code == 1
    assert message in result.output
    assert "hint:" in result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""  # the message goes to stderr; nothing half-printed


def test_broken_project_error_names_the_file(cli: Callable[..., Result], broken: Path) -> None:
    result = cli("heads", "broken", ok=False)
    assert result.exit_code == 1
    assert broken.name in result.output


def test_status_of_a_broken_project_keeps_going(
    cli_json: Callable[..., Any],
    broken: Path,
    make_project: Callable[..., Any],
    register: Callable[..., dict[str, str]],
    make_target: Callable[..., str],
    db_session: Any,
) -> None:
    register(make_project("merged"), {"fine": ("dev", "heads")})
    registry.add_target(
        db_session,
        "lost",
        project="broken",
        environment="dev",
        url=make_target(make_project("linear"), at="a1"),
    )
    db_session.commit()
    reports = {r["target"]: r for r in cli_json("status")}
    assert reports["fine"]["state"] == "up_to_date"
    assert reports["lost"]["state"] == "broken_project"
    assert broken.name in reports["lost"]["error"]
