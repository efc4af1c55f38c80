"""A rollout over 100 targets run by two ``migdash worker`` processes on one Redis queue.

The production layout of ``test_worker_fleet`` (metadata DB on PostgreSQL,
queue on Redis, two worker processes that share nothing else), moved by a
rollout created as a user creates one (``migdash rollout create``): a canary
of 4, then waves of 32, at most 3 jobs at once, fewer than the 4 worker
threads, so the limit binds.  Both workers' rollout drivers advance it at
once (after each job and on every reaper pass), and every job message is
delivered a second time (a transport may redeliver).

What a rollout promises, read back from the targets and the job rows' own
timestamps: every target migrated exactly once; no target ever had two jobs
running; a wave's first job was requested only after every job of the wave
before it had finished; never more jobs running at once than the limit.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from migdash.cli import main
from migdash.services import services_of
from migdash.store.models import Job, JobState
from migdash.store.rollout_models import MemberState, RolloutMember, RolloutState
from tests.jobs.ledger import LEDGER, assert_each_revision_ran_once
from tests.jobs.ledger import app as app  # noqa: F401 - the fixture: metadata DB on PostgreSQL
from tests.jobs.rollout_fleet import Fleet, build_fleet
from tests.jobs.test_rollout_fleet import overlapping

TARGETS = 100
CANARY = 4
WAVE = 32
CONCURRENCY = 3
"""Below the 2 x 2 worker threads, so the rollout's limit, not the workers, bounds the jobs."""


def create_rollout(app: Flask) -> int:
    """``migdash rollout create fleet heads …`` as a user types it."""
    result = app.test_cli_runner().invoke(
        main,
        [
            "rollout",
            "create",
            "fleet",
            "heads",
            "--env",
            "dev",
            "--canary",
            str(CANARY),
            "--wave",
            str(WAVE),
            "--concurrency",
            str(CONCURRENCY),
            "--json",
        ],
    )
    assert result.exit_code == 0, (result.output, result.exception)
    created = json.loads(result.stdout)
    assert created["state"] == "running"
    return int(created["id"])


def wait_redelivering(fleet: Fleet, queue_app: Flask, rollout_id: int, timeout: float) -> None:
    """Until the rollout settles, deliver each member job's message once more as it appears."""
    queue = services_of(queue_app).queue
    delivered: set[int] = set()
    deadline = time.monotonic() + timeout
    while (rollout := fleet.rollout(rollout_id)).state == RolloutState.RUNNING:
        assert time.monotonic() < deadline, Counter(m.state.value for m in rollout.members)
        again = {m.job_id for m in rollout.members if m.job_id is not None} - delivered
        queue.submit(sorted(again))
        delivered |= again
        time.sleep(0.1)


@pytest.mark.server
@pytest.mark.timeout(900)  # about a minute on a quiet 2-core machine; much more on a busy one
def test_two_workers_on_redis_run_a_rollout_in_waves_once_per_target(
    app: Flask,
    tmp_path: Path,
    make_app: Callable[..., Flask],
    start_worker: Callable[..., Any],
    redis_url: str,
) -> None:
    fleet = build_fleet(app, tmp_path, TARGETS, revisions=LEDGER)
    redis_app = make_app(MIGDASH_QUEUE_URL=redis_url)
    rollout_id = create_rollout(redis_app)
    start_worker(threads=2, queue_url=redis_url)
    start_worker(threads=2, queue_url=redis_url)
    wait_redelivering(fleet, redis_app, rollout_id, timeout=600)

    rollout = fleet.rollout(rollout_id)
    assert rollout.state == RolloutState.SUCCEEDED, rollout.note
    members = {m.target_name: m for m in rollout.members}
    assert Counter(m.wave for m in members.values()) == {0: CANARY, 1: WAVE, 2: WAVE, 3: WAVE}
    assert {(m.state, m.jobs) for m in members.values()} == {(MemberState.SUCCEEDED, 1)}
    jobs = fleet.jobs()
    assert Counter(j.state for j in jobs) == {JobState.SUCCEEDED: TARGETS}, [
        (j.id, j.target_name, j.state, j.error) for j in jobs if j.state != JobState.SUCCEEDED
    ]
    assert Counter(j.target_name for j in jobs) == dict.fromkeys(fleet.names, 1)
    assert {tuple(j.result_revisions or ()) for j in jobs} == {("c3",)}
    workers = Counter(j.worker for j in jobs)
    assert len(workers) == 2, f"both worker processes ran jobs: {workers}"
    assert_each_revision_ran_once(
        app, dict.fromkeys(fleet.names, ["b2", "c3"]), {n: fleet.url(n) for n in fleet.names}
    )
    for name in fleet.names:
        assert overlapping([j for j in jobs if j.target_name == name]) <= 1, name
    assert_waves_in_order(jobs, members)
    most = overlapping(jobs)
    assert most <= CONCURRENCY, f"{most} jobs ran at once; the limit is {CONCURRENCY}"
    runs = sorted((j.finished_at - j.started_at).total_seconds() for j in jobs)
    span = max(j.finished_at for j in jobs) - min(j.requested_at for j in jobs)
    print(
        f"jobs per worker: {dict(workers)}; most running at once: {most}; run s p50 "
        f"{runs[len(runs) // 2]:.2f} max {runs[-1]:.2f}; first request to last finish "
        f"{span.total_seconds():.1f} s"
    )


def assert_waves_in_order(jobs: list[Job], members: dict[str, RolloutMember]) -> None:
    """Each wave's jobs were requested, and started, after every job of the wave before ended."""
    waves: dict[int, list[Job]] = {}
    for job in jobs:
        waves.setdefault(members[str(job.target_name)].wave, []).append(job)
    for number in sorted(waves)[1:]:
        ended = max(j.finished_at for j in waves[number - 1])
        first = min(waves[number], key=lambda j: j.requested_at)
        assert first.requested_at >= ended, (number, first.id, first.requested_at, ended)
        assert min(j.started_at for j in waves[number]) >= ended, number
