"""Rollout windows where people set and see them: admin form, CLI, job, job list, approval page."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from migdash.store.models import JobState, Role, utcnow
from migdash.store.users import create_user
from tests.jobs.test_lifecycle_machine import PASSWORD, JobLifecycle, Template
from tests.jobs.test_lifecycle_machine import template as template  # noqa: F401 - the fixture
from tests.jobs.test_scheduled_jobs import set_windows, window_ahead


@pytest.fixture
def world(template: Template, tmp_path: Path) -> Iterator[JobLifecycle]:  # noqa: F811
    made = JobLifecycle(template, tmp_path)
    with made.services.sessions() as session:
        create_user(session, "ada", PASSWORD, Role.ADMIN)
        session.commit()
    yield made
    made.teardown()


def environment_row(world: JobLifecycle) -> dict[str, object]:
    result = world.cli("env", "list", "--json")
    assert result.exit_code == 0, result.output
    return next(e for e in json.loads(result.output) if e["environment"] == "prod")


def test_the_admin_form_saves_canonical_windows_and_refuses_garbage(world: JobLifecycle) -> None:
    admin = world.web("ada")
    data = {"name": "prod", "position": "1", "protected": "y", "required_approvals": "1"}
    bad = admin.post(
        "/admin/environments/prod/edit", data={**data, "windows": "Mon-Fri 22:00-02:00; Sat 9-17"}
    )
    assert bad.status_code == 400
    page = bad.get_data(as_text=True)
    assert "window 2" in page
    assert "&#39;9-17&#39;" in page or "'9-17'" in page
    assert environment_row(world)["windows"] == ""
    good = admin.post(
        "/admin/environments/prod/edit",
        data={**data, "windows": "mon-fri 22:00-02:00; sat,sun 00:00-24:00 Europe/Paris"},
    )
    assert good.status_code == 302
    canonical = "Mon-Fri 22:00-02:00 UTC; Sat,Sun 00:00-24:00 Europe/Paris"
    assert environment_row(world)["windows"] == canonical
    assert canonical in admin.get("/admin/").get_data(as_text=True)


def test_the_cli_sets_and_lists_windows(world: JobLifecycle) -> None:
    result = world.cli("env", "edit", "prod", "--windows", "Sat,Sun 00:00-24:00")
    assert result.exit_code == 0, result.output
    assert environment_row(world)["windows"] == "Sat,Sun 00:00-24:00 UTC"
    listed = world.cli("env", "list")
    assert "windows: Sat,Sun 00:00-24:00 UTC" in listed.output
    refused = world.cli("env", "edit", "prod", "--windows", "Caturday 10:00-11:00")
    assert refused.exit_code != 0
    assert "'Caturday' is not a day" in refused.output
    added = world.cli("env", "add", "night", "--windows", "Mon-Fri 22:00-02:00", "--json")
    assert json.loads(added.output)["windows"] == "Mon-Fri 22:00-02:00 UTC"
    cleared = world.cli("env", "edit", "prod", "--windows", "")
    assert cleared.exit_code == 0, cleared.output
    assert environment_row(world)["windows"] == ""


def test_pages_show_when_a_scheduled_job_starts(world: JobLifecycle) -> None:
    text, opening = window_ahead(4)
    set_windows(world, text)
    world.set_protection(True, 1)
    world.request("web", "olga", "prod-1", ("upgrade", "heads"))
    (job,) = world.jobs()
    review = world.web("amir").get(f"/approvals/{job.id}").get_data(as_text=True)
    assert text in review
    assert f"waits as scheduled until {opening:%Y-%m-%d %H:%M} UTC" in review
    world.approve(0, "amir", "current", "web")
    (job,) = world.jobs()
    assert job.state == JobState.SCHEDULED
    starts = f"scheduled: starts at {opening:%Y-%m-%d %H:%M} UTC (window {text})"
    assert starts in world.web("olga").get(f"/jobs/{job.id}").get_data(as_text=True)
    assert starts in world.web("olga").get("/jobs/").get_data(as_text=True)
    api = world.api("olga", "GET", f"/jobs/{job.id}").get_json()
    assert api["state"] == "scheduled"
    assert api["scheduled_for"] == f"{opening.isoformat()}Z"
    assert api["not_before"] is None


def test_not_before_from_the_plan_form_and_the_cli(world: JobLifecycle) -> None:
    world.set_protection(False, 1)
    start = (utcnow() + timedelta(days=1)).replace(second=0, microsecond=0)
    response = world.web("olga").post(
        "/actions/targets/prod-1",
        data={"action": "upgrade", "revision": "heads", "not_before": f"{start:%Y-%m-%dT%H:%M}"},
    )
    assert response.status_code == 302
    result = world.cli(
        "upgrade", "prod-2", "heads", "--not-before", f"{start.isoformat()}+01:00", "--json"
    )
    assert result.exit_code == 0, result.output
    from_cli = json.loads(result.output)
    assert from_cli["state"] == "scheduled"
    assert from_cli["not_before"] == f"{(start - timedelta(hours=1)).isoformat()}Z"
    web_job = world.jobs()[0]
    assert (web_job.state, web_job.not_before, web_job.scheduled_for) == (
        JobState.SCHEDULED,
        start,
        start,
    )
    bad = world.cli("upgrade", "prod-1", "heads", "--not-before", "tomorrow")
    assert bad.exit_code != 0
    assert "is not a date and time" in bad.output
    far = world.api(
        "olga",
        "POST",
        "/jobs",
        {
            "target": "prod-1",
            "action": "upgrade",
            "revision": "heads",
            "not_before": "2999-01-01T00:00:00Z",
        },
    )
    assert far.status_code == 400
    assert far.get_json()["error"]["field"] == "not_before"
