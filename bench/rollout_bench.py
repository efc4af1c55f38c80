"""A fleet rollout through real ``migdash worker`` processes vs N x in-process Alembic.

The issue's figure: "a rollout of 1,000 SQLite targets by one revision with
2 workers against N x an in-process ``alembic.command.upgrade``"; its goal:
"per-job overhead <= 50 ms over an in-process ``command.upgrade``".  Builds
its own workspace (the two-revision project of ``job_bench``, N SQLite
targets at the first revision for the rollout and N more for the baseline,
a fresh instance folder with its SQLite metadata DB) and prints:

  * baseline     - ``alembic.command.upgrade(config, "heads")`` on each
                   baseline target, one after the other in this process, after
                   one warm-up upgrade (so imports are paid): total and per target;
  * rollout      - ``migdash rollout create … heads`` (planning every target is
                   part of the request) until the rollout has succeeded, with W
                   ``migdash worker`` processes of T threads already running:
                   wall, wall / N, and W x wall / N;
  * overhead     - per job: W x wall / N - baseline per target.  The W workers
                   run side by side (W cores; the baseline uses one), so
                   W x wall / N is what one job costs a worker, the figure to put
                   beside one in-process upgrade.  wall / N is the fleet's
                   throughput.

The waves: a canary of 10, then waves of 200 (``--canary``, ``--wave``), at
most W x T jobs at once.  A worker notices a new rollout on its reaper pass
(every 5 s with the default heartbeat time-out), so the time to the first job
is printed too.  The queue is the instance's SQLite file unless ``--queue-url``
names Redis (``redis://127.0.0.1:6379/7``); the metadata DB is the instance's
SQLite file unless ``--metadata-url`` names a PostgreSQL server (the README's
production layout), on which a database ``migdash_rollout_bench`` is created
afresh and dropped at the end.

Usage: python bench/rollout_bench.py [--targets 1000] [--workers 2] [--threads 2]
       [--canary 10] [--wave 200] [--queue-url redis://127.0.0.1:6379/7]
       [--metadata-url postgresql+psycopg://app:app@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask
from job_bench import REVISIONS, bench_in_process, cli, make_targets, start_workers, stop_workers

from migdash import create_app
from migdash.config import ensure_instance
from migdash.jobs.heartbeat import last_beat
from migdash.scaffold import write_project
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import Job
from migdash.store.rollout_models import Rollout, RolloutState

SETTLED = {
    RolloutState.SUCCEEDED,
    RolloutState.FAILED,
    RolloutState.HALTED,
    RolloutState.PAUSED,
    RolloutState.CANCELLED,
}


@dataclass(frozen=True)
class RolloutRun:
    wall: float
    """Seconds from the request to the rollout's end."""
    first_job: float
    """Seconds from the request to the first job's start."""
    span: float
    """Seconds from the first job's start to the last job's end."""
    jobs: int
    run: float
    """Median seconds from a job's start to its end."""
    wait: float
    """Median seconds from a job's request to its start."""


METADATA_DB = "migdash_rollout_bench"


@contextmanager
def metadata_database(server_url: str | None) -> Iterator[str | None]:
    """A fresh PostgreSQL database for the metadata on *server_url*, dropped afterwards."""
    if not server_url:
        yield None
        return
    server = sa.create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with server.connect() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {METADATA_DB} WITH (FORCE)")
        connection.exec_driver_sql(f"CREATE DATABASE {METADATA_DB}")
    try:
        yield sa.make_url(server_url).set(database=METADATA_DB).render_as_string(False)
    finally:
        with server.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {METADATA_DB} WITH (FORCE)")
        server.dispose()


def build_instance(
    root: Path, project: Path, urls: list[str], queue_url: str | None, metadata_url: str | None
) -> Flask:
    """A fresh instance with the project and *urls* registered as targets of ``dev``."""
    instance = root / "instance"
    ensure_instance(instance)
    settings: dict[str, Any] = {"MIGDASH_INSTANCE": str(instance), "MIGDASH_SECRET_KEY": "bench"}
    if queue_url:
        settings["MIGDASH_QUEUE_URL"] = queue_url
    if metadata_url:
        settings["MIGDASH_DATABASE_URL"] = metadata_url
    app = create_app(settings)
    services = services_of(app)
    services.upgrade_schema()
    with services.sessions() as session:
        registry.add_project(session, "bench", str(project))
        registry.add_environment(session, "dev")
        for i, url in enumerate(urls):
            registry.add_target(session, f"t{i:04d}", project="bench", environment="dev", url=url)
        session.commit()
    return app


@contextmanager
def workers(app: Flask, count: int, threads: int) -> Any:
    """*count* ``migdash worker`` processes on the app's instance, started and beating."""
    settings = services_of(app).settings
    names = ("MIGDASH_INSTANCE", "MIGDASH_SECRET_KEY", "MIGDASH_QUEUE_URL", "MIGDASH_DATABASE_URL")
    processes = start_workers({n: settings[n] for n in names if settings.get(n)}, count, threads)
    try:
        deadline = time.monotonic() + 60
        while last_beat(services_of(app).queue) is None:
            assert time.monotonic() < deadline, "no worker started"
            time.sleep(0.1)
        time.sleep(1.0)  # the others import as fast
        yield processes
    finally:
        stop_workers(processes)


def run_rollout(app: Flask, canary: int, wave: int, concurrency: int) -> RolloutRun:
    runner = app.test_cli_runner()
    requested = time.perf_counter()
    created = cli(
        runner,
        "rollout",
        "create",
        "bench",
        "heads",
        "--env",
        "dev",
        "--canary",
        str(canary),
        "--wave",
        str(wave),
        "--concurrency",
        str(concurrency),
        "--json",
    )
    rollout_id = int(json.loads(created)["id"])
    services = services_of(app)
    deadline = time.monotonic() + 3600
    while True:
        with services.sessions() as session:
            state = session.scalar(sa.select(Rollout.state).where(Rollout.id == rollout_id))
        if state in SETTLED:
            break
        assert time.monotonic() < deadline, "the rollout did not finish"
        time.sleep(0.05)
    wall = time.perf_counter() - requested
    assert state == RolloutState.SUCCEEDED, state
    with services.sessions() as session:
        jobs = list(session.scalars(sa.select(Job)))
        started = session.scalar(sa.select(Rollout.requested_at).where(Rollout.id == rollout_id))
    first = min(j.started_at for j in jobs)
    span = (max(j.finished_at for j in jobs) - first).total_seconds()
    runs = [(j.finished_at - j.started_at).total_seconds() for j in jobs]
    waits = [(j.started_at - j.requested_at).total_seconds() for j in jobs]
    return RolloutRun(
        wall,
        (first - started).total_seconds(),
        span,
        len(jobs),
        statistics.median(runs),
        statistics.median(waits),
    )


def check_migrated(urls: list[str]) -> None:
    for url in urls:
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            (current,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
        assert current == REVISIONS[-1].revision, (url, current)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="per worker")
    parser.add_argument("--canary", type=int, default=10)
    parser.add_argument("--wave", type=int, default=200)
    parser.add_argument("--queue-url", default=None, help="e.g. redis://127.0.0.1:6379/7")
    parser.add_argument(
        "--metadata-url", default=None, help="a PostgreSQL server for the metadata DB"
    )
    args = parser.parse_args()
    n = args.targets
    with tempfile.TemporaryDirectory(prefix="migdash-rollout-bench-") as scratch:
        root = Path(scratch)
        project = write_project(root / "project", REVISIONS)
        bench_in_process(project, make_targets(root, project, 1, "warm"))
        base = sum(bench_in_process(project, make_targets(root, project, n, "base")))
        urls = make_targets(root, project, n, "roll")
        with metadata_database(args.metadata_url) as metadata_url:
            app = build_instance(root, project, urls, args.queue_url, metadata_url)
            with workers(app, args.workers, args.threads):
                run = run_rollout(app, args.canary, args.wave, args.workers * args.threads)
            check_migrated(urls)
            services_of(app).probes.close()
            services_of(app).db_engine.dispose()
    report(args, base, run)


def report(args: argparse.Namespace, base: float, run: RolloutRun) -> None:
    n, w = args.targets, args.workers
    per = base / n
    print(
        f"rollout of {n} SQLite targets a1 -> b2: canary {args.canary}, waves of {args.wave}, "
        f"{w} workers x {args.threads} threads, at most {w * args.threads} jobs at once, "
        f"queue {args.queue_url or 'SQLite (instance)'}, metadata DB "
        f"{'PostgreSQL' if args.metadata_url else 'SQLite (instance)'}; {run.jobs} jobs"
    )
    print(
        f"{'baseline: N x command.upgrade in-process':<44} {base:8.2f} s   "
        f"{per * 1000:8.1f} ms/target"
    )
    print(
        f"{'rollout, request to finished (wall)':<44} {run.wall:8.2f} s   "
        f"{run.wall / n * 1000:8.1f} ms/target   ({run.wall / base:5.1f}x the baseline)"
    )
    print(
        f"{'rollout, first job start to last job end':<44} {run.span:8.2f} s   "
        f"{run.span / n * 1000:8.1f} ms/target   ({run.span / base:5.1f}x)"
    )
    print(f"{'  request to first job started':<44} {run.first_job:8.2f} s")
    print(f"{'  job request to start, median':<44} {run.wait:8.2f} s")
    print(f"{'  job start to end, median':<44} {run.run:8.2f} s")
    print(
        f"{'per job, fleet (wall / N)':<44} {run.wall / n * 1000:8.1f} ms/job   "
        f"overhead {(run.wall / n - per) * 1000:8.1f} ms   ({run.wall / n / per:5.1f}x)"
    )
    for name, total in (("wall", run.wall), ("span", run.span)):
        per_job = w * total / n
        print(
            f"{f'per job per worker ({w} x {name} / N)':<44} {per_job * 1000:8.1f} ms/job   "
            f"overhead {(per_job - per) * 1000:8.1f} ms   ({per_job / per:5.1f}x)"
        )
    print("goal: overhead <= 50 ms per job")


if __name__ == "__main__":
    main()
