"""``migdash worker``: a Huey consumer whose one task runs jobs, plus a reaper thread."""

from __future__ import annotations

import logging
import threading
from typing import Any

from migdash.jobs.delivery import delivery_settings, start_delivery
from migdash.jobs.heartbeat import beat
from migdash.jobs.queue import JobQueue
from migdash.jobs.worker import Worker, WorkerSettings
from migdash.store.models import utcnow

log = logging.getLogger(__name__)


def build_worker(services: Any) -> Worker:
    """A :class:`Worker` wired to the app's metadata DB, graph cache, probes and queue."""
    settings = services.settings
    worker = Worker(
        services.jobs,
        WorkerSettings(heartbeat_timeout=settings["MIGDASH_JOB_HEARTBEAT_TIMEOUT"]),
    )
    services.queue.handler = worker.execute
    return worker


def run_worker(services: Any, threads: int) -> None:
    """Consume the queue until SIGINT/SIGTERM; reap interrupted jobs every few seconds."""
    worker = build_worker(services)
    queue: JobQueue = services.queue
    stop = threading.Event()
    reaper = threading.Thread(target=_reap_forever, args=(worker, stop), name="reaper", daemon=True)
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


def _reap_forever(worker: Worker, stop: threading.Event) -> None:
    interval = max(0.5, min(5.0, worker.settings.heartbeat_timeout / 3))
    sweeps = 0
    _beat(worker)
    while not stop.wait(interval):
        _beat(worker)
        try:
            for job_id in worker.reap():
                log.warning("job %s interrupted: its worker stopped sending heartbeats", job_id)
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
