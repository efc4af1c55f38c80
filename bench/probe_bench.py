"""Probe N SQLite targets with migdash, next to a shell loop of `alembic current` and the floor.

Prints, for each N, in one run:
  * migdash cold  - first refresh: pools created, connections opened, probe + assess;
  * migdash warm  - a later refresh over pooled connections (what the overview's
                    auto-refresh pays);
  * migdash+store - warm refresh through ``refresh_status`` incl. snapshot writes;
  * alembic loop  - ``for t in sample; do alembic -c t.ini current; done`` in bash,
                    timed on a sample and extrapolated per target;
  * floor         - one bare ``SELECT version_num`` per target over already-open
                    sqlite3 connections, sequentially.
and the ratios loop/migdash and migdash/floor.

Usage: python bench/probe_bench.py [--sizes 100 1000] [--sample 20]
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from migdash.engine.catalog import GraphCatalog
from migdash.engine.probe import ProbePool, ProbeRequest
from migdash.engine.state import assess_target
from migdash.scaffold import RevisionSpec, migrate_database, write_project

REVISIONS = 30
TEMPLATE_REVISIONS = (5, 12, 20, 30)


def build_workspace(root: Path, size: int) -> tuple[Path, list[Path]]:
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


def time_migdash(project: Path, dbs: list[Path]) -> tuple[float, float, int]:
    catalog = GraphCatalog()
    pool = ProbePool(timeout=5.0, max_workers=16)
    requests = [ProbeRequest(f"sqlite:///{db}") for db in dbs]
    try:
        started = time.perf_counter()
        graph = catalog.graph(str(project))
        statuses = [assess_target(graph, probe) for probe in pool.probe_many(requests)]
        cold = time.perf_counter() - started
        warm_runs = []
        for _ in range(3):
            started = time.perf_counter()
            graph = catalog.graph(str(project))
            statuses = [assess_target(graph, probe) for probe in pool.probe_many(requests)]
            warm_runs.append(time.perf_counter() - started)
        behind = sum(1 for s in statuses if s.pending)
    finally:
        pool.close()
    return cold, min(warm_runs), behind


def time_with_store(root: Path, project: Path, dbs: list[Path]) -> float:
    """Warm refresh through migdash.status (probe, assess, snapshots) on a SQLite metadata DB."""
    from migdash.status import refresh_status
    from migdash.store import registry
    from migdash.store.session import create_db_engine, create_session_factory, upgrade_schema

    db_path = root / f"meta_{len(dbs)}.db"
    db_path.unlink(missing_ok=True)
    from cryptography.fernet import Fernet

    from migdash.store.crypto import UrlCipher

    db_engine = create_db_engine(f"sqlite:///{db_path}")
    upgrade_schema(db_engine)
    sessions = create_session_factory(db_engine, UrlCipher([Fernet.generate_key().decode()]))
    catalog, pool = GraphCatalog(), ProbePool(timeout=5.0, max_workers=16)
    with sessions() as session:
        registry.add_project(session, "bench", str(project))
        for i, db in enumerate(dbs):
            registry.add_target(
                session, f"t{i}", project="bench", environment="prod", url=f"sqlite:///{db}"
            )
        session.commit()
        targets = list(session.scalars(sa.select(registry.Target)))
        refresh_status(session, catalog, pool, targets)
        session.commit()
        started = time.perf_counter()
        refresh_status(session, catalog, pool, targets)
        session.commit()
        elapsed = time.perf_counter() - started
    pool.close()
    db_engine.dispose()
    return elapsed


def time_alembic_loop(root: Path, project: Path, sample: list[Path]) -> float:
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


def time_floor(dbs: list[Path]) -> float:
    connections = [sqlite3.connect(db) for db in dbs]
    try:
        started = time.perf_counter()
        for connection in connections:
            connection.execute("SELECT version_num FROM alembic_version").fetchall()
        return time.perf_counter() - started
    finally:
        for connection in connections:
            connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--sample", type=int, default=20, help="targets in the alembic loop")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="migdash-bench-"))
    print(f"workspace: {root}  ({REVISIONS}-revision project, SQLite targets)")
    header = (
        f"{'N':>6} {'migdash cold':>13} {'migdash warm':>13} {'+store':>9} "
        f"{'alembic loop':>13} {'floor':>9} {'loop/warm':>10} {'loop/cold':>10} "
        f"{'warm/floor':>11}"
    )
    print(header)
    for size in args.sizes:
        project, dbs = build_workspace(root, size)
        cold, warm, behind = time_migdash(project, dbs)
        with_store = time_with_store(root, project, dbs)
        per_target = time_alembic_loop(root, project, dbs[: min(args.sample, size)])
        loop = per_target * size
        floor = time_floor(dbs)
        print(
            f"{size:>6} {cold:>12.3f}s {warm:>12.3f}s {with_store:>8.3f}s "
            f"{loop:>12.1f}s {floor:>8.4f}s {loop / warm:>9.0f}x {loop / cold:>9.0f}x "
            f"{warm / floor:>10.1f}x"
        )
        print(
            f"{'':>6} ({behind} of {size} behind; alembic current: {per_target * 1000:.0f} ms "
            f"per target over a sample of {min(args.sample, size)})"
        )


if __name__ == "__main__":
    main()
