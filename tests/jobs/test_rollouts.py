"""Rollouts in this process: waves in order, halt and resume, approval once, pause and cancel.

Real SQLite targets, real plans and real job children; the queue is drained
in this process (``run_queue``), and the worker's advance step
(:func:`~migdash.jobs.consumer.advance_rollouts`) is called as the reaper
pass would.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from migdash.errors import Conflict, Forbidden, FourEyesViolation, NotFound
from migdash.jobs import requests, rollouts
from migdash.jobs.records import move_job
from migdash.jobs.rollout_control import (
    approve_rollout,
    cancel_rollout,
    pause_rollout,
    resume_rollout,
)
from migdash.jobs.rollout_driver import RolloutDriver
from migdash.jobs.rollout_progress import eta_seconds, progress
from migdash.scaffold import migrate_database
from migdash.services import services_of
from migdash.store.models import Approval, AuditEvent, JobState, Role, utcnow
from migdash.store.rollout_models import MemberState, RolloutState
from tests.jobs.rollout_fleet import build_fleet


def test_waves_run_in_order_and_a_failure_halts_until_fixed_and_resumed(
    app: Flask, tmp_path: Path, run_queue: Callable[[], int]
) -> None:
    fleet = build_fleet(app, tmp_path, 7, broken=[3])
    rollout_id = fleet.create(canary=1, wave_size=2, concurrency=2)
    members = fleet.members(rollout_id)
    assert [members[n].wave for n in fleet.names] == [0, 1, 1, 2, 2, 3, 3]

    fleet.drive(run_queue)

    rollout = fleet.rollout(rollout_id)
    assert rollout.state == RolloutState.HALTED
    assert "halted after wave 2: 1 target(s) failed: t03" in (rollout.note or "")
    members = fleet.members(rollout_id)
    assert members["t03"].state == MemberState.FAILED
    assert "orders" in (members["t03"].error or ""), "the job's own error is shown"
    assert members["t04"].state == MemberState.SUCCEEDED, "the rest of the wave finished"
    assert {members[n].state for n in ("t05", "t06")} == {MemberState.WAITING}
    assert [fleet.versions(n) for n in ("t05", "t06")] == [["a1"], ["a1"]], "no wave 3"
    jobs = fleet.jobs()
    waves = {j.target_name: members[j.target_name].wave for j in jobs}
    for earlier in jobs:
        for later in jobs:
            if waves[later.target_name] > waves[earlier.target_name]:
                assert later.requested_at >= earlier.finished_at, "a wave waits for the last"

    fleet.fix("t03")
    fleet.control(resume_rollout, rollout_id)
    fleet.drive(run_queue)

    assert fleet.rollout(rollout_id).state == RolloutState.SUCCEEDED
    assert all(fleet.versions(n) == ["b2"] for n in fleet.names)
    assert fleet.jobs_per_target() == dict.fromkeys(fleet.names, 1), "nothing ran twice"
    assert fleet.jobs_per_target([JobState.FAILED]) == {"t03": 1}
    assert fleet.members(rollout_id)["t03"].jobs == 2


def test_members_sharing_a_starting_point_are_planned_once_per_advance_not_once_each(
    app: Flask, tmp_path: Path, run_queue: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each plan is a child process; a wave of targets at one revision needs one."""
    fleet = build_fleet(app, tmp_path, 6)
    rollout_id = fleet.create(canary=0, wave_size=6, concurrency=6)
    planned: list[str] = []
    for module in (requests, rollouts):
        monkeypatch.setattr(module, "make_plan", counting(module.make_plan, planned))

    driver = RolloutDriver(services_of(app).jobs)
    driver.advance([rollout_id])

    assert len(fleet.jobs()) == 6
    assert len(planned) == 1, planned
    run_queue()
    driver.advance([rollout_id])
    assert fleet.rollout(rollout_id).state == RolloutState.SUCCEEDED
    assert all(fleet.versions(n) == ["b2"] for n in fleet.names)


def counting(make_plan: Callable[..., Any], planned: list[str]) -> Callable[..., Any]:
    def counted(services: Any, target: Any, *args: Any, **kwargs: Any) -> Any:
        planned.append(target.name)
        return make_plan(services, target, *args, **kwargs)

    return counted


def test_continue_on_failure_runs_every_wave_and_ends_failed(
    app: Flask, tmp_path: Path, run_queue: Callable[[], int]
) -> None:
    fleet = build_fleet(app, tmp_path, 4, broken=[0])
    rollout_id = fleet.create(canary=1, wave_size=2, concurrency=2, on_failure="continue")

    fleet.drive(run_queue)

    rollout = fleet.rollout(rollout_id)
    assert rollout.state == RolloutState.FAILED
    assert [fleet.versions(n) for n in fleet.names] == [["a1"], ["b2"], ["b2"], ["b2"]]
    waves = progress(rollout)
    assert [(w.name, w.done, w.failed, w.waiting) for w in waves] == [
        ("the canary", 0, 1, 0),
        ("wave 1", 2, 0, 0),
        ("wave 2", 1, 0, 0),
    ]
    assert eta_seconds(rollout) == 0.0


def test_targets_are_selected_by_environment_and_tags_and_refused_when_unplannable(
    app: Flask, tmp_path: Path
) -> None:
    fleet = build_fleet(app, tmp_path, 4, tags=lambda i: ["eu"] if i % 2 else ["us"])
    rollout_id = fleet.create(tags=["eu"])
    assert sorted(fleet.members(rollout_id)) == ["t01", "t03"]
    with pytest.raises(NotFound, match="tagged nope"):
        fleet.create(tags=["nope"])
    with pytest.raises(Forbidden):
        fleet.create(role=Role.VIEWER)

    (tmp_path / "dbs" / "t00.db").unlink()
    (tmp_path / "dbs" / "t00.db").mkdir()  # no longer a database: it cannot be probed
    with pytest.raises(Conflict, match=r"1 of 2 target\(s\) cannot be planned: t00: "):
        fleet.create(tags=["us"])


def test_one_approval_covers_the_rollout_and_each_job_carries_it(
    app: Flask, tmp_path: Path, run_queue: Callable[[], int]
) -> None:
    fleet = build_fleet(app, tmp_path, 3, environment="prod", protected=True)
    rollout_id = fleet.create(canary=1, wave_size=5, environments=["prod"])
    rollout = fleet.rollout(rollout_id)
    assert rollout.state == RolloutState.AWAITING_APPROVAL
    (plan,) = rollout.plans  # three targets, one distinct plan
    assert plan["targets"] == fleet.names
    assert plan["steps"] == ["upgrade a1 -> b2"]
    assert "CREATE TABLE orders" in plan["sql"]

    fleet.drive(run_queue)
    assert fleet.jobs() == [], "nothing is requested before the approval"
    with pytest.raises(FourEyesViolation):
        fleet.control(approve_rollout, rollout_id, actor="olga", role=Role.APPROVER)
    with pytest.raises(Conflict, match="not the rollout's plans"):
        fleet.control(approve_rollout, rollout_id, actor="amir", role=Role.APPROVER, seen="x")
    fleet.control(
        approve_rollout, rollout_id, actor="amir", role=Role.APPROVER, seen=rollout.fingerprint
    )
    fleet.drive(run_queue)

    assert fleet.rollout(rollout_id).state == RolloutState.SUCCEEDED
    assert all(fleet.versions(n) == ["b2"] for n in fleet.names)
    with services_of(app).sessions() as session:
        approvals = session.scalars(sa.select(Approval)).all()
        actions = session.scalars(sa.select(AuditEvent.action)).all()
    jobs = fleet.jobs()
    assert sorted((a.job_id, a.decided_by, a.plan_hash) for a in approvals) == sorted(
        (j.id, "amir", j.plan_hash) for j in jobs
    ), "each job carries the approval for exactly its plan"
    assert {"rollout.request", "rollout.approve_refused", "rollout.approve"} <= set(actions)
    assert actions.count("job.approve") == 3


def test_a_member_whose_plan_changed_after_approval_waits_for_its_own(
    app: Flask, tmp_path: Path, run_queue: Callable[[], int]
) -> None:
    fleet = build_fleet(app, tmp_path, 2, environment="prod", protected=True)
    rollout_id = fleet.create(canary=2, wave_size=5, environments=["prod"])
    fleet.control(approve_rollout, rollout_id, actor="amir", role=Role.APPROVER)
    with (tmp_path / "projects" / "fleet" / "env.py").open("a") as env_py:
        env_py.write("\n# edited after the approval\n")

    fleet.drive(run_queue)

    jobs = fleet.jobs()
    assert {j.state for j in jobs} == {JobState.AWAITING_APPROVAL}
    members = fleet.members(rollout_id)
    assert all("needs its own approval" in (m.error or "") for m in members.values())
    assert [fleet.versions(n) for n in fleet.names] == [["a1"], ["a1"]]


def test_paused_and_cancelled_rollouts_start_nothing(
    app: Flask, tmp_path: Path, run_queue: Callable[[], int]
) -> None:
    fleet = build_fleet(app, tmp_path, 3)
    paused = fleet.create(canary=1, wave_size=5)
    fleet.control(pause_rollout, paused)
    fleet.drive(run_queue)
    assert fleet.jobs() == []

    fleet.control(cancel_rollout, paused)
    with pytest.raises(Conflict, match="only a paused, halted or failed one resumes"):
        fleet.control(resume_rollout, paused)
    fleet.drive(run_queue)
    assert fleet.jobs() == []
    assert {m.state for m in fleet.members(paused).values()} == {MemberState.CANCELLED}


def test_an_interrupted_member_pauses_and_resume_probes_before_running_again(
    app: Flask, tmp_path: Path
) -> None:
    """Two canary jobs die with their worker: one had migrated its target, one had not."""
    fleet = build_fleet(app, tmp_path, 3)
    rollout_id = fleet.create(canary=2, wave_size=5, concurrency=2)
    driver = RolloutDriver(services_of(app).jobs)
    driver.advance([rollout_id])
    first, second = fleet.jobs()
    with services_of(app).sessions() as session:
        for job in (first, second):
            assert move_job(session, job.id, JobState.QUEUED, JobState.RUNNING, started_at=utcnow())
            assert move_job(session, job.id, JobState.RUNNING, JobState.INTERRUPTED)
        session.commit()
    migrate_database(tmp_path / "projects" / "fleet", fleet.url("t00"), "b2")  # it had finished

    driver.advance([rollout_id])
    rollout = fleet.rollout(rollout_id)
    assert rollout.state == RolloutState.PAUSED
    assert f"job {first.id} of t00 was interrupted" in (rollout.note or "")
    assert len(fleet.jobs()) == 2, "nothing is run again silently"

    fleet.control(resume_rollout, rollout_id)
    driver.advance([rollout_id])
    members = fleet.members(rollout_id)
    assert (members["t00"].state, members["t00"].jobs) == (MemberState.SUCCEEDED, 1)
    assert (members["t01"].state, members["t01"].jobs) == (MemberState.RUNNING, 2)
    assert [j.target_name for j in fleet.jobs()] == ["t00", "t01", "t01"]
