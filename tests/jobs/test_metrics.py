"""``/metrics``: Prometheus text that prometheus-client parses, whose values follow real jobs.

The values are read from the metadata DB at scrape time, so a job run by a
worker (here: the app's own queue drained in-process, as one consumer thread
does) shows in the next scrape of any web process.  The job-duration
histogram is aggregated in SQL with one expression per dialect; it is checked
on SQLite, PostgreSQL and MariaDB against durations set by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from migdash.jobs import metrics
from migdash.jobs.heartbeat import beat
from migdash.jobs.metrics import job_durations
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import Base, Job, JobState, Role, TargetLease, utcnow
from migdash.store.session import create_db_engine
from migdash.store.tokens import create_token
from migdash.store.users import create_user, get_user

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def token(app: Flask) -> str:
    """A viewer's API token: the least a scraper needs."""
    with services_of(app).sessions() as session:
        create_user(session, "prometheus", "scraper-password", Role.VIEWER)
        plaintext, _ = create_token(session, get_user(session, "prometheus"), "scrape", utcnow())
        session.commit()
    return plaintext


def scrape(client: FlaskClient, token: str) -> Samples:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    samples: Samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_metrics_follow_a_job_that_runs(
    app: Flask,
    client: FlaskClient,
    token: str,
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    register: Callable[..., None],
    cli_json: Callable[..., Any],
    run_queue: Callable[[], int],
    make_app: Callable[..., Flask],
) -> None:
    project = make_project("linear", name="shop")
    register(project, **{"shop-dev": make_target(project, at="a1")})
    cli_json("status")  # the probe the overview would make: behind by two revisions
    where = {"project": "shop", "environment": "dev", "target": "shop-dev"}

    before = scrape(client, token)
    assert value(before, "migdash_targets", state="behind") == 1
    assert value(before, "migdash_targets", state="up_to_date") == 0
    assert value(before, "migdash_target_pending_revisions", **where) == 2
    assert value(before, "migdash_jobs", kind="upgrade", state="succeeded") is None
    assert (
        value(before, "migdash_job_duration_seconds_count", kind="upgrade", result="succeeded")
        is None
    )
    assert value(before, "migdash_queue_depth") == 0
    assert value(before, "migdash_queue_up") == 1

    requested = cli_json("upgrade", "shop-dev", "heads")
    queued = scrape(client, token)
    assert value(queued, "migdash_jobs", kind="upgrade", state="queued") == 1
    assert value(queued, "migdash_queue_depth") == 1
    assert run_queue() == 1

    after = scrape(client, token)
    assert value(after, "migdash_jobs", kind="upgrade", state="succeeded") == 1
    assert value(after, "migdash_jobs", kind="upgrade", state="queued") is None
    assert value(after, "migdash_queue_depth") == 0
    assert value(after, "migdash_targets", state="behind") == 0
    assert value(after, "migdash_targets", state="up_to_date") == 1
    assert value(after, "migdash_target_pending_revisions", **where) == 0
    labels = {"kind": "upgrade", "result": "succeeded"}
    assert value(after, "migdash_job_duration_seconds_count", **labels) == 1
    assert value(after, "migdash_job_duration_seconds_bucket", **labels, le="+Inf") == 1
    with services_of(app).sessions() as session:
        job = session.get(Job, requested["id"] if "id" in requested else requested[0]["id"])
        assert job is not None
        assert job.started_at
        assert job.finished_at
        took = (job.finished_at - job.started_at).total_seconds()
    assert value(after, "migdash_job_duration_seconds_sum", **labels) == pytest.approx(
        took, abs=0.01
    )
    assert value(after, "migdash_target_probe_duration_seconds", **where) is not None
    other = make_app().test_client()  # another web process: the same values, read from the DB
    assert scrape(other, token) == after


def test_a_job_waiting_for_its_targets_lock_is_reported(
    app: Flask,
    client: FlaskClient,
    token: str,
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    register: Callable[..., None],
    cli_json: Callable[..., Any],
    run_queue: Callable[[], int],
) -> None:
    """Another worker's job holds the target's lease: the worker leaves the job queued, waiting."""
    project = make_project("linear", name="shop")
    register(project, **{"shop-dev": make_target(project, at="a1")})
    with services_of(app).sessions() as session:
        target = registry.get_target(session, "shop-dev")
        holder = Job(
            kind="upgrade",
            project_name="shop",
            requested_by="x",
            state=JobState.RUNNING,
            started_at=utcnow(),
            heartbeat_at=utcnow(),
        )
        session.add(holder)
        session.flush()
        session.add(TargetLease(target_id=target.id, job_id=holder.id, worker="elsewhere:1"))
        session.commit()
    assert value(scrape(client, token), "migdash_jobs_waiting_for_lock") == 0
    assert value(scrape(client, token), "migdash_target_leases") == 1
    waiting = cli_json("upgrade", "shop-dev", "heads")["id"]
    run_queue()
    with services_of(app).sessions() as session:
        job = session.get(Job, waiting)
        assert job is not None
        assert job.state == JobState.QUEUED
        assert job.note is not None
        assert job.note.startswith(f"waiting for lock held by job {holder.id} on elsewhere:1")
    samples = scrape(client, token)
    assert value(samples, "migdash_jobs_waiting_for_lock") == 1
    assert 0 <= (value(samples, "migdash_lock_wait_oldest_seconds") or -1) < 60


def test_the_worker_heartbeat_age_is_reported(app: Flask, client: FlaskClient, token: str) -> None:
    assert value(scrape(client, token), "migdash_worker_heartbeat_age_seconds") is None
    beat(services_of(app).queue, "w1", utcnow() - timedelta(seconds=7))
    samples = scrape(client, token)
    assert 7 <= (value(samples, "migdash_worker_heartbeat_age_seconds") or 0) < 30


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic eDp5"}],
    ids=["no token", "wrong token", "not bearer"],
)
def test_metrics_need_an_api_token(client: FlaskClient, headers: dict[str, str]) -> None:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_a_signed_in_session_is_not_a_token(login: Callable[..., FlaskClient]) -> None:
    assert login(Role.ADMIN).get("/metrics").status_code == 401


def _durations_on(url: str) -> dict[tuple[str, str], tuple[list[tuple[str, float]], float]]:
    """Four finished jobs with known run times (and a queued one) in a fresh metadata DB.

    Whole seconds: MariaDB's DATETIME keeps no fraction.  SQLite's julianday
    arithmetic is exact to about 50 µs, hence the tolerance.
    """
    db_engine = create_db_engine(url)
    Base.metadata.create_all(db_engine)
    start = utcnow().replace(microsecond=0)
    runs = [
        ("upgrade", "succeeded", 0.0),
        ("upgrade", "succeeded", 70.0),
        ("upgrade", "failed", 4000.0),
        ("stamp", "succeeded", 2.0),
    ]
    try:
        with sa.orm.Session(db_engine) as session:
            for kind, state, seconds in runs:
                session.add(
                    Job(
                        kind=kind,
                        project_name="p",
                        requested_by="x",
                        state=JobState(state),
                        started_at=start,
                        finished_at=start + timedelta(seconds=seconds),
                    )
                )
            session.add(Job(kind="upgrade", project_name="p", requested_by="x"))
            session.commit()
            return job_durations(session)
    finally:
        Base.metadata.drop_all(db_engine)
        db_engine.dispose()


def _check_durations(found: dict[tuple[str, str], tuple[list[tuple[str, float]], float]]) -> None:
    buckets, total = found[("upgrade", "succeeded")]
    assert total == pytest.approx(70.0, abs=1e-3)
    assert dict(buckets) == {
        "1.0": 1,
        "5.0": 1,
        "15.0": 1,
        "60.0": 1,
        "300.0": 2,
        "900.0": 2,
        "3600.0": 2,
        "+Inf": 2,
    }
    buckets, total = found[("upgrade", "failed")]
    assert (dict(buckets)["3600.0"], dict(buckets)["+Inf"], total) == (
        0,
        1,
        pytest.approx(4000, abs=1e-3),
    )
    assert found[("stamp", "succeeded")][1] == pytest.approx(2.0, abs=1e-3)
    assert set(found) == {("upgrade", "succeeded"), ("upgrade", "failed"), ("stamp", "succeeded")}


def test_job_durations_on_sqlite(tmp_path: Any) -> None:
    _check_durations(_durations_on(f"sqlite:///{tmp_path / 'm.db'}"))


def test_job_durations_of_a_dialect_without_sql_for_them(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics, "seconds_between", lambda *_: None)
    _check_durations(_durations_on(f"sqlite:///{tmp_path / 'm.db'}"))


@pytest.mark.server
def test_job_durations_on_postgresql(postgres_url: str) -> None:
    _check_durations(_durations_on(postgres_url))


@pytest.mark.server
def test_job_durations_on_mariadb(mariadb_url: str) -> None:
    _check_durations(_durations_on(mariadb_url))
