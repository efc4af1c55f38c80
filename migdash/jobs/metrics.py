"""Prometheus metrics computed from the metadata DB at scrape time (a custom collector).

migdash runs as several gunicorn workers plus separate ``migdash worker``
processes, on one or many machines.  In-process counters would give each
process its own partial view (a scrape reaches one web process at random),
so nothing here counts in memory: every value is read when scraped, from the
metadata DB (the source of truth for targets and jobs) and from the queue.
Job "counts" are therefore gauges of rows per kind and state, and durations
a histogram over every finished job, computed in SQL.  A scrape costs a few
aggregate queries, whichever process answers it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy.orm import Session

from migdash.engine.state import TargetState
from migdash.jobs.context import JobServices
from migdash.jobs.heartbeat import last_beat
from migdash.status import PENDING_KNOWN, cached_status
from migdash.store.models import Job, JobState, TargetLease, utcnow
from migdash.store.queries import find_targets, latest_snapshots

DURATION_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
"""Upper bounds (seconds) of the job-duration histogram: a stamp to a long data migration."""
LOCK_WAIT_NOTE = "waiting for lock"
"""How the worker's note on a queued job starts while another holds the target's lock."""
TARGET_LABELS = ("project", "environment", "target")


class MetadataCollector:
    """Yields every migdash metric, read afresh on each :meth:`collect`."""

    def __init__(self, services: JobServices, *, now: Callable[[], datetime] = utcnow) -> None:
        self.services = services
        self.now = now

    def collect(self) -> Iterator[Metric]:
        now = self.now()
        with self.services.sessions() as session:
            yield from target_metrics(session)
            yield from job_metrics(session)
            yield from lock_metrics(session, now)
        yield from queue_metrics(self.services, now)


def target_metrics(session: Session) -> Iterator[Metric]:
    """Targets per state; per target its pending revisions and its last probe's duration."""
    targets = find_targets(session)
    reports = cached_status(session, targets)
    snapshots = latest_snapshots(session, [t.id for t in targets])
    by_state = GaugeMetricFamily(
        "migdash_targets", "Targets per state (latest probe).", labels=["state"]
    )
    counts = dict.fromkeys((s.value for s in TargetState), 0)
    pending = GaugeMetricFamily(
        "migdash_target_pending_revisions",
        "Revisions an upgrade to the tracked heads would apply (targets whose pending "
        "list is known).",
        labels=TARGET_LABELS,
    )
    probe = GaugeMetricFamily(
        "migdash_target_probe_duration_seconds",
        "How long the target's latest probe took.",
        labels=TARGET_LABELS,
    )
    for report in reports:
        counts[report.status.state.value] += 1
        labels = [report.project, report.environment, report.target]
        if report.status.state in PENDING_KNOWN:
            pending.add_metric(labels, len(report.status.pending))
        snapshot = snapshots.get(report.target_id)
        if snapshot is not None:
            probe.add_metric(labels, snapshot.elapsed_ms / 1000)
    for state, count in counts.items():
        by_state.add_metric([state], count)
    yield from (by_state, pending, probe)


def job_metrics(session: Session) -> Iterator[Metric]:
    """Jobs per kind and state, and a histogram of finished jobs' durations."""
    jobs = GaugeMetricFamily(
        "migdash_jobs", "Jobs in the metadata DB per kind and state.", labels=["kind", "state"]
    )
    rows = session.execute(
        sa.select(Job.kind, Job.state, sa.func.count()).group_by(Job.kind, Job.state)
    ).all()
    for kind, state, count in rows:
        jobs.add_metric([kind, JobState(state).value], count)
    yield jobs
    durations = HistogramMetricFamily(
        "migdash_job_duration_seconds",
        "Run time (start to finish) of jobs that ran, per kind and result.",
        labels=["kind", "result"],
    )
    for (kind, result), (buckets, total) in job_durations(session).items():
        durations.add_metric([kind, result], buckets, total)
    yield durations


def job_durations(
    session: Session,
) -> dict[tuple[str, str], tuple[list[tuple[str, float]], float]]:
    """(kind, result) -> cumulative histogram buckets and the sum of seconds, aggregated in SQL."""
    seconds = seconds_between(Job.started_at, Job.finished_at, session.get_bind().dialect.name)
    ran = sa.and_(Job.started_at.is_not(None), Job.finished_at.is_not(None))
    if seconds is None:
        return _durations_in_python(session, ran)
    query = (
        sa.select(
            Job.kind,
            Job.state,
            sa.func.count(),
            sa.func.sum(seconds),
            *(sa.func.sum(sa.case((seconds <= bound, 1), else_=0)) for bound in DURATION_BUCKETS),
        )
        .where(ran)
        .group_by(Job.kind, Job.state)
    )
    found = {}
    for kind, state, count, total, *within in session.execute(query).all():
        found[(kind, JobState(state).value)] = (_buckets(count, within), float(total or 0))
    return found


def seconds_between(start: Any, end: Any, dialect: str) -> sa.ColumnElement[Any] | None:
    """SQL for the seconds from *start* to *end* on *dialect* (None: not known here)."""
    if dialect == "sqlite":
        return (sa.func.julianday(end) - sa.func.julianday(start)) * 86400.0
    if dialect == "postgresql":
        return sa.extract("epoch", end - start)
    if dialect in ("mysql", "mariadb"):
        return sa.func.timestampdiff(sa.text("MICROSECOND"), start, end) / 1_000_000.0
    return None


def _durations_in_python(
    session: Session, ran: sa.ColumnElement[bool]
) -> dict[tuple[str, str], tuple[list[tuple[str, float]], float]]:
    """The same histogram for a dialect :func:`seconds_between` does not know."""
    grouped: dict[tuple[str, str], list[float]] = {}
    query = sa.select(Job.kind, Job.state, Job.started_at, Job.finished_at).where(ran)
    for kind, state, started, finished in session.execute(query):
        if started is None or finished is None:  # excluded by the WHERE; for the type checker
            continue
        key = (kind, JobState(state).value)
        grouped.setdefault(key, []).append((finished - started).total_seconds())
    return {
        key: (
            _buckets(len(values), [sum(v <= b for v in values) for b in DURATION_BUCKETS]),
            sum(values),
        )
        for key, values in grouped.items()
    }


def _buckets(count: int, within: Sequence[Any]) -> list[tuple[str, float]]:
    bounds = [
        (str(bound), float(n or 0)) for bound, n in zip(DURATION_BUCKETS, within, strict=True)
    ]
    return [*bounds, ("+Inf", float(count))]


def lock_metrics(session: Session, now: datetime) -> Iterator[Metric]:
    """Jobs queued behind another's lock on their target, the oldest wait, leases held."""
    waiting, oldest = session.execute(
        sa.select(
            sa.func.count(), sa.func.min(sa.func.coalesce(Job.queued_at, Job.requested_at))
        ).where(Job.state == JobState.QUEUED, Job.note.startswith(LOCK_WAIT_NOTE))
    ).one()
    yield GaugeMetricFamily(
        "migdash_jobs_waiting_for_lock",
        "Queued jobs waiting because another job or session holds their target's lock.",
        value=waiting,
    )
    yield GaugeMetricFamily(
        "migdash_lock_wait_oldest_seconds",
        "Seconds the longest-waiting of those jobs has been queued (0 when none waits).",
        value=max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0,
    )
    leases = session.scalar(sa.select(sa.func.count()).select_from(TargetLease))
    yield GaugeMetricFamily(
        "migdash_target_leases", "Targets a running job holds the lease of.", value=leases or 0
    )


def queue_metrics(services: JobServices, now: datetime) -> Iterator[Metric]:
    """The transport's depth and the newest worker heartbeat; ``migdash_queue_up`` 0 if down."""
    try:
        depth = services.queue.pending_count()
        beat = last_beat(services.queue)
    except Exception:  # noqa: BLE001 - a scrape must still report the DB's metrics
        yield GaugeMetricFamily("migdash_queue_up", "Whether the job queue answered.", value=0)
        return
    yield GaugeMetricFamily("migdash_queue_up", "Whether the job queue answered.", value=1)
    yield GaugeMetricFamily(
        "migdash_queue_depth", "Messages waiting in the job queue (transport).", value=depth
    )
    if beat is not None:
        yield GaugeMetricFamily(
            "migdash_worker_heartbeat_age_seconds",
            "Seconds since any `migdash worker` last wrote its heartbeat.",
            value=beat.age(now),
        )
