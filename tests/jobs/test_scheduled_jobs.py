"""Rollout windows and not_before, end to end: real SQLite targets, real child processes.

The lifecycle test's world (a protected prod, SQLite targets at a1, people
and tokens); the worker and the reaper get an injected clock, so a window is
entered by moving that clock, never by sleeping.  Requests and approvals go
through the API at the real time, which is outside the window each test sets.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from migdash.jobs.worker import Worker, WorkerSettings
from migdash.store import registry
from migdash.store.models import Job, JobState, utcnow
from migdash.windows import DAYS
from tests.jobs.test_lifecycle_machine import JobLifecycle, Template, _versions
from tests.jobs.test_lifecycle_machine import template as template  # noqa: F401 - the fixture


class Clock:
    """The worker's idea of now; tests move it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def world(template: Template, tmp_path: Path) -> Iterator[JobLifecycle]:  # noqa: F811
    made = JobLifecycle(template, tmp_path)
    yield made
    made.teardown()


@pytest.fixture
def clock(world: JobLifecycle) -> Clock:
    """Starts at the real now; the world's worker and reaper read it."""
    at = Clock(utcnow())
    world.worker = Worker(world.services.jobs, WorkerSettings(clock=at), name="clocked")
    world.services.queue.handler = world.worker.execute
    return at


def window_ahead(hours: int) -> tuple[str, datetime]:
    """A one-hour window starting *hours* from the real now, and its opening (naive UTC)."""
    opening = (utcnow() + timedelta(hours=hours)).replace(second=0, microsecond=0)
    closing = opening + timedelta(hours=1)
    text = f"{DAYS[opening.weekday()]} {opening:%H:%M}-{closing:%H:%M} UTC"
    return text, opening


def set_windows(world: JobLifecycle, text: str) -> None:
    with world.services.sessions() as session:
        env = registry.get_environment(session, "prod")
        registry.edit_environment(session, env, windows=text, actor="admin")
        session.commit()


def reaper_pass(world: JobLifecycle, clock: Clock) -> int:
    reaper = Worker(
        world.services.jobs, WorkerSettings(requeue_after=0.0, clock=clock), name="reaper"
    )
    reaper.reap()
    return reaper.requeue_stale()


def job(world: JobLifecycle, job_id: int) -> Job:
    return next(j for j in world.jobs() if j.id == job_id)


def prod(world: JobLifecycle, name: str = "prod-1") -> list[str]:
    return _versions(f"sqlite:///{world.root / 'dbs' / name}.db")


def approved_outside_window(world: JobLifecycle) -> tuple[int, datetime]:
    text, opening = window_ahead(3)
    set_windows(world, text)
    world.set_protection(True, 1)
    world.request("api", "olga", "prod-1", ("upgrade", "heads"))
    (requested,) = world.jobs()
    assert requested.state == JobState.AWAITING_APPROVAL
    world.approve(0, "amir", "current", "api")
    return requested.id, opening


def test_a_job_approved_outside_its_window_waits_until_it_opens(
    world: JobLifecycle, clock: Clock
) -> None:
    job_id, opening = approved_outside_window(world)
    waiting = job(world, job_id)
    assert waiting.state == JobState.SCHEDULED
    assert waiting.scheduled_for == opening
    world.worker_pass()  # the approval's message: the worker keeps it scheduled
    assert job(world, job_id).state == JobState.SCHEDULED
    assert prod(world) == ["a1"], "nothing ran outside the window"
    assert world.services.queue.huey.scheduled_count() >= 1, "a delayed wake-up is queued"

    clock.now = opening - timedelta(minutes=1)
    assert reaper_pass(world, clock) == 0, "not due yet"
    world.worker_pass()
    assert job(world, job_id).state == JobState.SCHEDULED

    clock.now = opening + timedelta(minutes=1)
    world.services.queue.huey.flush()  # the delayed message is lost: the reaper finds the job
    assert reaper_pass(world, clock) == 1
    world.worker_pass()
    done = job(world, job_id)
    assert done.state == JobState.SUCCEEDED, done.error
    assert prod(world) == ["c3"]
    lines = "\n".join(world_log(world, job_id))
    assert f"scheduled: starts at {opening:%Y-%m-%d %H:%M} UTC (window " in lines
    assert "its start time came: queued for the gate" in lines


def test_an_unprotected_job_with_not_before_waits_likewise(
    world: JobLifecycle, clock: Clock
) -> None:
    world.set_protection(False, 1)
    start = (utcnow() + timedelta(days=2)).replace(microsecond=0)
    response = world.api(
        "olga",
        "POST",
        "/jobs",
        {
            "target": "prod-2",
            "action": "upgrade",
            "revision": "heads",
            "not_before": start.isoformat() + "Z",
        },
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    job_id = body["jobs"][0]["id"] if "jobs" in body else body["id"]
    assert job(world, job_id).state == JobState.SCHEDULED
    world.worker_pass()
    assert job(world, job_id).state == JobState.SCHEDULED
    assert prod(world, "prod-2") == ["a1"]
    clock.now = start
    world.worker.execute(job_id)  # the delayed message arrives
    assert job(world, job_id).state == JobState.SUCCEEDED
    assert prod(world, "prod-2") == ["c3"]


def test_the_gate_still_refuses_a_scheduled_job_whose_plan_changed(
    world: JobLifecycle, clock: Clock
) -> None:
    job_id, opening = approved_outside_window(world)
    world.change_outside_migdash("prod-1", "b2")
    clock.now = opening
    world.worker.execute(job_id)
    refused = job(world, job_id)
    assert refused.state == JobState.REFUSED
    assert "the target moved since the plan was made" in (refused.error or "")
    assert prod(world) == ["b2"], "nothing ran"


def test_a_scheduled_job_can_be_cancelled_and_then_never_runs(
    world: JobLifecycle, clock: Clock
) -> None:
    job_id, opening = approved_outside_window(world)
    response = world.api("olga", "POST", f"/jobs/{job_id}/cancel")
    assert response.status_code == 200, response.get_json()
    assert job(world, job_id).state == JobState.CANCELLED
    clock.now = opening
    assert reaper_pass(world, clock) == 0
    world.worker.execute(job_id)
    assert job(world, job_id).state == JobState.CANCELLED
    assert prod(world) == ["a1"]


def test_a_scheduled_job_holds_its_target(world: JobLifecycle, clock: Clock) -> None:
    job_id, _ = approved_outside_window(world)
    response = world.api(
        "olga", "POST", "/jobs", {"target": "prod-1", "action": "upgrade", "revision": "b2"}
    )
    assert response.status_code == 409, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "job_pending"
    assert error["job"] == job_id
    assert "(scheduled)" in error["message"]
    with world.services.sessions() as session, pytest.raises(sa.exc.IntegrityError):
        session.execute(
            sa.insert(Job).values(
                kind="upgrade",
                project_name="shop",
                target_id=job(world, job_id).target_id,
                target_name="prod-1",
                requested_by="x",
                state=JobState.QUEUED,
                arguments={},
                from_revisions=[],
            )
        )
    del clock


def test_a_window_that_is_open_lets_the_job_run_at_once(world: JobLifecycle, clock: Clock) -> None:
    text, opening = window_ahead(3)
    set_windows(world, text)
    clock.now = opening + timedelta(minutes=5)  # the worker's clock is inside the window
    world.set_protection(False, 1)
    world.request("api", "olga", "prod-2", ("upgrade", "heads"))
    (requested,) = world.jobs()
    assert requested.state == JobState.SCHEDULED  # the real now is outside
    world.worker_pass()
    assert job(world, requested.id).state == JobState.SUCCEEDED


def world_log(world: JobLifecycle, job_id: int) -> list[str]:
    from migdash.jobs.records import job_log

    with world.services.sessions() as session:
        return [line.line for line in job_log(session, job_id)]


def test_the_worker_holds_a_queued_job_when_the_window_closed_after_the_request(
    world: JobLifecycle, clock: Clock
) -> None:
    world.set_protection(False, 1)
    world.request("api", "olga", "prod-2", ("upgrade", "heads"))
    (requested,) = world.jobs()
    assert requested.state == JobState.QUEUED
    text, opening = window_ahead(5)
    set_windows(world, text)  # read when the worker claims the job, not copied at request
    world.worker_pass()
    held = job(world, requested.id)
    assert held.state == JobState.SCHEDULED
    assert held.scheduled_for == opening
    assert prod(world, "prod-2") == ["a1"]
    clock.now = opening
    world.worker.execute(requested.id)
    assert job(world, requested.id).state == JobState.SUCCEEDED


def test_windows_that_cannot_be_read_refuse_the_job_instead_of_looping(
    world: JobLifecycle, clock: Clock
) -> None:
    world.set_protection(False, 1)
    world.request("api", "olga", "prod-2", ("upgrade", "heads"))
    (requested,) = world.jobs()
    with world.services.sessions() as session:  # behind the registry's back
        session.execute(sa.text("UPDATE environment SET windows = 'Mon 9-17' WHERE name = 'prod'"))
        session.commit()
    world.worker_pass()
    refused = job(world, requested.id)
    assert refused.state == JobState.REFUSED
    assert "rollout windows cannot be read" in (refused.error or "")
    assert prod(world, "prod-2") == ["a1"]
    del clock


def test_a_changed_window_moves_the_start_of_a_scheduled_job(
    world: JobLifecycle, clock: Clock
) -> None:
    job_id, _ = approved_outside_window(world)
    text, later = window_ahead(6)
    set_windows(world, text)
    world.worker.execute(job_id)
    moved = job(world, job_id)
    assert moved.state == JobState.SCHEDULED
    assert moved.scheduled_for == later
    assert f"scheduled: starts at {later:%Y-%m-%d %H:%M} UTC" in "\n".join(world_log(world, job_id))
    del clock
