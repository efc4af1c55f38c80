"""The cost of a reference schema, cached and not, on a PostgreSQL scratch server.

Writes a project of *revisions* revisions (each creates *per* tables with
typed columns, defaults, an index and a foreign key), upgrades a target
database to its head, registers both in a throw-away migdash instance (SQLite
metadata DB), then times, over *runs* runs each (after one discarded run):

  * check, uncached  - ``check_history_drift`` with the cache emptied first:
                       a scratch database created, upgraded to head in a child
                       process, reflected, stored, dropped; plus the live snapshot;
  * check, cached    - the same check with the reference cached (no process);
  * live snapshot    - what both pay for the target itself (reflection only);
  * walk, uncached   - the check of a target changed by hand (a column added), so
                       the reference of its revision and of the 20 revisions before it
                       (plus base) are all built: one pass, oldest first, on one
                       scratch database (one child per revision after the first);
  * walk, cached     - the same check with all 22 references cached;
and the parts of an uncached build:
  * create + drop    - an empty scratch database, created and dropped;
  * child upgrade    - the child process running the whole chain on it;
  * reflect scratch  - ``snapshot_schema`` of the built scratch database;
and what a per-revision template database would have bought:
  * clone template   - ``CREATE DATABASE ... TEMPLATE`` of a database at head, and drop;
  * child, one step  - the child process upgrading a clone at head-1 by one revision.

Usage: python bench/reference_bench.py [SERVER_URL] [--revisions 50] [--per 4] [--runs 5]
SERVER_URL defaults to $MIGDASH_TEST_POSTGRES_URL (a server URL; any database on it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from migdash import create_app
from migdash.config import ensure_instance
from migdash.engine.actions import ActionSpec
from migdash.engine.reference import BuildSite, ScratchServers, scratch_database, snapshot_database
from migdash.jobs.plans import run_in_child
from migdash.jobs.reference import check_history_drift
from migdash.scaffold import RevisionSpec, write_project
from migdash.services import services_of
from migdash.store import registry
from migdash.store.models import utcnow
from migdash.store.schema_models import ReferenceSchema


def revision_body(number: int, per: int) -> str:
    lines = []
    for k in range(per):
        table = f"t{number:03d}_{k}"
        parent = f"sa.ForeignKey('t{number - 1:03d}_{k}.id')" if number else "None"
        lines += [
            f"op.create_table('{table}',",
            "    sa.Column('id', sa.Integer(), primary_key=True),",
            f"    sa.Column('parent_id', sa.Integer(), {parent}),",
            "    sa.Column('name', sa.String(40), nullable=False),",
            "    sa.Column('active', sa.Boolean(), nullable=False, server_default=sa.true()),",
            "    sa.Column('amount', sa.Numeric(12, 2), server_default='0'),",
            "    sa.Column('created', sa.DateTime(timezone=True), server_default=sa.func.now()),",
            "    sa.Column('payload', sa.JSON()),",
            ")",
            f"op.create_index('ix_{table}_name', '{table}', ['name'], unique={k % 2 == 0})",
        ]
    return "\n".join(lines)


def write_bench_project(root: Path, revisions: int, per: int) -> Path:
    specs = [
        RevisionSpec(
            f"r{n:03d}",
            f"r{n - 1:03d}" if n else None,
            f"revision {n}",
            upgrade_body=revision_body(n, per),
        )
        for n in range(revisions)
    ]
    return write_project(root, specs)


def timed(action: Callable[[], object], runs: int) -> list[float]:
    action()  # warm-up
    results = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        results.append(time.perf_counter() - started)
    return results


def report(label: str, results: list[float]) -> float:
    median = statistics.median(results)
    print(
        f"{label:<18} min {min(results) * 1000:8.1f} ms   median {median * 1000:8.1f} ms"
        f"   max {max(results) * 1000:8.1f} ms   (n={len(results)})"
    )
    return median


def upgrade(location: Path, url: str, revision: str) -> None:
    db_engine = sa.create_engine(url)
    with db_engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(location))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    db_engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", nargs="?", default=os.environ.get("MIGDASH_TEST_POSTGRES_URL"))
    parser.add_argument("--revisions", type=int, default=50)
    parser.add_argument("--per", type=int, default=4, help="tables each revision creates")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not args.url:
        parser.error("give a PostgreSQL server URL or set MIGDASH_TEST_POSTGRES_URL")
    server = sa.engine.make_url(args.url)
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    names = [f"mdbench_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    with admin.connect() as connection:
        for name in names:
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        with tempfile.TemporaryDirectory(prefix="migdash-refbench-") as folder:
            urls = [server.set(database=n).render_as_string(hide_password=False) for n in names]
            return run(Path(folder), args.url, urls, names, args)
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def run(folder: Path, server_url: str, urls: list[str], names: list[str], args: Any) -> int:
    location = write_bench_project(folder / "project", args.revisions, args.per)
    head, before_head = f"r{args.revisions - 1:03d}", f"r{args.revisions - 2:03d}"
    target_url, template_url = urls
    started = time.perf_counter()
    upgrade(location, target_url, "heads")
    upgrade(location, template_url, before_head)
    print(
        f"project: {args.revisions} revisions, {args.revisions * args.per} tables; "
        f"target upgraded in {time.perf_counter() - started:.1f} s"
    )
    ensure_instance(folder / "instance")
    app = create_app({"TESTING": True, "MIGDASH_INSTANCE": str(folder / "instance")})
    services = services_of(app)
    services.upgrade_schema()
    scratch = ScratchServers(postgresql=server_url)
    with services.sessions() as session:
        registry.add_project(session, "bench", str(location))
        registry.add_target(session, "bench-db", project="bench", environment="dev", url=target_url)
        session.commit()

        def check(uncached: bool, expected: str = "none") -> str:
            if uncached:
                session.execute(sa.delete(ReferenceSchema))
            result = check_history_drift(
                session,
                services.jobs,
                registry.get_target(session, "bench-db"),
                utcnow(),
                scratch=scratch,
            )
            session.commit()
            assert result.outcome == expected, result.summary
            return result.outcome

        uncached = report("check, uncached", timed(lambda: check(True), args.runs))
        cached = report("check, cached", timed(lambda: check(False), args.runs))
        report("live snapshot", timed(lambda: snapshot_database(target_url, ()), args.runs))
        print(f"ratio uncached / cached (medians): {uncached / cached:.1f}")
        db_engine = sa.create_engine(target_url)
        with db_engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE t000_0 ADD COLUMN by_hand INTEGER")
        db_engine.dispose()
        walk_runs = max(1, args.runs // 2)
        walk = report("walk, uncached", timed(lambda: check(True, "drift"), walk_runs))
        walked = report("walk, cached", timed(lambda: check(False, "drift"), args.runs))
        print(f"ratio walk uncached / cached (medians): {walk / walked:.1f}")
    parts(location, server_url, template_url, names[1], head, args.runs)
    services.probes.close()
    services.db_engine.dispose()
    return 0


def parts(
    location: Path, server_url: str, template_url: str, template: str, head: str, runs: int
) -> None:
    site = BuildSite("postgresql", server_url)

    def empty() -> None:
        with scratch_database(site):
            pass

    def child_chain() -> None:
        with scratch_database(site) as url:
            assert run_in_child(_spec(location, url, head), timeout=600).ok

    report("create + drop", timed(empty, runs))
    report("child upgrade", timed(child_chain, runs))
    report("reflect scratch", timed(lambda: snapshot_database(template_url, ()), runs))
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    url = sa.engine.make_url(server_url)

    def clone(then_upgrade: bool) -> None:
        name = f"mdclone_{uuid.uuid4().hex[:8]}"
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name} TEMPLATE {template}")
        try:
            if then_upgrade:
                clone_url = url.set(database=name).render_as_string(hide_password=False)
                assert run_in_child(_spec(location, clone_url, head), timeout=600).ok
        finally:
            with admin.connect() as connection:
                connection.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")

    report("clone template", timed(lambda: clone(False), runs))
    report("clone + one step", timed(lambda: clone(True), runs))
    admin.dispose()


def _spec(location: Path, url: str, revision: str) -> ActionSpec:
    return ActionSpec(kind="upgrade", script_location=str(location), url=url, revision=revision)


if __name__ == "__main__":
    sys.exit(main())
