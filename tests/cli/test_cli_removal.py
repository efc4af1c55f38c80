"""``migdash project|env|target remove``: the summary, a question, and ``--yes`` to skip it.

Jobs are requested with ``migdash upgrade`` (the prod one waits for
approval); a running job is made as the worker makes one (lease, then
claim).  What changed is read back from the metadata database.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from flask import Flask

from migdash.cli.removal import confirm_removal
from migdash.errors import Forbidden
from migdash.jobs.locks import acquire_lease
from migdash.jobs.records import move_job
from migdash.services import services_of
from migdash.store.models import (
    AuditEvent,
    Environment,
    Job,
    JobState,
    Project,
    Role,
    Target,
    utcnow,
)


@pytest.fixture
def shop(
    cli: Callable[..., Result],
    cli_json: Callable[..., Any],
    make_project: Callable[..., Any],
    register: Callable[..., dict[str, str]],
) -> dict[str, int]:
    """Project shop: shop-dev (a queued upgrade) and shop-prod (an upgrade awaiting approval)."""
    cli("env", "add", "dev")
    cli("env", "add", "prod", "--protected")
    register(
        make_project("linear", name="shop"),
        {"shop-dev": ("dev", "a1"), "shop-prod": ("prod", "a1")},
    )
    held = cli_json("upgrade", "shop-prod", "heads")
    queued = cli_json("upgrade", "shop-dev", "heads")
    assert (held["state"], queued["state"]) == ("awaiting_approval", "queued")
    return {"held": held["id"], "queued": queued["id"]}


def snapshot(app: Flask) -> dict[str, Any]:
    with services_of(app).sessions() as session:
        return {
            "projects": sorted(session.scalars(sa.select(Project.name))),
            "targets": sorted(session.scalars(sa.select(Target.name))),
            "jobs": sorted((j.id, j.state) for j in session.scalars(sa.select(Job))),
            "audit": session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)),
        }


def claim_as_worker(app: Flask, job_id: int) -> None:
    with services_of(app).sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert job.target_id is not None
        now = utcnow()
        assert (
            acquire_lease(session, job.target_id, job_id, "w1", now, timedelta(minutes=5)) is None
        )
        assert move_job(session, job_id, JobState.QUEUED, JobState.RUNNING, started_at=now)
        session.commit()


def test_answering_no_changes_nothing(
    app: Flask, cli: Callable[..., Result], shop: dict[str, int]
) -> None:
    before = snapshot(app)

    result = cli("project", "remove", "shop", input="n\n", ok=False)

    assert result.exit_code == 1
    assert "  target shop-prod (shop, prod)" in result.output
    assert f"  job {shop['held']} awaiting_approval: upgrade shop-prod to heads" in result.output
    assert (
        f"Job {shop['queued']} (upgrade shop-dev to heads, queued) is cancelled." in result.output
    )
    assert "Remove project shop? [y/N]: n" in result.output
    assert "Aborted" in result.output
    assert snapshot(app) == before


def test_no_answer_at_all_changes_nothing(
    app: Flask, cli: Callable[..., Result], shop: dict[str, int]
) -> None:
    """A script without ``--yes`` and without a terminal is not a confirmation."""
    before = snapshot(app)
    assert cli("target", "remove", "shop-prod", input="", ok=False).exit_code == 1
    assert snapshot(app) == before


def test_answering_yes_removes_and_cancels_the_pending_jobs(
    app: Flask, cli: Callable[..., Result], cli_json: Callable[..., Any], shop: dict[str, int]
) -> None:
    result = cli("project", "remove", "shop", input="y\n")

    ids = sorted(shop.values())
    assert result.output.splitlines()[-1] == (
        f"removed project shop; cancelled job(s) {', '.join(map(str, ids))}"
    )
    assert cli_json("jobs", "--state", "awaiting_approval") == []
    assert {cli_json("job", str(i))["state"] for i in ids} == {"cancelled"}
    with services_of(app).sessions() as session:
        cancels = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "job.cancel"))
        assert sorted((e.job_id, e.actor, e.detail["reason"]) for e in cancels) == [
            (i, "cli", "project shop removed by cli") for i in ids
        ]
    assert cli_json("project", "list") == []


def test_yes_skips_the_question(
    app: Flask, cli: Callable[..., Result], cli_json: Callable[..., Any], shop: dict[str, int]
) -> None:
    result = cli("target", "remove", "shop-prod", "--yes")

    assert "[y/N]" not in result.output
    assert f"removed target shop-prod; cancelled job(s) {shop['held']}" in result.output
    assert cli_json("job", str(shop["held"]))["state"] == "cancelled"
    assert cli_json("job", str(shop["queued"]))["state"] == "queued"
    assert [t["target"] for t in cli_json("target", "list")] == ["shop-dev"]


def test_a_running_job_refuses_even_with_yes(
    app: Flask, cli: Callable[..., Result], shop: dict[str, int]
) -> None:
    claim_as_worker(app, shop["queued"])
    before = snapshot(app)

    for args in (("project", "remove", "shop", "--yes"), ("target", "remove", "shop-dev")):
        result = cli(*args, ok=False)
        assert result.exit_code == 1
        assert f"job {shop['queued']} (upgrade shop-dev to heads) is running" in result.output
        assert "hint: Wait for the running job to end" in result.output
        assert "[y/N]" not in result.output
    assert snapshot(app) == before


def test_env_remove_keeps_the_rule_about_targets(
    app: Flask, cli: Callable[..., Result], shop: dict[str, int]
) -> None:
    before = snapshot(app)
    refused = cli("env", "remove", "prod", "--yes", ok=False)
    assert refused.exit_code == 1
    assert "environment 'prod' still holds 1 target(s)" in refused.output
    assert "Move or remove its targets first." in refused.output
    assert snapshot(app) == before

    cli("env", "add", "scratch")
    assert "removed environment scratch" in cli("env", "remove", "scratch", input="y\n").output
    with services_of(app).sessions() as session:
        assert [e.name for e in session.scalars(sa.select(Environment))] == ["dev", "prod"]


def test_a_role_that_may_not_remove_is_refused_before_the_question(
    app: Flask, shop: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    """For when commands act as a named user (``--as``): nothing is shown or asked of them."""
    before = snapshot(app)
    with services_of(app).sessions() as session, pytest.raises(Forbidden, match="admin role"):
        confirm_removal(session, "project", "shop", yes=True, actor="amir", role=Role.APPROVER)
    assert capsys.readouterr().out == ""
    assert snapshot(app) == before
