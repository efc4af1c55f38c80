"""The fleet acceptance test: 50 SQLite targets, a real ``migdash worker``, a failure, a kill -9.

Canary of 2, waves of 10.  One target of wave 2 already holds the table its
migration creates, so its job fails with Alembic's own error: the rollout
halts after wave 2 and no wave 3 job is ever requested.  The table is
dropped, the rollout resumed, and the worker process is killed with SIGKILL
while jobs of the next wave run; a fresh worker reaps the interrupted job,
which pauses the rollout; resumed once more, it finishes, and every target
was migrated exactly once (counted from the job rows).

The kill lands inside the migration, before its DDL: while a marker file
exists, b2 sleeps first.  On SQLite, Alembic's DDL is not transactional
(pysqlite runs ``CREATE TABLE`` in autocommit), so a kill between the
``CREATE TABLE`` and the version bump would leave the table without the
revision, and the re-run would fail on it, as it would under Alembic alone.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from flask import Flask

from migdash.jobs.rollout_control import resume_rollout
from migdash.scaffold import RevisionSpec
from migdash.store.models import Job, JobState
from migdash.store.rollout_models import MemberState, RolloutState
from tests.jobs.rollout_fleet import REVISIONS, Fleet, build_fleet
from tests.jobs.test_worker_process import runners_of, still_running

BROKEN = 15
"""t15: in wave 2 (the canary is t00-t01, wave 1 t02-t11, wave 2 t12-t21)."""
CONCURRENCY = 4
SLEEP_FIRST = (
    "import os, time\n"
    "if os.path.exists({marker!r}):\n"
    "    time.sleep(2)  # the test kills the worker now\n"
    'op.create_table("orders", sa.Column("id", sa.Integer, primary_key=True))\n'
)


def wait_for(
    fleet: Fleet, rollout_id: int, states: Collection[RolloutState], timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while (state := fleet.rollout(rollout_id).state) not in states:
        assert time.monotonic() < deadline, f"rollout still {state} after {timeout} s"
        time.sleep(0.1)


def migrated(job: Job) -> bool:
    """The job changed its target: it succeeded, or it was interrupted after its migration."""
    return job.state == JobState.SUCCEEDED or (
        job.state == JobState.INTERRUPTED and job.result_revisions == ["b2"]
    )


def overlapping(jobs: list[Job]) -> int:
    """The most jobs ever running at one moment, from their timestamps."""
    spans = [(j.started_at, j.finished_at) for j in jobs if j.started_at and j.finished_at]
    return max(sum(s <= start < f for s, f in spans) for start, _ in spans)


def test_fifty_targets_halt_resume_and_survive_a_killed_worker(
    app: Flask, tmp_path: Path, start_worker: Callable[..., Any]
) -> None:
    marker = tmp_path / "kill-now"
    revisions = [
        REVISIONS[0],
        RevisionSpec(
            "b2", "a1", "create orders", upgrade_body=SLEEP_FIRST.format(marker=str(marker))
        ),
    ]
    fleet = build_fleet(app, tmp_path, 50, broken=[BROKEN], revisions=revisions)
    rollout_id = fleet.create(canary=2, wave_size=10, concurrency=CONCURRENCY)
    members = fleet.members(rollout_id)
    assert [members[f"t{i:02d}"].wave for i in (0, 1, 2, 11, 12, 21, 22, 49)] == [
        0,
        0,
        1,
        1,
        2,
        2,
        3,
        5,
    ]

    worker = start_worker(threads=CONCURRENCY)
    wait_for(fleet, rollout_id, {RolloutState.HALTED})
    rollout = fleet.rollout(rollout_id)
    assert rollout.note is not None
    assert rollout.note.startswith("halted after wave 2: 1 target(s) failed: t15")
    members = fleet.members(rollout_id)
    assert members["t15"].state == MemberState.FAILED
    assert "orders" in (members["t15"].error or ""), members["t15"].error
    time.sleep(1.5)  # a reaper pass or two: still nothing of wave 3
    later = {name for name, m in members.items() if m.wave >= 3}
    assert not later & {j.target_name for j in fleet.jobs()}, "no further wave started"
    assert all(fleet.versions(name) == ["a1"] for name in later)

    fleet.fix("t15")
    fleet.control(resume_rollout, rollout_id)
    marker.touch()
    runners = _kill_while_a_job_runs(fleet, worker)
    marker.unlink()
    start_worker(threads=CONCURRENCY)
    wait_for(fleet, rollout_id, {RolloutState.PAUSED, RolloutState.SUCCEEDED})
    assert fleet.rollout(rollout_id).state == RolloutState.PAUSED, "the interruption paused it"
    assert "was interrupted" in (fleet.rollout(rollout_id).note or "")
    assert still_running(runners) == [], "the migration processes died with their worker"
    fleet.control(resume_rollout, rollout_id)
    wait_for(fleet, rollout_id, {RolloutState.SUCCEEDED})

    jobs = fleet.jobs()
    assert all(fleet.versions(name) == ["b2"] for name in fleet.names)
    assert {n: sum(migrated(j) for j in jobs if j.target_name == n) for n in fleet.names} == (
        dict.fromkeys(fleet.names, 1)
    ), "every target migrated exactly once"
    assert any(j.state == JobState.INTERRUPTED for j in jobs)
    assert [j.target_name for j in jobs if j.state == JobState.FAILED] == ["t15"]
    for name in fleet.names:
        assert overlapping([j for j in jobs if j.target_name == name]) <= 1
    assert overlapping(jobs) <= CONCURRENCY


def _kill_while_a_job_runs(fleet: Fleet, worker: Any) -> list[int]:
    """SIGKILL the worker once a job of wave 3 or later is inside b2; its runners then."""
    members = fleet.members(fleet.rollout(1).id)
    deadline = time.monotonic() + 60
    while True:
        running = [
            j
            for j in fleet.jobs()
            if j.state == JobState.RUNNING and members[str(j.target_name)].wave >= 3
        ]
        if any("Running upgrade a1 -> b2" in line for j in running for line in fleet.log(j.id)):
            break
        assert time.monotonic() < deadline, "no job of wave 3 started"
        time.sleep(0.02)
    runners = runners_of(worker.pid)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    return runners
