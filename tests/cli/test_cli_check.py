"""``migdash check``: the CI gate.  Per condition one registry that passes and one that fails.

Each failing registry holds its condition and nothing else, so the same
registry passes with ``--fail-on`` every *other* condition: the conditions
are judged independently.  Exit codes are the gate's contract (0 pass, 1 a
condition holds, 2 the gate could not judge), asserted with the JSON.  The
last tests run the gate against a real HTTP server (werkzeug on a free port,
asked over the network by ``--server``) and expect the local verdict.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskCliRunner
from werkzeug.serving import make_server

from migdash.cli import main
from migdash.cli.check import CONDITIONS
from migdash.scaffold import migrate_database
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import Role, utcnow
from migdash.store.tokens import create_token
from migdash.store.users import create_user, get_user
from tests.jobs.test_drift_models import models_project

DEAD_URL = "postgresql+psycopg://u:secret@127.0.0.1:1/nothing"
"""A database nobody answers for (connection refused at once)."""


@pytest.fixture
def build(
    app: Flask,
    tmp_path: Path,
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    runner: FlaskCliRunner,
) -> Callable[[str], str]:
    """Build one named registry in the app; returns the project to pass to --project."""

    def add(project: str, location: Path, target: str, url: str) -> None:
        with services_of(app).sessions() as session:
            registry.add_project(session, project, str(location))
            registry.add_target(session, target, project=project, environment="dev", url=url)
            session.commit()

    def factory(kind: str) -> str:
        if kind in ("clean", "behind", "stranger", "dead"):
            linear = make_project("linear", name="shop")
            if kind == "stranger":  # a database at d4, a revision only two_heads has
                url = make_target(make_project("two_heads", name="other"), at="d4", name=kind)
            elif kind == "dead":
                url = DEAD_URL
            else:
                url = make_target(linear, at="heads" if kind == "clean" else "a1", name=kind)
            add("shop", linear.location, f"shop-{kind}", url)
            return "shop"
        if kind == "forked":
            forked = make_project("two_heads", name="forked")
            add("forked", forked.location, "forked-db", make_target(forked, name="forked"))
            return "forked"
        # "calm": the models match the revisions; "drifted": they add a column no revision has
        location = models_project(tmp_path / kind, **({"columns": ""} if kind == "calm" else {}))
        url = f"sqlite:///{tmp_path / f'{kind}.db'}"
        migrate_database(location, url, "heads")
        add(kind, location, f"{kind}-db", url)
        result = runner.invoke(main, ["drift", "--project", kind])  # records the check
        assert result.exit_code == (1 if kind == "drifted" else 0), result.output
        return kind

    return factory


def gate(runner: FlaskCliRunner, *args: str) -> tuple[int, dict[str, Any] | None, Result]:
    result = runner.invoke(main, ["check", *args, "--json"])
    try:
        data = json.loads(result.stdout)
    except ValueError:
        data = None
    return result.exit_code, data, result


FAILING = {
    "pending": "behind",
    "unknown": "stranger",
    "drift": "drifted",
    "multiple-heads": "forked",
    "unreachable": "dead",
}
PASSING = {
    "pending": "clean",
    "unknown": "behind",
    "drift": "calm",
    "multiple-heads": "clean",
    "unreachable": "behind",
}
"""A near miss for each condition: e.g. a target behind is reachable and at known revisions."""


@pytest.mark.parametrize("condition", CONDITIONS)
def test_a_registry_where_the_condition_holds_fails_with_1(
    runner: FlaskCliRunner, build: Callable[[str], str], condition: str
) -> None:
    project = build(FAILING[condition])
    code, data, result = gate(runner, "--fail-on", condition)
    assert code == 1, result.output
    assert data is not None
    assert data["passed"] is False
    assert data["fail_on"] == [condition]
    assert data["problems"] == []
    assert {f["condition"] for f in data["failures"]} == {condition}
    assert {f["project"] for f in data["failures"]} == {project}
    text = runner.invoke(main, ["check", "--fail-on", condition])
    assert text.exit_code == 1
    assert f"FAIL  {condition}" in text.stdout
    assert f"migdash check: failed: {condition}" in text.stdout
    others = [c for c in CONDITIONS if c != condition]
    code, data, result = gate(runner, "--fail-on", ",".join(others))
    assert (code, data and data["passed"]) == (0, True), result.output


@pytest.mark.parametrize("condition", CONDITIONS)
def test_a_registry_near_the_condition_passes_with_0(
    runner: FlaskCliRunner, build: Callable[[str], str], condition: str
) -> None:
    build(PASSING[condition])
    code, data, result = gate(runner, "--fail-on", condition)
    assert code == 0, result.output
    assert data is not None
    assert (data["passed"], data["failures"], data["problems"]) == (True, [], [])
    assert data["facts"]["targets"], "the gate judged no target"
    text = runner.invoke(main, ["check", "--fail-on", condition])
    assert (text.exit_code, text.stdout.splitlines()[-1].split(":")[1].strip()) == (0, "passed")


def test_without_fail_on_every_condition_counts(
    runner: FlaskCliRunner, build: Callable[[str], str]
) -> None:
    build("behind")
    code, data, _ = gate(runner)
    assert code == 1
    assert data is not None
    assert data["fail_on"] == list(CONDITIONS)
    assert [f["target"] for f in data["failures"]] == ["shop-behind"]
    assert "b2, c3" in data["failures"][0]["message"]


def test_project_and_env_narrow_the_gate(
    runner: FlaskCliRunner, build: Callable[[str], str]
) -> None:
    build("behind")
    build("forked")
    assert gate(runner, "--project", "forked", "--fail-on", "pending")[0] == 0
    assert gate(runner, "--project", "shop", "--fail-on", "multiple-heads")[0] == 0
    code, data, _ = gate(runner, "--env", "dev")
    assert code == 1
    assert data is not None
    assert {f["condition"] for f in data["failures"]} == {"pending", "multiple-heads"}


@pytest.mark.parametrize(
    "args",
    [
        ["--fail-on", "nope"],
        ["--fail-on", "drift,sometimes"],
        ["--token", "t"],
        ["--server", "http://127.0.0.1:1"],
        ["--server", "ftp://example.invalid", "--token", "t"],
        ["--project", "nope"],
        ["--env", "nope"],
    ],
    ids=lambda a: " ".join(a),
)
def test_what_cannot_be_judged_exits_2(
    runner: FlaskCliRunner, build: Callable[[str], str], args: list[str]
) -> None:
    build("clean")
    result = runner.invoke(main, ["check", *args])
    assert result.exit_code == 2, result.output


def test_a_token_in_the_environment_does_not_stop_a_local_check(
    runner: FlaskCliRunner, build: Callable[[str], str]
) -> None:
    build("clean")
    result = runner.invoke(main, ["check"], env={"MIGDASH_TOKEN": "from-the-ci-secrets"})
    assert result.exit_code == 0, result.output


def test_a_project_that_cannot_be_loaded_exits_2(
    app: Flask, runner: FlaskCliRunner, build: Callable[[str], str], tmp_path: Path
) -> None:
    build("clean")
    with services_of(app).sessions() as session:
        registry.get_project(session, "shop").script_location = str(tmp_path / "gone")
        session.commit()
    code, data, result = gate(runner, "--fail-on", "pending")
    assert code == 2, result.output
    assert data is not None
    assert data["problems"]
    assert "shop" in data["problems"][0]


# --- against a live server ---------------------------------------------------------------------


@pytest.fixture
def server(app: Flask) -> Iterator[str]:
    """The app served by werkzeug on a free port, in a thread; its base URL."""
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}"
    http.shutdown()
    thread.join(10)


@pytest.fixture
def viewer_token(app: Flask) -> str:
    with services_of(app).sessions() as session:
        create_user(session, "ci", "ci-password-long", Role.VIEWER)
        token, _ = create_token(session, get_user(session, "ci"), "pipeline", utcnow())
        session.commit()
    return token


def test_against_a_live_server_the_verdict_is_the_local_one(
    runner: FlaskCliRunner, build: Callable[[str], str], server: str, viewer_token: str
) -> None:
    build("behind")
    build("forked")
    local = gate(runner, "--fail-on", "pending,multiple-heads,unreachable")
    remote = gate(
        runner,
        "--server",
        server,
        "--token",
        viewer_token,
        "--fail-on",
        "pending,multiple-heads,unreachable",
    )
    assert local[0] == remote[0] == 1
    assert local[1] is not None
    assert remote[1] is not None
    assert remote[1]["failures"] == local[1]["failures"]
    assert {f["condition"] for f in remote[1]["failures"]} == {"pending", "multiple-heads"}
    code, data, _ = gate(
        runner,
        "--server",
        server,
        "--token",
        viewer_token,
        "--project",
        "forked",
        "--fail-on",
        "pending",
    )
    assert (code, data and data["passed"]) == (0, True)


def test_against_a_live_server_refusals_exit_2(
    runner: FlaskCliRunner, build: Callable[[str], str], server: str, viewer_token: str
) -> None:
    build("clean")
    wrong = runner.invoke(main, ["check", "--server", server, "--token", "mdt_wrong"])
    assert wrong.exit_code == 2
    assert "unauthorized" in wrong.output
    unknown = runner.invoke(
        main, ["check", "--server", server, "--token", viewer_token, "--project", "nope"]
    )
    assert unknown.exit_code == 2
    assert "no project named 'nope'" in unknown.output
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    nobody = runner.invoke(
        main, ["check", "--server", f"http://127.0.0.1:{free}", "--token", viewer_token]
    )
    assert nobody.exit_code == 2
    assert "cannot be asked" in nobody.output
