"""The one value jobs functions take for what they need besides a session.

Built by the app factory (``migdash.services``) and by the worker, so a
function signature says ``services: JobServices`` instead of threading a
session factory, a graph catalog, a probe pool and a queue through every
call.  Also here: "enqueue after commit", so a job id reaches the queue only
once the transaction that created or approved the job has committed, at
whichever boundary commits it, and never when it rolls back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from migdash.engine.catalog import GraphCatalog
from migdash.engine.probe import ProbePool
from migdash.jobs.queue import JobQueue

_PENDING = "migdash_enqueue_after_commit"


@dataclass(frozen=True)
class JobServices:
    sessions: sessionmaker[Session]
    catalog: GraphCatalog
    probes: ProbePool
    queue: JobQueue


def enqueue_after_commit(session: Session, job_id: int) -> None:
    """Submit "run job *job_id*" when *session*'s transaction commits (dropped on rollback)."""
    session.info.setdefault(_PENDING, []).append(job_id)


def bind_queue(sessions: sessionmaker[Session], queue: JobQueue) -> None:
    """Wire :func:`enqueue_after_commit` for every session of *sessions*."""

    def submit(session: Session) -> None:
        ids = session.info.pop(_PENDING, [])
        if ids:
            queue.submit(ids)

    def forget(session: Session, *_args: Any) -> None:
        session.info.pop(_PENDING, None)

    sa.event.listen(sessions, "after_commit", submit)
    sa.event.listen(sessions, "after_soft_rollback", forget)
