"""``migdash compare`` and ``migdash env add/edit --promotion-rule``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory
from flask import Flask

from migdash.services import services_of
from migdash.store import registry


def alembic_upgrade(script: ScriptDirectory, destination: str, current: str) -> list[str]:
    """What ``alembic upgrade <destination>`` applies from *current* (Alembic's own planner)."""
    steps = script._upgrade_revs(destination, (current,))  # type: ignore[arg-type]  # noqa: SLF001
    return [step.revision.revision for step in steps]


def test_compare_lists_what_each_environment_lacks_in_alembic_order(
    make_project: Callable[..., Any],
    register: Callable[..., dict[str, str]],
    cli: Callable[..., Any],
    cli_json: Callable[..., Any],
    alembic_script: Callable[[Path], ScriptDirectory],
) -> None:
    project = make_project("merged")
    register(project, {"staging-1": ("staging", "c3"), "prod-1": ("prod", "d4")})
    script = alembic_script(project.location)

    data = cli_json("compare", "merged", "staging", "prod")
    text = cli("compare", "merged", "staging", "prod").output

    assert [r["revision"] for r in data["b_lacks"]] == alembic_upgrade(script, "c3", "d4")
    assert [r["revision"] for r in data["a_lacks"]] == alembic_upgrade(script, "d4", "c3")
    assert data["b_lacks"][0]["message"] == "left branch"
    assert data["b_lacks"][0]["lacked_by"] == ["prod-1"]
    assert (data["a"]["name"], data["a"]["revisions"], data["same"]) == ("staging", ["c3"], False)
    assert "prod lacks 1 revision(s) of staging, in apply order:" in text
    assert "c3  left branch  (lacked by prod-1)" in text
    assert "staging lacks 1 revision(s) of prod" in text


def test_compare_two_targets(
    make_project: Callable[..., Any],
    register: Callable[..., dict[str, str]],
    cli_json: Callable[..., Any],
    alembic_script: Callable[[Path], ScriptDirectory],
) -> None:
    project = make_project("merged")
    register(project, {"old": ("dev", "b2"), "new": ("dev", "f6")})

    data = cli_json("compare", "merged", "old", "new", "--targets")

    expected = alembic_upgrade(alembic_script(project.location), "f6", "b2")
    assert [r["revision"] for r in data["a_lacks"]] == expected
    assert data["b_lacks"] == []
    assert data["a"]["kind"] == "target"


def test_compare_refuses_unknown_names_and_wrong_usage(
    make_project: Callable[..., Any],
    register: Callable[..., dict[str, str]],
    cli: Callable[..., Any],
) -> None:
    project = make_project("linear")
    register(project, {"dev-1": ("dev", "a1")})

    unknown = cli("compare", "linear", "dev", "nope", ok=False)
    empty = cli("compare", "linear", "dev", "dev-1", ok=False)
    usage = cli("compare", "linear", "dev", ok=False)

    assert unknown.exit_code == 1
    assert "no environment named 'nope'" in unknown.output
    assert empty.exit_code == 1
    assert usage.exit_code == 2
    assert "Traceback" not in unknown.output + empty.output + usage.output


def test_env_promotion_rule_is_set_shown_and_checked(
    app: Flask, cli: Callable[..., Any], cli_json: Callable[..., Any]
) -> None:
    added = cli_json("env", "add", "prod", "--promotion-rule", "refuse")
    cli_json("env", "add", "dev")
    bad = cli("env", "add", "qa", "--promotion-rule", "sometimes", ok=False)

    assert added["promotion_rule"] == "refuse"
    assert {e["environment"]: e["promotion_rule"] for e in cli_json("env", "list")} == {
        "prod": "refuse",
        "dev": "warn",
    }
    assert bad.exit_code == 2
    cli("env", "edit", "prod", "--promotion-rule", "warn")
    with services_of(app).sessions() as session:
        assert registry.get_environment(session, "prod").promotion_rule == "warn"


def test_promote_shows_the_plan_then_requests_one_job_per_target_that_lacks(
    app: Flask,
    make_project: Callable[..., Any],
    register: Callable[..., dict[str, str]],
    cli: Callable[..., Any],
    cli_json: Callable[..., Any],
    alembic_script: Callable[[Path], ScriptDirectory],
) -> None:
    project = make_project("merged")
    register(
        project,
        {"staging-1": ("staging", "c3"), "prod-1": ("prod", "d4"), "prod-2": ("prod", "c3")},
    )
    script = alembic_script(project.location)

    plan = cli_json("promote", "merged", "staging", "prod", "--plan")
    text = cli("promote", "merged", "staging", "prod", "--plan").output
    by_target = {t["target"]: t for t in plan["targets"]}

    assert by_target["prod-1"]["lacks"] == alembic_upgrade(script, "c3", "d4")
    assert by_target["prod-1"]["destination"] is not None
    assert by_target["prod-2"]["destination"] is None
    assert f"fingerprint: {plan['fingerprint']}" in text
    stale = cli("promote", "merged", "staging", "prod", "--fingerprint", "0" * 64, ok=False)
    assert stale.exit_code == 1
    assert "Traceback" not in stale.output
    assert "changed" in stale.output
    assert cli_json("jobs") == [], "a stale fingerprint requests nothing"

    jobs = cli_json("promote", "merged", "staging", "prod", "--fingerprint", plan["fingerprint"])

    assert [(j["target"], j["kind"], j["state"]) for j in jobs] == [("prod-1", "upgrade", "queued")]
    again = cli("promote", "merged", "staging", "prod", ok=False)
    assert again.exit_code == 1
    assert "already pending" in again.output
