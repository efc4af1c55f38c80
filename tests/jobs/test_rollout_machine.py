"""Interleavings of pause, resume, cancel, the advance step and jobs ending, generated.

A hypothesis state machine over one rollout of five real SQLite targets
(canary 1, waves of 2, at most 2 jobs at once, halt on failure).  Jobs are
not run: a rule moves a member job the way the worker would (start it,
end it succeeded, failed or interrupted, then advance as the worker does
after a job), and the advance step is the worker's own
(:class:`~migdash.jobs.rollout_driver.RolloutDriver`).  After every step:

* no target has two unfinished jobs, and at most ``concurrency`` members run;
* a member that succeeded keeps its state and never gets another job;
* a rollout that is cancelled, paused, halted or finished requests no job;
* no member of a later wave runs while one of an earlier wave still waits.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from migdash.errors import Conflict
from migdash.jobs.records import move_job
from migdash.jobs.rollout_control import cancel_rollout, pause_rollout, resume_rollout
from migdash.jobs.rollout_driver import RolloutDriver
from migdash.services import services_of
from migdash.store.models import Job, JobState, utcnow
from migdash.store.rollout_models import MemberState, Rollout, RolloutState
from tests.jobs.rollout_fleet import Fleet, build_fleet

CONCURRENCY = 2
STOPPED = (
    RolloutState.CANCELLED,
    RolloutState.PAUSED,
    RolloutState.HALTED,
    RolloutState.SUCCEEDED,
    RolloutState.FAILED,
)
PENDING = (JobState.AWAITING_APPROVAL, JobState.QUEUED, JobState.RUNNING)


def reset(fleet: Fleet, rollout_id: int) -> None:
    """Forget every job and start the rollout again (the targets never moved)."""
    with services_of(fleet.app).sessions() as session:
        session.execute(sa.text("DELETE FROM job_log_line"))
        session.execute(sa.text("UPDATE rollout_member SET job_id = NULL"))
        session.execute(sa.delete(Job))
        session.execute(
            sa.text(
                "UPDATE rollout_member SET state = 'waiting', jobs = 0, error = NULL, "
                "started_at = NULL, finished_at = NULL"
            )
        )
        session.execute(
            sa.update(Rollout).values(state=RolloutState.RUNNING, note=None, finished_at=None)
        )
        session.commit()


def make_machine(fleet: Fleet, rollout_id: int, driver: RolloutDriver) -> type[Any]:
    sessions = services_of(fleet.app).sessions

    class RolloutMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            reset(fleet, rollout_id)
            self.succeeded: dict[str, int] = {}
            self.steps = 0
            driver.advance([rollout_id])  # the canary's job is requested

        def _jobs(self, state: JobState) -> list[Job]:
            return [j for j in fleet.jobs() if j.state == state]

        def _guarded(self, step: Callable[[], Any], may_start: bool = False) -> None:
            self.steps += 1
            before = fleet.rollout(rollout_id).state
            count = len(fleet.jobs())
            step()
            if before in STOPPED and not may_start:
                assert len(fleet.jobs()) == count, f"a {before} rollout requested a job"

        @rule()
        def advance(self) -> None:
            self._guarded(lambda: driver.advance([rollout_id]), may_start=True)

        @rule(
            pick=st.integers(0, 9),
            end=st.sampled_from(
                [JobState.SUCCEEDED, JobState.SUCCEEDED, JobState.FAILED, JobState.INTERRUPTED]
            ),
        )
        def end_job(self, pick: int, end: JobState) -> None:
            """A job ends (started first if it was queued); the worker then advances."""
            jobs = self._jobs(JobState.RUNNING) or self._jobs(JobState.QUEUED)
            if not jobs:
                return
            job = jobs[pick % len(jobs)]
            if job.state == JobState.QUEUED:
                self._move(job, JobState.QUEUED, JobState.RUNNING, started_at=utcnow())
            self._move(job, JobState.RUNNING, end, finished_at=utcnow(), error="boom")
            self._guarded(lambda: driver.after_job(job.id), may_start=True)

        def _move(self, job: Job, old: JobState, new: JobState, **values: Any) -> None:
            with sessions() as session:
                assert move_job(session, job.id, old, new, **values)
                session.commit()

        def _control(self, verb: Callable[..., Any]) -> None:
            def act() -> None:
                with contextlib.suppress(Conflict):
                    fleet.control(verb, rollout_id)

            self._guarded(act, may_start=False)

        @rule()
        def pause(self) -> None:
            self._control(pause_rollout)

        @rule()
        def resume(self) -> None:
            self._control(resume_rollout)

        @precondition(lambda self: self.steps > 10)
        @rule()
        def cancel(self) -> None:
            self._control(cancel_rollout)

        @invariant()
        def invariants_hold(self) -> None:
            rollout, jobs = fleet.rollout(rollout_id), fleet.jobs()
            members = {m.target_name: m for m in rollout.members}
            pending = Counter(j.target_name for j in jobs if j.state in PENDING)
            assert all(n <= 1 for n in pending.values()), f"two unfinished jobs: {pending}"
            running = [m.wave for m in members.values() if m.state == MemberState.RUNNING]
            waiting = [m.wave for m in members.values() if m.state == MemberState.WAITING]
            assert len(running) <= CONCURRENCY
            if waiting and running:
                assert max(running) <= min(waiting), "a later wave runs before an earlier one"
            if rollout.state == RolloutState.CANCELLED:
                assert not waiting
            per_target = Counter(j.target_name for j in jobs)
            for name, count in self.succeeded.items():
                assert members[name].state == MemberState.SUCCEEDED, f"{name} is not done"
                assert per_target[name] == count, f"{name} got another job"
            self.succeeded.update(
                (name, per_target[name])
                for name, m in members.items()
                if m.state == MemberState.SUCCEEDED and name not in self.succeeded
            )

    return RolloutMachine


def test_rollout_interleavings_keep_the_invariants(app: Flask, tmp_path: Path) -> None:
    fleet = build_fleet(app, tmp_path, 5)
    rollout_id = fleet.create(canary=1, wave_size=2, concurrency=CONCURRENCY)
    driver = RolloutDriver(services_of(app).jobs)
    run_state_machine_as_test(  # deterministic: threads racing are in the test below
        make_machine(fleet, rollout_id, driver),
        settings=settings(
            max_examples=40,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_advancing_from_many_threads_at_once_starts_each_member_once(
    app: Flask, tmp_path: Path
) -> None:
    fleet = build_fleet(app, tmp_path, 4)
    rollout_id = fleet.create(canary=3, wave_size=1, concurrency=2)
    planned = RolloutDriver(services_of(app).jobs)
    planned.advance([rollout_id])
    reset(fleet, rollout_id)
    drivers = [RolloutDriver(services_of(app).jobs) for _ in range(6)]
    barrier = threading.Barrier(len(drivers))

    def advance(driver: RolloutDriver) -> None:
        driver.plans = planned.plans  # no child process: the race is on the rows
        barrier.wait()
        driver.advance([rollout_id])

    threads = [threading.Thread(target=advance, args=(d,)) for d in drivers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    jobs = fleet.jobs()
    members = fleet.members(rollout_id)
    assert sorted(str(j.target_name) for j in jobs) == ["t00", "t01"], "two slots, one job each"
    assert {n: (m.state, m.jobs) for n, m in members.items() if m.job_id} == {
        "t00": (MemberState.RUNNING, 1),
        "t01": (MemberState.RUNNING, 1),
    }


def test_resume_after_a_failure_never_requests_a_succeeded_member_again(
    app: Flask, tmp_path: Path
) -> None:
    """The targets never move here, so only the member's state keeps it from a second job."""
    fleet = build_fleet(app, tmp_path, 3)
    rollout_id = fleet.create(canary=2, wave_size=1, concurrency=2)
    driver = RolloutDriver(services_of(app).jobs)
    machine = make_machine(fleet, rollout_id, driver)()
    machine.end_job(0, JobState.SUCCEEDED)
    machine.end_job(0, JobState.FAILED)
    assert fleet.rollout(rollout_id).state == RolloutState.HALTED
    machine.resume()
    machine.advance()
    machine.invariants_hold()
    jobs = fleet.jobs()
    assert Counter(j.target_name for j in jobs) == {"t00": 1, "t01": 2}
    assert fleet.members(rollout_id)["t02"].state == MemberState.WAITING
