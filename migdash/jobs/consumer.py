"""``migdash worker``: a Huey consumer whose one task runs jobs, plus a reaper thread.

Rollouts move here too, with no web request: after each job that belongs to
a rollout, and on every reaper pass, :func:`advance_rollouts` follows the
member jobs and starts the next members (each change its own transaction;
the step itself is in :mod:`migdash.jobs.rollout_waves`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from migdash.errors import MigdashError
from migdash.jobs.context import JobServices
from migdash.jobs.plans import ActionPlan
from migdash.jobs.queue import JobQueue
from migdash.jobs.rollout_waves import (
    MemberNotStarted,
    fail_member,
    live_rollouts,
    plan_members,
    rollout_of_job,
    start_member,
    sync_rollout,
)
from migdash.jobs.worker import Worker, WorkerSettings
from migdash.store.models import utcnow
from migdash.store.rollout_models import RolloutMember

log = logging.getLogger(__name__)


def build_worker(services: Any) -> Worker:
    """A :class:`Worker` wired to the app's metadata DB, graph cache, probes and queue."""
    settings = services.settings
    worker = Worker(
        services.jobs,
        WorkerSettings(heartbeat_timeout=settings["MIGDASH_JOB_HEARTBEAT_TIMEOUT"]),
    )
    jobs: JobServices = services.jobs

    def handle(job_id: int) -> None:
        try:
            worker.execute(job_id)
        finally:
            with jobs.sessions() as session:
                rollout_id = rollout_of_job(session, job_id)
            if rollout_id is not None:
                advance_rollouts(jobs, [rollout_id])

    services.queue.handler = handle
    return worker


MAX_PASSES = 50
"""Steps of one rollout per call: each starts members or finishes some; a bound, not a goal."""


def advance_rollouts(services: JobServices, rollout_ids: Sequence[int] | None = None) -> list[str]:
    """Advance every live rollout (or *rollout_ids*) as far as it goes now; say what happened."""
    with services.sessions() as session:
        ids = list(rollout_ids) if rollout_ids is not None else live_rollouts(session)
    said: list[str] = []
    for rollout_id in ids:
        for _ in range(MAX_PASSES):
            with services.sessions() as session:
                starts = sync_rollout(session, rollout_id, utcnow())
                session.commit()
            with services.sessions() as session:
                plans = plan_members(session, services, starts)
            outcomes = [_start_member(services, member_id, plans) for member_id in starts]
            said += [text for _, text in outcomes]
            if not any(progressed for progressed, _ in outcomes):
                break
    return said


def _start_member(
    services: JobServices, member_id: int, plans: dict[int, ActionPlan]
) -> tuple[bool, str]:
    """Start one member in a transaction of its own; record why when it cannot be planned.

    Says whether anything changed (False: another worker or a pause got there first).
    """
    with services.sessions() as session:
        try:
            member = session.get(RolloutMember, member_id)
            plan = plans.get(member.target_id or 0) if member else None
            said = start_member(session, services, member_id, utcnow(), plan)
        except MemberNotStarted as exc:
            session.rollback()
            return False, exc.message
        except MigdashError as exc:
            session.rollback()
            fail_member(session, member_id, exc.message, utcnow())
            session.commit()
            return True, f"member {member_id} failed: {exc.message}"
        session.commit()
        return True, said


def run_worker(services: Any, threads: int) -> None:
    """Consume the queue until SIGINT/SIGTERM; reap interrupted jobs every few seconds."""
    worker = build_worker(services)
    queue: JobQueue = services.queue
    stop = threading.Event()
    reaper = threading.Thread(target=_reap_forever, args=(worker, stop), name="reaper", daemon=True)
    reaper.start()
    consumer = queue.huey.create_consumer(
        workers=threads,
        worker_type="thread",
        periodic=False,
        initial_delay=0.05,
        backoff=1.1,
        max_delay=0.5,
        check_worker_health=True,
    )
    log.info("worker %s consuming with %d threads", worker.name, threads)
    try:
        consumer.run()
    finally:
        stop.set()


def _reap_forever(worker: Worker, stop: threading.Event) -> None:
    interval = max(0.5, min(5.0, worker.settings.heartbeat_timeout / 3))
    sweeps = 0
    while not stop.wait(interval):
        try:
            for job_id in worker.reap():
                log.warning("job %s interrupted: its worker stopped sending heartbeats", job_id)
            for line in advance_rollouts(worker.services):
                log.info("rollout: %s", line)
            sweeps += 1
            if sweeps % 10 == 0:
                worker.requeue_stale()
        except Exception:  # noqa: BLE001 - the reaper must outlive a bad moment of the DB
            log.exception("reaper pass failed; trying again")
