"""``migdash worker`` processes: a job runs at most once, whatever happens to its worker."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from migdash.cli import main
from migdash.scaffold import RevisionSpec
from migdash.services import services_of
from migdash.store.models import TargetLease
from tests.conftest import alive, migrate_to
from tests.jobs.conftest import HEARTBEAT_TIMEOUT


def started_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("started on ")]


def runners_of(worker_pid: int) -> list[int]:
    """Live job runners started for *worker_pid*: children of its fork server (Linux ``/proc``).

    A runner is forked, so its command line is the fork server's; its name
    (``/proc/PID/comm``) says ``migdash-runner``.
    """
    processes = _processes()
    servers = {
        pid
        for pid, (parent, _name, argv) in processes.items()
        if parent == worker_pid and b"migdash.engine.forkserver" in argv
    }
    return [
        pid
        for pid, (parent, name, _argv) in processes.items()
        if parent in servers and name == "migdash-runner"
    ]


def still_running(pids: list[int]) -> list[int]:
    """Those of *pids* that are still alive."""
    return [pid for pid in pids if alive(pid)]


def _processes() -> dict[int, tuple[int, str, bytes]]:
    return _processes_of(int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit())


def _processes_of(pids: Iterable[int]) -> dict[int, tuple[int, str, bytes]]:
    """pid -> (parent pid, name, command line) of each of *pids* still in ``/proc``."""
    found = {}
    for pid in pids:
        entry = Path("/proc") / str(pid)
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes()
            name = (entry / "comm").read_text().strip()
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        found[pid] = (parent, name, argv)
    return found


def busy_sessions(url: str) -> int:
    """Backends on this PostgreSQL database doing something (idle pooled probes aside)."""
    db_engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with db_engine.connect() as connection:
            return int(
                connection.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND state <> 'idle'"
                ).scalar_one()
            )
    finally:
        db_engine.dispose()


def schema_of(url: str) -> tuple[set[str], list[str]]:
    db_engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with db_engine.connect() as connection:
            tables = set(sa.inspect(connection).get_table_names())
            versions = [
                row[0]
                for row in connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            ]
        return tables, versions
    finally:
        db_engine.dispose()


@pytest.mark.server
def test_killed_worker_leaves_the_job_interrupted_and_it_never_runs_again(
    app: Flask,
    make_project: Callable[..., Any],
    register: Callable[..., None],
    cli_json: Callable[..., Any],
    start_worker: Callable[..., Any],
    wait_for_jobs: Callable[..., list[Any]],
    load_job: Callable[[int], Any],
    log_lines: Callable[[int], list[str]],
    postgres_url: str,
) -> None:
    project = make_project(
        [
            RevisionSpec("a1", None, "create accounts", table="accounts"),
            RevisionSpec(
                "b2",
                "a1",
                "slow orders",
                upgrade_body=(
                    'op.execute("SELECT pg_sleep(5)")\n'
                    'op.create_table("orders", sa.Column("id", sa.Integer, primary_key=True))\n'
                ),
            ),
        ]
    )
    migrate_to(project, postgres_url, "a1")
    register(project, pg=postgres_url)
    job_id = cli_json("upgrade", "pg", "heads")["id"]
    doomed = start_worker(threads=1)
    (running,) = wait_for_jobs(
        [job_id],
        timeout=30,
        until=lambda jobs: any(
            "Running upgrade a1 -> b2" in line for line in log_lines(jobs[0].id)
        ),
    )
    assert running.state == "running"
    runners = runners_of(doomed.pid)
    assert len(runners) == 1

    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait()
    deadline = time.monotonic() + 5
    while still_running(runners) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert still_running(runners) == [], "the migration process died with its worker"
    start_worker(threads=1)
    (job,) = wait_for_jobs([job_id], timeout=30)

    assert job.state == "interrupted"
    lapse = (job.finished_at - job.heartbeat_at).total_seconds()
    assert lapse >= HEARTBEAT_TIMEOUT, "reaped only once the heartbeat had lapsed"
    assert "stopped sending heartbeats" in job.error
    assert job.started_at == running.started_at
    assert job.worker == running.worker
    assert job.result_revisions == ["a1"], "the target was re-probed"
    with services_of(app).sessions() as session:
        assert session.scalars(sa.select(TargetLease)).all() == [], "the lease was released"
    assert any(line.startswith("interrupted: worker") for line in log_lines(job_id))

    # The message arrives again (a transport may redeliver): the fresh worker must skip it.
    services_of(app).queue.submit([job_id])
    deadline = time.monotonic() + 15
    while services_of(app).queue.pending_count() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert services_of(app).queue.pending_count() == 0, "the fresh worker took the message"
    time.sleep(0.5)
    job = load_job(job_id)
    assert (job.state, job.started_at) == ("interrupted", running.started_at)
    assert len(started_lines(log_lines(job_id))) == 1

    deadline = time.monotonic() + 15
    while busy_sessions(postgres_url) and time.monotonic() < deadline:
        time.sleep(0.2)  # the orphaned backend finishes its pg_sleep, then rolls back
    assert busy_sessions(postgres_url) == 0
    assert schema_of(postgres_url) == ({"accounts", "alembic_version"}, ["a1"]), (
        "PostgreSQL rolled the interrupted revision back"
    )


@pytest.mark.server
def test_two_workers_on_one_redis_queue_run_every_job_exactly_once(
    make_app: Callable[..., Flask],
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    register: Callable[..., None],
    start_worker: Callable[..., Any],
    wait_for_jobs: Callable[..., list[Any]],
    log_lines: Callable[[int], list[str]],
    status: Callable[[], dict[str, Any]],
    redis_url: str,
) -> None:
    project = make_project("linear")
    names = [f"shop{i:02d}" for i in range(10)]
    register(project, **{name: make_target(project, at="a1", name=name) for name in names})
    redis_app = make_app(MIGDASH_QUEUE_URL=redis_url)
    runner = redis_app.test_cli_runner()
    start_worker(threads=2, queue_url=redis_url)
    start_worker(threads=2, queue_url=redis_url)

    ids = []
    for _ in range(2):  # one pending job per target: the second round after the first ends
        round_ids = []
        for name in names:
            result = runner.invoke(main, ["upgrade", name, "+1", "--json"])
            assert result.exit_code == 0, (result.output, result.exception)
            round_ids.append(json.loads(result.stdout)["id"])
        wait_for_jobs(round_ids, timeout=120)
        ids += round_ids
    jobs = wait_for_jobs(ids, timeout=120)

    assert [j.state for j in jobs] == ["succeeded"] * 20, [(j.id, j.state, j.error) for j in jobs]
    for job in jobs:
        assert len(started_lines(log_lines(job.id))) == 1, (job.id, log_lines(job.id))
    reports = status()
    assert {name: reports[name]["current"] for name in names} == {name: ["c3"] for name in names}
    by_target: dict[str, list[Any]] = {}
    for job in jobs:
        by_target.setdefault(job.target_name, []).append(job)
    for pair in by_target.values():
        first, second = sorted(pair, key=lambda j: j.started_at)
        assert first.finished_at <= second.started_at
        assert (first.result_revisions, second.result_revisions) == (["b2"], ["c3"])
    share = Counter(job.worker for job in jobs)
    print(f"jobs per worker: {dict(share)}")
