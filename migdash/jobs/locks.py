"""One mutating job per target: a lease row in the metadata DB plus the target's own lock.

The lease (``target_lease``, one row per target) works for every dialect and
shows who holds it; it stays alive by heartbeat, so a lease whose worker died
simply expires.  Where the target database has an advisory lock (PostgreSQL
``pg_try_advisory_lock``, MySQL/MariaDB ``GET_LOCK``) it is taken too, on a
connection the worker keeps open for the whole run: that also keeps out a
second migdash installation pointed at the same database.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from migdash.store.models import TargetLease
from migdash.store.session import rows_changed


@dataclass(frozen=True)
class LeaseHolder:
    job_id: int
    worker: str
    acquired_at: datetime


def acquire_lease(
    session: Session, target_id: int, job_id: int, worker: str, now: datetime, ttl: timedelta
) -> LeaseHolder | None:
    """Take the target's lease for *job_id*; return the holder instead if someone else has it.

    A lease whose heartbeat is older than *ttl* is taken over with a
    compare-and-set on its heartbeat, so two workers cannot both win it.
    Commits.
    """
    session.add(
        TargetLease(
            target_id=target_id, job_id=job_id, worker=worker, acquired_at=now, heartbeat_at=now
        )
    )
    try:
        session.commit()
        return None
    except IntegrityError:
        session.rollback()
    lease = session.get(TargetLease, target_id, populate_existing=True)
    if lease is None:  # released between our insert and our read: try once more
        return acquire_lease(session, target_id, job_id, worker, now, ttl)
    if lease.job_id == job_id:
        return None
    if lease.heartbeat_at >= now - ttl:
        return LeaseHolder(lease.job_id, lease.worker, lease.acquired_at)
    taken = rows_changed(
        session,
        sa.update(TargetLease)
        .where(TargetLease.target_id == target_id, TargetLease.heartbeat_at == lease.heartbeat_at)
        .values(job_id=job_id, worker=worker, acquired_at=now, heartbeat_at=now),
    )
    session.commit()
    if taken == 1:
        return None
    return acquire_lease(session, target_id, job_id, worker, now, ttl)


def renew_lease(session: Session, target_id: int, job_id: int, now: datetime) -> None:
    session.execute(
        sa.update(TargetLease)
        .where(TargetLease.target_id == target_id, TargetLease.job_id == job_id)
        .values(heartbeat_at=now)
    )


def release_lease(session: Session, target_id: int, job_id: int) -> None:
    """Give the lease up (only if *job_id* still holds it)."""
    session.execute(
        sa.delete(TargetLease).where(
            TargetLease.target_id == target_id, TargetLease.job_id == job_id
        )
    )


def lease_of(session: Session, target_id: int) -> TargetLease | None:
    return session.get(TargetLease, target_id)


class AdvisoryLock:
    """The target database's own lock, held on a dedicated connection while a job runs.

    SQLite has none; there the lease alone serialises migdash's jobs.
    """

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout
        self._engine: sa.Engine | None = None
        self._connection: sa.Connection | None = None
        self.name = "migdash:" + (sa.engine.make_url(url).database or "")

    @property
    def supported(self) -> bool:
        return sa.engine.make_url(self.url).get_backend_name() in {"postgresql", "mysql", "mariadb"}

    def try_acquire(self) -> bool:
        """True when the lock is now held (always, where the dialect has no such lock)."""
        if not self.supported:
            return True
        from migdash.engine.probe import create_probe_engine

        self._engine = create_probe_engine(self.url, self.timeout)
        self._connection = self._engine.connect()
        got = self._connection.execute(self._lock_sql(), {"key": self._key()}).scalar()
        self._connection.commit()
        if not got:
            self.release()
        return bool(got)

    def release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.execute(self._unlock_sql(), {"key": self._key()})
                self._connection.commit()
            except sa.exc.SQLAlchemyError:
                pass  # the connection closing below releases it anyway
            self._connection.close()
            self._connection = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def _key(self) -> int | str:
        if sa.engine.make_url(self.url).get_backend_name() == "postgresql":
            digest = hashlib.sha256(self.name.encode()).digest()
            return int.from_bytes(digest[:8], "big", signed=True)
        return self.name[:64]

    def _lock_sql(self) -> sa.TextClause:
        if sa.engine.make_url(self.url).get_backend_name() == "postgresql":
            return sa.text("SELECT pg_try_advisory_lock(:key)")
        return sa.text("SELECT GET_LOCK(:key, 0)")

    def _unlock_sql(self) -> sa.TextClause:
        if sa.engine.make_url(self.url).get_backend_name() == "postgresql":
            return sa.text("SELECT pg_advisory_unlock(:key)")
        return sa.text("SELECT RELEASE_LOCK(:key)")
