"""The worker processes' heartbeat, kept in the queue's own storage (Huey's key-value store).

``/readyz`` must know whether *some* worker is alive, which the job rows
cannot tell while no job runs.  Each ``migdash worker`` writes one key (the
time and its name) every few seconds; any process reads it back.  The queue
is the natural home: it is shared by every web process and worker on every
machine (SQLite file or Redis), it needs no schema change, and reading the
key also proves the queue is reachable.  One key for all workers: readiness
asks "is at least one worker beating", not "which".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from migdash.jobs.queue import JobQueue

HEARTBEAT_KEY = "migdash.worker-heartbeat"


@dataclass(frozen=True)
class WorkerBeat:
    """The newest heartbeat any worker wrote."""

    worker: str
    at: datetime
    """UTC, naive, like every time in the metadata DB."""

    def age(self, now: datetime) -> float:
        """Seconds since the beat (never negative: clocks of two machines may disagree)."""
        return max(0.0, (now - self.at).total_seconds())


def beat(queue: JobQueue, worker: str, now: datetime) -> None:
    """Record that *worker* is alive at *now* (overwrites the previous beat)."""
    queue.huey.put(HEARTBEAT_KEY, {"worker": worker, "at": now.isoformat()})


def last_beat(queue: JobQueue) -> WorkerBeat | None:
    """The newest beat, or None if no worker ever beat on this queue.

    :raises Exception: whatever the transport raises when it cannot be reached.
    """
    data = queue.huey.get(HEARTBEAT_KEY, peek=True)
    if not isinstance(data, dict):
        return None
    return WorkerBeat(worker=str(data["worker"]), at=datetime.fromisoformat(str(data["at"])))
