"""``migdash worker``: a Huey consumer whose one task runs jobs, plus a reaper thread.

Rollouts move here too, with no web request: after each job that belongs to
a rollout, and on every reaper pass, the
:class:`~migdash.jobs.rollout_driver.RolloutDriver` follows the member jobs
and starts the next members.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from migdash.jobs.delivery import delivery_settings, start_delivery
from migdash.jobs.heartbeat import beat
from migdash.jobs.queue import JobQueue
from migdash.jobs.rollout_driver import RolloutDriver
from migdash.jobs.worker import Worker, WorkerSettings
from migdash.store.models import utcnow

log = logging.getLogger(__name__)


def build_worker(services: Any, driver: RolloutDriver | None = None) -> Worker:
    """A :class:`Worker` wired to the app's metadata DB, graph cache, probes and queue.

    After each job, the rollout it belongs to (if any) is advanced.
    """
    settings = services.settings
    worker = Worker(
        services.jobs,
        WorkerSettings(heartbeat_timeout=settings["MIGDASH_JOB_HEARTBEAT_TIMEOUT"]),
    )
    rollouts = driver or RolloutDriver(services.jobs)

    def handle(job_id: int) -> None:
        try:
            worker.execute(job_id)
        finally:
            rollouts.after_job(job_id)

    services.queue.handler = handle
    return worker


def run_worker(services: Any, threads: int) -> None:
    """Consume the queue until SIGINT/SIGTERM; reap interrupted jobs every few seconds."""
    driver = RolloutDriver(services.jobs)
    worker = build_worker(services, driver)
    queue: JobQueue = services.queue
    stop = threading.Event()
    reaper = threading.Thread(
        target=_reap_forever, args=(worker, driver, stop), name="reaper", daemon=True
    )
    reaper.start()
    start_delivery(services.sessions, delivery_settings(services.settings), stop)
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


def _reap_forever(worker: Worker, driver: RolloutDriver, stop: threading.Event) -> None:
    interval = max(0.5, min(5.0, worker.settings.heartbeat_timeout / 3))
    sweeps = 0
    _beat(worker)
    while not stop.wait(interval):
        _beat(worker)
        try:
            for job_id in worker.reap():
                log.warning("job %s interrupted: its worker stopped sending heartbeats", job_id)
            for line in driver.advance():
                log.info("rollout: %s", line)
            sweeps += 1
            if sweeps % 10 == 0:
                worker.requeue_stale()
        except Exception:  # noqa: BLE001 - the reaper must outlive a bad moment of the DB
            log.exception("reaper pass failed; trying again")


def _beat(worker: Worker) -> None:
    """Tell ``/readyz`` a worker is alive; a queue that cannot be reached is only logged."""
    try:
        beat(worker.queue, worker.name, utcnow())
    except Exception:  # noqa: BLE001 - the loop must outlive a bad moment of the queue
        log.exception("worker heartbeat not written; trying again")
