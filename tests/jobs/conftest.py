"""Fixtures for the jobs suite: requests through the real CLI, the real queue, real workers.

Two ways to run what is queued:

- ``run_queue()`` drains the app's own Huey queue in this process through a
  :class:`~migdash.jobs.worker.Worker` (what one consumer thread does), for
  tests about what a job does;
- ``start_worker()`` starts ``python -m migdash worker`` processes on the
  same instance folder and metadata DB, for tests about the worker process
  itself (locks between threads, ``kill -9``, several workers on Redis).
  They are always stopped at teardown.

The Redis fixture follows the root conftest's servers: the URL comes from
``MIGDASH_TEST_REDIS_URL``, a missing or dead server skips locally and fails
under ``CI=true``, and the database is flushed before and after each test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import pytest
import redis
from click.testing import Result
from flask import Flask
from flask.testing import FlaskCliRunner

from migdash import create_app
from migdash.cli import main
from migdash.jobs.consumer import build_worker
from migdash.jobs.records import job_log
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import Job, JobState

HEARTBEAT_TIMEOUT = 3.0
"""Seconds without a heartbeat before a running job counts as interrupted (30 in production)."""


# --- the CLI ------------------------------------------------------------------------------


@pytest.fixture
def cli(runner: FlaskCliRunner) -> Callable[..., Result]:
    """Run ``migdash ARGS`` against the test app; by default insist on exit code 0."""

    def invoke(*args: str, ok: bool = True) -> Result:
        result = runner.invoke(main, list(args))
        if ok:
            assert result.exit_code == 0, (result.output, result.exception)
        return result

    return invoke


@pytest.fixture
def cli_json(cli: Callable[..., Result]) -> Callable[..., Any]:
    """Run ``migdash ARGS --json`` and parse what it printed."""

    def invoke(*args: str) -> Any:
        return json.loads(cli(*args, "--json").stdout)

    return invoke


@pytest.fixture
def status(cli_json: Callable[..., Any]) -> Callable[[], dict[str, dict[str, Any]]]:
    """``migdash status --json`` (a fresh probe of every target), keyed by target name."""

    def read() -> dict[str, dict[str, Any]]:
        return {report["target"]: report for report in cli_json("status")}

    return read


# --- the registry -------------------------------------------------------------------------


@pytest.fixture
def register(app: Flask) -> Callable[..., None]:
    """Register a ``make_project`` project and its targets (``name=url``) in environment dev."""

    def factory(project: Any, environment: str = "dev", **urls: str) -> None:
        with services_of(app).sessions() as session:
            registry.add_project(session, project.name, str(project.location))
            for name, url in urls.items():
                registry.add_target(
                    session, name, project=project.name, environment=environment, url=url
                )
            session.commit()

    return factory


# --- reading jobs back --------------------------------------------------------------------


@pytest.fixture
def load_job(app: Flask) -> Callable[[int], Job]:
    """The job row as it is now (a fresh session each call, detached afterwards)."""

    def load(job_id: int) -> Job:
        with services_of(app).sessions() as session:
            job = session.get(Job, job_id)
            assert job is not None, f"no job {job_id}"
            return job

    return load


@pytest.fixture
def log_lines(app: Flask) -> Callable[[int], list[str]]:
    def read(job_id: int) -> list[str]:
        with services_of(app).sessions() as session:
            return [line.line for line in job_log(session, job_id)]

    return read


@pytest.fixture
def wait_for_jobs(load_job: Callable[[int], Job]) -> Callable[..., list[Job]]:
    """Poll until every job is in a terminal state (or *until* says so); fail after *timeout*."""

    def wait(
        job_ids: list[int], timeout: float = 30.0, until: Callable[[list[Job]], bool] | None = None
    ) -> list[Job]:
        done = until or (lambda jobs: all(JobState(j.state).terminal for j in jobs))
        deadline = time.monotonic() + timeout
        while True:
            jobs = [load_job(i) for i in job_ids]
            if done(jobs):
                return jobs
            if time.monotonic() > deadline:
                pytest.fail(
                    f"jobs not done after {timeout} s: "
                    + ", ".join(f"{j.id}={j.state} ({j.note})" for j in jobs)
                )
            time.sleep(0.1)

    return wait


# --- running the queue in this process ---------------------------------------------------


@pytest.fixture
def run_queue(app: Flask) -> Callable[[], int]:
    """Execute every message waiting in the app's Huey queue with an in-process Worker."""
    services = services_of(app)
    build_worker(services)

    def drain() -> int:
        huey = services.queue.huey
        executed = 0
        while (task := huey.dequeue()) is not None:
            huey.execute(task)
            executed += 1
        return executed

    return drain


# --- worker processes ---------------------------------------------------------------------


@pytest.fixture
def start_worker(app: Flask, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start ``python -m migdash worker`` on the test app's instance; stopped at teardown.

    Its output goes to ``worker-N.log`` in the test's folder, shown when a test fails.
    """
    settings = services_of(app).settings
    started: list[tuple[subprocess.Popen[bytes], IO[bytes], Path]] = []

    def start(threads: int = 2, queue_url: str | None = None) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MIGDASH_")}
        env.update(
            MIGDASH_INSTANCE=settings["MIGDASH_INSTANCE"],
            MIGDASH_DATABASE_URL=settings["MIGDASH_DATABASE_URL"],
            MIGDASH_JOB_HEARTBEAT_TIMEOUT=str(HEARTBEAT_TIMEOUT),
            MIGDASH_WORKER_THREADS=str(threads),
        )
        if queue_url:
            env["MIGDASH_QUEUE_URL"] = queue_url
        log_path = tmp_path / f"worker-{len(started)}.log"
        log = log_path.open("wb")
        process = subprocess.Popen(  # noqa: S603 - our own module
            [sys.executable, "-m", "migdash", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        started.append((process, log, log_path))
        return process

    yield start
    for process, log, log_path in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()
        print(f"--- {log_path.name} (exit {process.returncode}) ---")
        print(log_path.read_text(errors="replace")[-4000:])


# --- Redis --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server() -> str:
    url = os.environ.get("MIGDASH_TEST_REDIS_URL")
    problem = None
    if not url:
        problem = "MIGDASH_TEST_REDIS_URL is not set (./dev test starts Redis and sets it)"
    else:
        try:
            with redis.Redis.from_url(url, socket_connect_timeout=3) as client:
                client.ping()
        except redis.RedisError as exc:
            problem = f"Redis at MIGDASH_TEST_REDIS_URL is not reachable: {exc}"
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {problem}")
        pytest.skip(problem)
    assert url is not None
    return _own_database(url)


def _own_database(url: str) -> str:
    """Under pytest-xdist each worker flushes a Redis database of its own (gw0 -> 1, gw1 -> 2)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return url
    return urlsplit(url)._replace(path=f"/{int(worker[2:]) + 1}").geturl()


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """The test Redis database, flushed before and after the test."""
    with redis.Redis.from_url(redis_server) as client:
        client.flushdb()
    yield redis_server
    with redis.Redis.from_url(redis_server) as client:
        client.flushdb()


@pytest.fixture
def make_app(app: Flask) -> Iterator[Callable[..., Flask]]:
    """Another app on the same instance folder and metadata DB, with *overrides* (e.g. a queue)."""
    built: list[Flask] = []
    settings = services_of(app).settings

    def factory(**overrides: Any) -> Flask:
        other = create_app(
            {
                "TESTING": True,
                "MIGDASH_INSTANCE": settings["MIGDASH_INSTANCE"],
                "MIGDASH_DATABASE_URL": settings["MIGDASH_DATABASE_URL"],
                "MIGDASH_SECRET_KEY": "test-secret-key",
                "MIGDASH_PROBE_TIMEOUT": 3.0,
                **overrides,
            }
        )
        built.append(other)
        return other

    yield factory
    for other in built:
        services_of(other).probes.close()
        services_of(other).db_engine.dispose()
