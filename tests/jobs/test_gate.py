"""The gate, checked where the work happens: each way a plan can stop holding after approval.

Uses the lifecycle test's world (a protected prod, two SQLite targets at a1,
people and tokens) and its channels; each test approves a job properly,
then changes one thing, and the worker (or the reaper) must refuse the job
with the reason while nothing runs on the target.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from migdash.store import registry
from migdash.store.models import JobState
from tests.jobs.test_lifecycle_machine import JobLifecycle, Template, _versions
from tests.jobs.test_lifecycle_machine import template as template  # noqa: F401 - the fixture


@pytest.fixture
def world(template: Template, tmp_path: Path) -> Iterator[JobLifecycle]:  # noqa: F811
    made = JobLifecycle(template, tmp_path)
    yield made
    made.teardown()


def approved_job(world: JobLifecycle, required: int = 1) -> int:
    """olga requests an upgrade of prod-1 to heads; amir (and bea) approve that plan."""
    world.set_protection(True, required)
    world.request("api", "olga", "prod-1", ("upgrade", "heads"))
    (job,) = world.jobs()
    assert job.state == JobState.AWAITING_APPROVAL
    for approver in ("amir", "bea")[:required]:
        world.approve(0, approver, "current", "api")
    return job.id


def ended(world: JobLifecycle, job_id: int) -> tuple[JobState, str]:
    job = next(j for j in world.jobs() if j.id == job_id)
    return job.state, job.error or ""


def prod_1(world: JobLifecycle) -> list[str]:
    return _versions(f"sqlite:///{world.root / 'dbs' / 'prod-1'}.db")


def test_an_approved_job_runs(world: JobLifecycle) -> None:
    job_id = approved_job(world)
    world.worker_pass()
    assert ended(world, job_id)[0] == JobState.SUCCEEDED
    assert prod_1(world) == ["c3"]


def test_the_target_moved_after_approval(world: JobLifecycle) -> None:
    job_id = approved_job(world)
    world.change_outside_migdash("prod-1", "b2")
    world.worker_pass()
    state, error = ended(world, job_id)
    assert state == JobState.REFUSED
    assert "the target moved since the plan was made: planned from a1, now at b2" in error
    assert prod_1(world) == ["b2"], "nothing ran"


def test_a_revision_file_edited_after_approval(world: JobLifecycle) -> None:
    job_id = approved_job(world)
    world.change_outside_migdash("prod-1", "edit-file")
    world.worker_pass()
    state, error = ended(world, job_id)
    assert state == JobState.REFUSED
    assert "a revision file or env.py changed since the plan was made" in error
    assert prod_1(world) == ["a1"]


def test_more_approvals_required_after_approval(world: JobLifecycle) -> None:
    job_id = approved_job(world)
    world.set_protection(True, 2)  # read at run time, not copied at request time
    world.worker_pass()
    state, error = ended(world, job_id)
    assert state == JobState.REFUSED
    assert "needs 2 approval(s) of this plan" in error
    assert "it has 1" in error
    assert prod_1(world) == ["a1"]


def test_the_reaper_refuses_instead_of_resubmitting(world: JobLifecycle) -> None:
    world.set_protection(False, 1)
    world.request("web", "olga", "prod-2", ("upgrade", "heads"))
    (job,) = world.jobs()
    assert job.state == JobState.QUEUED
    world.set_protection(True, 1)
    world.services.queue.huey.flush()  # a lost message: only the reaper would find the job
    world.reaper_pass()
    state, error = ended(world, job.id)
    assert state == JobState.REFUSED
    assert "is protected and needs 1 approval(s)" in error
    assert world.services.queue.pending_count() == 0, "nothing was submitted again"


def test_a_removed_target_never_runs(world: JobLifecycle) -> None:
    world.set_protection(False, 1)
    world.request("api", "olga", "prod-2", ("upgrade", "heads"))
    world.remove_target("prod-2")
    world.worker_pass()
    (job,) = world.jobs()
    assert job.state == JobState.CANCELLED, "removal cancels what was pending"
    assert _versions(f"sqlite:///{world.root / 'dbs' / 'prod-2'}.db") == ["a1"]


def test_a_job_whose_target_row_vanished_is_refused(world: JobLifecycle) -> None:
    """Even a target deleted behind the removal flow's back never lets its job run."""
    world.set_protection(False, 1)
    world.request("api", "olga", "prod-2", ("upgrade", "heads"))
    with world.services.sessions() as session:
        registry.remove_target(session, registry.get_target(session, "prod-2"), actor="x")
        session.commit()
    world.worker_pass()
    (job,) = world.jobs()
    assert job.state == JobState.REFUSED
    assert "its target was removed" in (job.error or "")
    assert _versions(f"sqlite:///{world.root / 'dbs' / 'prod-2'}.db") == ["a1"]
