"""Status of a fleet with migdash's ProbePool next to the physical floor, in one run.

Prints, each with its baseline and the ratio:
  * warm status, N SQLite targets (default 1,000): ``ProbePool.probe`` over
    held connections, sequentially and from 8 threads, against the warm floor:
    a bare ``SELECT version_num`` on already-used ``sqlite3`` connections
    (the median of several passes, like migdash's own warm figure);
  * warm status, M PostgreSQL databases (default 500, ``--pg-targets``)
    against a raw psycopg cursor on already-used connections, likewise;
  * cold status of those databases (``probe_many`` on a new pool, 8 threads)
    against in-process connect-per-check (psycopg connect, SELECT, close)
    on 8 threads, while other processes load the CPUs (``--spinners``), and
    how many healthy databases were reported unreachable (must be 0);
  * optionally (``--alembic-sample``), ``alembic current`` in a shell loop.

The PostgreSQL part needs a server URL (``--pg-url``, or
``MIGDASH_TEST_POSTGRES_URL``) whose user may create databases; the databases
(``migdash_bench_NNNN``) are kept for the next run (``--drop`` removes them).
The server needs ``max_connections`` above the number of targets: each side
holds one connection per database while it is measured, never both at once.

Usage: python bench/probe_bench.py [--sqlite-targets 1000] [--pg-targets 500] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from migdash.engine.probe import ProbePool, ProbeRequest
from migdash.scaffold import RevisionSpec, migrate_database, write_project

REVISIONS = 30
TEMPLATE_REVISIONS = (5, 12, 20, 30)
THREADS = 8
SELECT = "SELECT version_num FROM alembic_version"


def build_sqlite(root: Path, size: int) -> tuple[Path, list[Path]]:
    """A 30-revision project and *size* SQLite databases copied from a few real templates."""
    project = root / "project"
    if not project.exists():
        specs = [
            RevisionSpec(f"r{i:04d}", f"r{i - 1:04d}" if i else None, f"step {i}", table=f"t{i}")
            for i in range(REVISIONS)
        ]
        write_project(project, specs)
    templates = []
    for at in TEMPLATE_REVISIONS:
        path = root / f"template_{at}.db"
        if not path.exists():
            migrate_database(project, f"sqlite:///{path}", f"r{at - 1:04d}")
        templates.append(path)
    dbs = []
    for i in range(size):
        path = root / "dbs" / f"t{i:05d}.db"
        path.parent.mkdir(exist_ok=True)
        if not path.exists():
            shutil.copyfile(templates[i % len(templates)], path)
        dbs.append(path)
    return project, dbs


def median_pass(one_pass: Callable[[], object], runs: int) -> float:
    """Median seconds of *runs* passes (everything already warm)."""
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        one_pass()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def threaded(items: Sequence[Any], work: Callable[[Any], object]) -> Callable[[], object]:
    """One pass of *work* over *items*, split into THREADS slices run at once."""
    slices = [items[i::THREADS] for i in range(THREADS)]
    executor = ThreadPoolExecutor(max_workers=THREADS)

    def one_pass() -> None:
        list(executor.map(lambda part: [work(item) for item in part], slices))

    return one_pass


class Figures:
    """Paired measurements: each round times migdash and its baseline back to back.

    The machine is shared; pairing keeps a ratio meaningful while its speed
    drifts, and the median of the rounds' ratios is what is reported.
    """

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}
        self.unreachable = 0

    def add(self, name: str, seconds: float) -> None:
        self.times.setdefault(name, []).append(seconds)

    def row(self, what: str, base: str, count: int, goal: float) -> None:
        measured, baseline = self.times[what], self.times[base]
        ratio = statistics.median(m / b for m, b in zip(measured, baseline, strict=True))
        verdict = "ok" if ratio <= goal else "OVER GOAL"
        print(
            f"  {what:<32} {statistics.median(measured) / count * 1e6:>8.1f} us/target   "
            f"{base:<29} {statistics.median(baseline) / count * 1e6:>8.1f} us/target   "
            f"{ratio:>5.2f}x  (goal <= {goal}x: {verdict})"
        )


def migdash_round(
    figures: Figures, pool: ProbePool, requests: list[ProbeRequest], runs: int
) -> None:
    """Sequential ``probe``, 8 threads of ``probe``, and ``probe_many`` (what pages call)."""
    sequential = median_pass(lambda: [pool.probe(r) for r in requests], runs)
    figures.add("ProbePool.probe, sequential", sequential)
    figures.add("ProbePool.probe, 8 threads", median_pass(threaded(requests, pool.probe), runs))
    figures.add("ProbePool.probe_many", median_pass(lambda: pool.probe_many(requests), runs))


def floor_round(
    figures: Figures, connections: list[Any], read: Callable[[Any], object], runs: int
) -> None:
    figures.add("floor, sequential", median_pass(lambda: [read(c) for c in connections], runs))
    figures.add("floor, 8 threads", median_pass(threaded(connections, read), runs))


def warm_pool(requests: list[ProbeRequest], workers: int = 16) -> ProbePool:
    """A pool that has answered for every target (a cold pass, re-probing what failed)."""
    pool = ProbePool(timeout=5.0, max_workers=workers)
    failed = requests
    for attempt in range(5):
        failed = [r for r, p in zip(failed, pool.probe_many(failed), strict=True) if p.error]
        if attempt == 0 and failed:
            print(f"  (cold warm-up pass: {len(failed)} of {len(requests)} reported unreachable)")
        if not failed:
            return pool
    raise SystemExit(f"{len(failed)} targets never answered")


def sqlite_read(connection: sqlite3.Connection) -> object:
    return connection.execute(SELECT).fetchall()


def sqlite_figures(dbs: list[Path], rounds: int, runs: int) -> Figures:
    """Both sides held open throughout; the rounds alternate migdash and the floor."""
    figures = Figures()
    requests = [ProbeRequest(f"sqlite:///{db}") for db in dbs]
    pool = warm_pool(requests)
    connections = [sqlite3.connect(db, check_same_thread=False) for db in dbs]
    try:
        floor_round(Figures(), connections, sqlite_read, 1)  # warm-up, not counted
        for _ in range(rounds):
            migdash_round(figures, pool, requests, runs)
            floor_round(figures, connections, sqlite_read, runs)
    finally:
        pool.close()
        for connection in connections:
            connection.close()
    return figures


def build_postgres(server_url: str, count: int) -> list[str]:
    """``migdash_bench_NNNN`` databases at one revision, made from a template if missing."""
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    server = sa.make_url(server_url)
    names = [f"migdash_bench_{i:04d}" for i in range(count)]
    with admin.connect() as connection:
        existing = set(connection.exec_driver_sql("SELECT datname FROM pg_database").scalars())
        if "migdash_bench_template" not in existing:
            connection.exec_driver_sql("CREATE DATABASE migdash_bench_template")
            template = sa.create_engine(server.set(database="migdash_bench_template"))
            with template.begin() as setup:
                setup.exec_driver_sql(
                    "CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"
                )
                setup.exec_driver_sql("INSERT INTO alembic_version VALUES ('r0029')")
            template.dispose()
        missing = [n for n in names if n not in existing]
        for i, name in enumerate(missing):
            connection.exec_driver_sql(f"CREATE DATABASE {name} TEMPLATE migdash_bench_template")
            if i % 50 == 49:
                print(f"  created {i + 1} of {len(missing)} databases", flush=True)
    admin.dispose()
    return [server.set(database=n).render_as_string(hide_password=False) for n in names]


def drop_postgres(server_url: str) -> None:
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        names = connection.exec_driver_sql(
            "SELECT datname FROM pg_database WHERE datname LIKE 'migdash\\_bench\\_%'"
        ).scalars()
        for name in list(names):
            connection.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
    admin.dispose()


def libpq_params(url: str) -> dict[str, Any]:
    parsed = sa.make_url(url)
    return {
        "host": parsed.host,
        "port": parsed.port or 5432,
        "user": parsed.username,
        "password": parsed.password,
        "dbname": parsed.database,
    }


def postgres_read(connection: Any) -> object:
    with connection.cursor() as cursor:
        cursor.execute(SELECT)
        return cursor.fetchall()


def postgres_figures(urls: list[str], rounds: int, runs: int) -> Figures:
    """Rounds alternate migdash and the floor; only one side holds its connections at a time.

    Both at once would need twice as many connections as there are
    databases (1,000 for 500), beyond a usual ``max_connections``.
    """
    import psycopg

    figures = Figures()
    requests = [ProbeRequest(u) for u in urls]
    for _ in range(rounds):
        pool = warm_pool(requests)
        migdash_round(figures, pool, requests, runs)
        pool.close()
        connections = [psycopg.connect(**libpq_params(u), autocommit=True) for u in urls]
        floor_round(Figures(), connections, postgres_read, 1)  # warm-up, not counted
        floor_round(figures, connections, postgres_read, runs)
        for connection in connections:
            connection.close()
    return figures


def cold_figures(urls: list[str], rounds: int) -> Figures:
    """Cold ``probe_many`` (new pool, 8 threads) and connect-per-check, alternated."""
    import psycopg

    params = [libpq_params(u) for u in urls]

    def connect_per_check(p: dict[str, Any]) -> object:
        with psycopg.connect(**p, autocommit=True) as connection:
            return connection.execute(SELECT).fetchall()

    requests = [ProbeRequest(u) for u in urls]
    figures = Figures()
    with ThreadPoolExecutor(max_workers=THREADS) as executor:
        for _ in range(rounds):
            pool = ProbePool(timeout=5.0, max_workers=THREADS)
            started = time.perf_counter()
            results = pool.probe_many(requests)
            figures.add("probe_many, new pool, 8 threads", time.perf_counter() - started)
            figures.unreachable += sum(1 for r in results if r.error)
            pool.close()
            started = time.perf_counter()
            list(executor.map(connect_per_check, params))
            figures.add("connect-per-check, 8 threads", time.perf_counter() - started)
    return figures


def alembic_loop(root: Path, project: Path, sample: list[Path]) -> float:
    """Seconds per target of `alembic current` run in a bash loop (process start included)."""
    inis = []
    for db in sample:
        ini = root / "ini" / f"{db.stem}.ini"
        ini.parent.mkdir(exist_ok=True)
        ini.write_text(f"[alembic]\nscript_location = {project}\nsqlalchemy.url = sqlite:///{db}\n")
        inis.append(str(ini))
    alembic = str(Path(sys.executable).parent / "alembic")
    script = f'for ini in "$@"; do "{alembic}" -c "$ini" current >/dev/null; done'
    started = time.perf_counter()
    subprocess.run(["bash", "-c", script, "loop", *inis], check=True)  # noqa: S603, S607
    return (time.perf_counter() - started) / len(sample)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sqlite-targets", type=int, default=1000)
    parser.add_argument("--pg-targets", type=int, default=500)
    parser.add_argument("--pg-url", default=os.environ.get("MIGDASH_TEST_POSTGRES_URL"))
    parser.add_argument("--rounds", type=int, default=5, help="alternations of migdash/floor")
    parser.add_argument("--runs", type=int, default=3, help="warm passes per round (median)")
    parser.add_argument("--cold-rounds", type=int, default=5)
    parser.add_argument(
        "--spinners", type=int, default=2, help="CPU-loading processes during the cold rounds"
    )
    parser.add_argument("--alembic-sample", type=int, default=0, help="0: skip the loop")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--drop", action="store_true", help="drop the bench databases and stop")
    args = parser.parse_args()
    if args.drop:
        drop_postgres(args.pg_url)
        return
    root = args.workdir or Path(tempfile.mkdtemp(prefix="migdash-bench-"))
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")

    project, dbs = build_sqlite(root, args.sqlite_targets)
    count = len(dbs)
    figures = sqlite_figures(dbs, args.rounds, args.runs)
    print(f"warm status, {count} SQLite targets ({args.rounds} rounds of {args.runs} passes)")
    figures.row("ProbePool.probe, sequential", "floor, sequential", count, 3)
    figures.row("ProbePool.probe, 8 threads", "floor, 8 threads", count, 3)
    figures.row("ProbePool.probe_many", "floor, sequential", count, 3)
    if args.alembic_sample:
        per_target = alembic_loop(root, project, dbs[: args.alembic_sample])
        print(f"  alembic current in a shell loop: {per_target * 1e3:.0f} ms/target")

    if not args.pg_url or args.pg_targets < 1:
        print("PostgreSQL: skipped (no --pg-url / MIGDASH_TEST_POSTGRES_URL)")
        return
    urls = build_postgres(args.pg_url, args.pg_targets)
    count = len(urls)
    figures = postgres_figures(urls, args.rounds, args.runs)
    print(f"warm status, {count} PostgreSQL databases ({args.rounds} rounds of {args.runs} passes)")
    figures.row("ProbePool.probe, sequential", "floor, sequential", count, 2)
    figures.row("ProbePool.probe, 8 threads", "floor, 8 threads", count, 2)
    figures.row("ProbePool.probe_many", "floor, 8 threads", count, 2)
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])  # noqa: S603
        for _ in range(args.spinners)
    ]
    try:
        cold = cold_figures(urls, args.cold_rounds)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    print(
        f"cold status, {count} PostgreSQL databases ({args.cold_rounds} rounds, alternated; "
        f"{args.spinners} processes spinning on the CPU meanwhile)"
    )
    cold.row("probe_many, new pool, 8 threads", "connect-per-check, 8 threads", count, 1.2)
    print(f"  reported unreachable (all are healthy): {cold.unreachable}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
