"""Workers on several machines: two ``migdash worker`` processes, one Redis queue, 100 targets.

The layout of the README's production section: the metadata DB on
PostgreSQL, the queue on Redis, and two worker processes that share nothing
else.  Every target gets an upgrade job, each message is delivered twice (a
transport may redeliver), and as soon as a target's job ends the next one is
requested, so a job can reach one worker while the other still holds the
target's lease.  A few targets start out leased by a "third machine".
Whatever the interleaving: every revision runs exactly once on every target,
and no target ever has two jobs running (read from the jobs' own timestamps).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from migdash.cli import main
from migdash.services import services_of
from migdash.store.models import Job, JobState, Target, TargetLease, utcnow
from tests.jobs.ledger import LEDGER, assert_each_revision_ran_once
from tests.jobs.ledger import app as app  # noqa: F401 - the fixture: metadata DB on PostgreSQL

TARGETS = 100
CHASED = 10
"""Targets whose first job is chased by a second one the moment it ends."""
HELD = 5
"""Targets whose lease another machine holds until a worker has found it taken."""


def request_upgrade(runner: Any, target: str) -> int:
    result = runner.invoke(main, ["upgrade", target, "+1", "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    return int(json.loads(result.stdout)["id"])


def hold_leases(app: Flask, targets: list[str], job_id: int) -> None:
    """Lease *targets* as another machine would, for a job that is not theirs."""
    with services_of(app).sessions() as session:
        for name in targets:
            target = session.scalar(sa.select(Target).where(Target.name == name))
            assert target is not None
            session.add(TargetLease(target_id=target.id, job_id=job_id, worker="elsewhere:1"))
        session.commit()


def renew_leases(app: Flask) -> None:
    with services_of(app).sessions() as session:
        session.execute(
            sa.update(TargetLease)
            .where(TargetLease.worker == "elsewhere:1")
            .values(heartbeat_at=utcnow())
        )
        session.commit()


def release_leases(app: Flask) -> datetime:
    with services_of(app).sessions() as session:
        session.execute(sa.delete(TargetLease).where(TargetLease.worker == "elsewhere:1"))
        session.commit()
    return utcnow()


def all_jobs(app: Flask) -> list[Job]:
    with services_of(app).sessions() as session:
        return list(session.scalars(sa.select(Job).order_by(Job.id)))


def drive(
    app: Flask, runner: Any, first: dict[str, int], held: list[str], timeout: float
) -> datetime:
    """Chase every finished first job with a second; hold the leases until workers wait on them.

    Returns when the held leases were released.
    """
    started = time.monotonic()
    released: datetime | None = None
    second: dict[str, int] = {}
    chased = set(list(first)[:CHASED])
    while len(second) < CHASED or released is None:
        assert time.monotonic() - started < timeout, f"{len(second)} of {CHASED} chased"
        jobs = {job.target_name: job for job in all_jobs(app) if job.id in first.values()}
        if released is None:
            early = [n for n in held if jobs[n].state != JobState.QUEUED]
            assert not early, f"{early}: a job started on a target another machine holds"
            if all((jobs[n].note or "").startswith("waiting for lock held by") for n in held):
                released = release_leases(app)
            else:
                renew_leases(app)
        for name, job in jobs.items():
            if name in chased and name not in second and JobState(job.state).terminal:
                second[name] = request_upgrade(runner, name)
        time.sleep(0.05)
    return released


def wait_all_terminal(app: Flask, count: int, timeout: float) -> list[Job]:
    deadline = time.monotonic() + timeout
    while True:
        jobs = all_jobs(app)
        if len(jobs) == count and all(JobState(j.state).terminal for j in jobs):
            return jobs
        assert time.monotonic() < deadline, Counter(j.state for j in jobs)
        time.sleep(0.2)


@pytest.mark.server
@pytest.mark.timeout(900)  # about a minute on a quiet 2-core machine; much more on a busy one
def test_two_workers_on_redis_run_every_target_once_and_never_two_jobs_on_one_target(
    app: Flask,
    make_app: Callable[..., Flask],
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    register: Callable[..., None],
    start_worker: Callable[..., Any],
    log_lines: Callable[[int], list[str]],
    redis_url: str,
) -> None:
    project = make_project(LEDGER, name="fleet")
    names = [f"tenant{i:03d}" for i in range(TARGETS)]
    urls = {name: make_target(project, at="a1", name=name) for name in names}
    register(project, **urls)
    redis_app = make_app(MIGDASH_QUEUE_URL=redis_url)
    runner = redis_app.test_cli_runner()
    first = {name: request_upgrade(runner, name) for name in names}
    services_of(redis_app).queue.submit(first.values())  # every message delivered twice
    held = names[:HELD]
    hold_leases(app, held, job_id=first[names[-1]])

    start_worker(threads=2, queue_url=redis_url)
    start_worker(threads=2, queue_url=redis_url)
    released = drive(app, runner, first, held, timeout=480)
    jobs = wait_all_terminal(app, TARGETS + CHASED, timeout=480)

    assert Counter(j.state for j in jobs) == {"succeeded": TARGETS + CHASED}, [
        (j.id, j.target_name, j.state, j.error) for j in jobs if j.state != "succeeded"
    ]
    workers = Counter(j.worker for j in jobs)
    assert len(workers) == 2, f"both worker processes ran jobs: {workers}"
    for job in jobs:
        started = [line for line in log_lines(job.id) if line.startswith("started on ")]
        assert len(started) == 1, (job.id, log_lines(job.id))
    assert_one_job_at_a_time(jobs)
    for name in held:
        (job_id,) = (j.id for j in jobs if j.id == first[name])
        job = next(j for j in jobs if j.id == job_id)
        assert job.started_at >= released, (name, job.started_at, released)
        assert any(line.startswith("waiting for lock held by job") for line in log_lines(job_id))
    applied: dict[str, list[str]] = {}
    for job in jobs:  # each job moved its target one step: to the revision it applied
        applied.setdefault(job.target_name, []).extend(job.result_revisions or [])
    assert sum(len(revisions) for revisions in applied.values()) == TARGETS + CHASED
    assert_each_revision_ran_once(app, applied, urls)
    runs = sorted((j.finished_at - j.started_at).total_seconds() for j in jobs)
    waits = sorted((j.started_at - j.requested_at).total_seconds() for j in jobs)
    print(
        f"jobs per worker: {dict(workers)}; run s p50 {runs[len(runs) // 2]:.2f} "
        f"max {runs[-1]:.2f}; queue wait p50 {waits[len(waits) // 2]:.2f} max {waits[-1]:.2f}"
    )


def assert_one_job_at_a_time(jobs: list[Job]) -> None:
    """Per target, each job started after the previous one finished, and moved it one step."""
    by_target: dict[str, list[Job]] = {}
    for job in jobs:
        by_target.setdefault(job.target_name, []).append(job)
    assert len(by_target) == TARGETS
    for name, runs in by_target.items():
        runs.sort(key=lambda j: j.started_at)
        for before, after in zip(runs, runs[1:], strict=False):
            assert before.finished_at <= after.started_at, (name, before.id, after.id)
        assert [j.result_revisions for j in runs] == [["b2"], ["c3"]][: len(runs)], name
