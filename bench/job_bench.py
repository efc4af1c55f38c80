"""Per-job overhead: N upgrade jobs through real ``migdash worker`` processes vs in-process Alembic.

The issue's goal: "Rollout: per-job overhead <= 50 ms over an in-process
``command.upgrade``".  Builds its own workspace (a two-revision project, N
SQLite targets at the first revision, N more for the baseline) and prints:

  * alembic in-process - ``alembic.command.upgrade(config, "heads")`` on each
                         baseline target, one after the other, in this process;
  * fresh interpreter  - the job's child as a new ``python -m migdash.jobs.runner``
                         process (how the worker started it before the fork server);
  * fork server        - the job's child as the worker starts it: forked from
                         ``migdash.engine.forkserver``, per job;
  * worker 1x1         - one ``migdash worker --threads 1``: jobs requested up
                         front, then (last finished - first started) / N;
  * worker 2x2         - two workers with two threads each on the same queue
                         (throughput: wall / N);
and the per-job overhead of each over the in-process figure.

Usage: python bench/job_bench.py [--jobs 40] [--queue-url redis://127.0.0.1:6379/7]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from migdash import create_app
from migdash.cli import main as cli_main
from migdash.config import ensure_instance
from migdash.engine.actions import ActionSpec
from migdash.engine.child import child_environment, project_folder
from migdash.engine.launch import start_child
from migdash.scaffold import RevisionSpec, migrate_database, write_project
from migdash.services import services_of
from migdash.store.models import Job, JobState

REVISIONS = [
    RevisionSpec("a1", None, "accounts", table="accounts"),
    RevisionSpec("b2", "a1", "orders", table="orders"),
]


def make_targets(root: Path, project: Path, count: int, prefix: str) -> list[str]:
    folder = root / "dbs"
    folder.mkdir(parents=True, exist_ok=True)
    template = folder / "template.db"
    if not template.exists():
        migrate_database(project, f"sqlite:///{template}", "a1")
    urls = []
    for i in range(count):
        path = folder / f"{prefix}{i:04d}.db"
        path.write_bytes(template.read_bytes())
        urls.append(f"sqlite:///{path}")
    return urls


def bench_in_process(project: Path, urls: list[str]) -> list[float]:
    times = []
    for url in urls:
        config = Config()
        config.set_main_option("script_location", str(project))
        config.set_main_option("sqlalchemy.url", url)
        started = time.perf_counter()
        command.upgrade(config, "heads")
        times.append(time.perf_counter() - started)
    return times


def bench_runner_child(project: Path, urls: list[str]) -> list[float]:
    """The child alone, started exactly as ``Worker._run_child`` starts it."""
    times = []
    for url in urls:
        spec = ActionSpec(
            kind="upgrade", script_location=str(project), url=url, revision="heads", purge=False
        )
        with tempfile.TemporaryDirectory() as scratch:
            result = Path(scratch) / "result.json"
            started = time.perf_counter()
            subprocess.run(  # noqa: PLW1510 - the result file says how it went
                [sys.executable, "-m", "migdash.jobs.runner", str(result), str(os.getpid())],
                input=json.dumps(spec.to_json()),
                capture_output=True,
                text=True,
                cwd=project_folder(str(project)),
                env=child_environment(),
            )
            times.append(time.perf_counter() - started)
            assert json.loads(result.read_text())["ok"], result.read_text()
    return times


def bench_fork_server(project: Path, urls: list[str]) -> list[float]:
    """The job's child as the worker starts it now: forked by ``migdash.engine.forkserver``.

    The fork server is started (and pays its imports) by a warm-up job on a
    spare target first, as a long-running worker has done long before.
    """

    def run(url: str) -> float:
        spec = ActionSpec(kind="upgrade", script_location=str(project), url=url, revision="heads")
        with tempfile.TemporaryDirectory() as scratch:
            result = Path(scratch) / "result.json"
            started = time.perf_counter()
            with start_child(
                "migdash.jobs.runner", [str(result)], cwd=project_folder(str(project))
            ) as child:
                child.stdin.write(json.dumps(spec.to_json()))
                child.stdin.close()
                child.stdout.read()
                child.wait()
            took = time.perf_counter() - started
            assert json.loads(result.read_text())["ok"], result.read_text()
        return took

    run(urls[0])
    return [run(url) for url in urls[1:]]


def bench_workers(
    root: Path, project: Path, urls: list[str], workers: int, threads: int, queue_url: str | None
) -> tuple[float, float, float]:
    """(per job from first start to last finish, mean started->finished, wall / N)."""
    instance = root / f"instance-{workers}x{threads}"
    ensure_instance(instance)
    settings: dict[str, Any] = {"MIGDASH_INSTANCE": str(instance)}
    if queue_url:
        settings["MIGDASH_QUEUE_URL"] = queue_url
    app = create_app({"MIGDASH_SECRET_KEY": "bench", **settings})
    services = services_of(app)
    services.upgrade_schema()
    runner = app.test_cli_runner()
    cli(runner, "project", "add", "bench", "--script-location", str(project))
    ids = []
    for i, url in enumerate(urls):
        cli(
            runner, "target", "add", f"t{i:04d}", "--project", "bench", "--env", "dev", "--url", url
        )
    for i in range(len(urls)):
        ids.append(json.loads(cli(runner, "upgrade", f"t{i:04d}", "heads", "--json"))["id"])
    started = time.perf_counter()
    processes = start_workers(settings, workers, threads)
    try:
        jobs = wait_for(services, ids)
        wall = time.perf_counter() - started
    finally:
        stop_workers(processes)
    bad = [(j.id, j.state, j.error) for j in jobs if j.state != JobState.SUCCEEDED]
    assert not bad, bad
    span = (max(j.finished_at for j in jobs) - min(j.started_at for j in jobs)).total_seconds()
    runs = [(j.finished_at - j.started_at).total_seconds() for j in jobs]
    services.probes.close()
    services.db_engine.dispose()
    return span / len(jobs), statistics.mean(runs), wall / len(jobs)


def start_workers(
    settings: dict[str, Any], count: int, threads: int
) -> list[subprocess.Popen[bytes]]:
    """*count* ``migdash worker`` processes whose only MIGDASH_ variables are *settings*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIGDASH_")}
    env.update({k: str(v) for k, v in settings.items()}, MIGDASH_WORKER_THREADS=str(threads))
    return [
        subprocess.Popen(  # noqa: S603 - our own module
            [sys.executable, "-m", "migdash", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]


def stop_workers(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait(30)


def cli(runner: Any, *args: str) -> str:
    result = runner.invoke(cli_main, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return str(result.stdout)


def wait_for(services: Any, ids: list[int], timeout: float = 600) -> list[Job]:
    deadline = time.monotonic() + timeout
    while True:
        with services.sessions() as session:
            jobs = list(session.scalars(sa.select(Job).where(Job.id.in_(ids))))
        if all(JobState(j.state).terminal for j in jobs):
            return jobs
        assert time.monotonic() < deadline, "jobs did not finish"
        time.sleep(0.05)


def report(name: str, per_job: float, baseline: float) -> None:
    print(
        f"{name:<34} {per_job * 1000:8.1f} ms/job   overhead {(per_job - baseline) * 1000:8.1f} ms"
        f"   ({per_job / baseline:5.1f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--queue-url", default=None, help="e.g. redis://127.0.0.1:6379/7")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="migdash-job-bench-") as scratch:
        root = Path(scratch)
        project = write_project(root / "project", REVISIONS)
        base = bench_in_process(project, make_targets(root, project, args.jobs, "base"))
        baseline = statistics.median(base)
        child = bench_runner_child(project, make_targets(root, project, args.jobs, "child"))
        forked = bench_fork_server(project, make_targets(root, project, args.jobs + 1, "fork"))
        one = bench_workers(root, project, make_targets(root, project, args.jobs, "w1"), 1, 1, None)
        two = bench_workers(
            root, project, make_targets(root, project, args.jobs, "w2"), 2, 2, args.queue_url
        )
    print(f"{args.jobs} upgrade jobs (a1 -> b2, SQLite); medians unless said")
    print(f"{'alembic command.upgrade in-process':<34} {baseline * 1000:8.1f} ms/job")
    report("runner child, fresh interpreter", statistics.median(child), baseline)
    report("runner child, forked (fork server)", statistics.median(forked), baseline)
    report("1 worker x 1 thread (span / N)", one[0], baseline)
    report("1 worker x 1 thread (mean run)", one[1], baseline)
    report("2 workers x 2 threads (wall / N)", two[2], baseline)
    report("2 workers x 2 threads (mean run)", two[1], baseline)
    print("goal: overhead <= 50 ms per job")


if __name__ == "__main__":
    main()
