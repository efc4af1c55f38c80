"""Snapshot and diff a 200-table PostgreSQL schema, next to ``pg_dump --schema-only`` of it.

Creates a scratch database on the server (dropped afterwards), builds
*tables* tables with varied column types, defaults, indexes, unique and
check constraints and a foreign key each, then times, warm (after one
discarded run), over *runs* runs each:
  * snapshot      - ``snapshot_schema`` (reflect + normalise + fingerprint);
  *   no cache    - the same with the parsed-expression cache emptied first
                    (what a fresh worker process pays);
  * diff          - ``diff_schemas`` of two snapshots of the same schema
                    (every table matched; the worst case for a diff that finds nothing);
  * diff changed  - ``diff_schemas`` against a copy with one column added per table;
  * pg_dump       - ``pg_dump --schema-only`` of the same database, output discarded;
and prints min / median / max and the ratio snapshot / pg_dump.

Usage: python bench/schema_bench.py [URL] [--tables 200] [--runs 7]
URL defaults to $MIGDASH_TEST_POSTGRES_URL (a server URL; any database on it).
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from migdash.engine.schema import diff_schemas, snapshot_schema
from migdash.engine.schema.expressions import _normalise
from migdash.engine.schema.snapshot import build_snapshot

COLUMN_KINDS: list[Callable[[int], sa.Column[Any]]] = [
    lambda n: sa.Column(f"code_{n}", sa.String(20 + n % 40), nullable=False),
    lambda n: sa.Column(f"note_{n}", sa.Text),
    lambda n: sa.Column(f"active_{n}", sa.Boolean, nullable=False, server_default=sa.true()),
    lambda n: sa.Column(f"amount_{n}", sa.Numeric(12, 2), server_default="0"),
    lambda n: sa.Column(f"created_{n}", sa.DateTime(timezone=True), server_default=sa.func.now()),
    lambda n: sa.Column(f"payload_{n}", sa.JSON),
    lambda n: sa.Column(f"big_{n}", sa.BigInteger),
    lambda n: sa.Column(f"day_{n}", sa.Date),
    lambda n: sa.Column(f"uid_{n}", sa.Uuid),
    lambda n: sa.Column(f"kind_{n}", sa.String(10), server_default="new"),
]


def build_metadata(tables: int) -> sa.MetaData:
    metadata = sa.MetaData()
    for i in range(tables):
        columns = [sa.Column("id", sa.Integer, primary_key=True)]
        if i:
            columns.append(sa.Column("parent_id", sa.ForeignKey(f"t{i - 1:03d}.id")))
        columns.append(sa.Column("name", sa.String(40), nullable=False))
        width = 5 + i % 5
        columns += [COLUMN_KINDS[(i + k) % len(COLUMN_KINDS)](k) for k in range(width)]
        table = sa.Table(f"t{i:03d}", metadata, *columns)
        sa.Index(f"ix_t{i:03d}_name", table.c.name)
        if i % 3 == 0:
            sa.Index(f"ix_t{i:03d}_lower", sa.func.lower(table.c.name))
        if i % 4 == 0:
            table.append_constraint(sa.UniqueConstraint("name", "id", name=f"uq_t{i:03d}"))
        if i % 5 == 0:
            table.append_constraint(sa.CheckConstraint("id > 0", name=f"ck_t{i:03d}_id"))
    return metadata


def timed(action: Callable[[], object], runs: int) -> list[float]:
    action()  # warm-up: connection, caches, imports
    results = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        results.append(time.perf_counter() - started)
    return results


def report(label: str, results: list[float]) -> float:
    median = statistics.median(results)
    print(
        f"{label:<14} min {min(results) * 1000:8.1f} ms   median {median * 1000:8.1f} ms"
        f"   max {max(results) * 1000:8.1f} ms   (n={len(results)})"
    )
    return median


def pg_dump_command(url: sa.URL) -> tuple[list[str], dict[str, str]] | None:
    binary = shutil.which("pg_dump")
    if binary is None:
        return None
    libpq = sa.URL.create(
        "postgresql", url.username, None, url.host, url.port, url.database, url.query
    ).render_as_string()  # the password goes in PGPASSWORD, not in the process list
    env = {**os.environ, "PGPASSWORD": url.password or ""}
    return [binary, "--schema-only", "--no-owner", "--no-privileges", "--dbname", libpq], env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", nargs="?", default=os.environ.get("MIGDASH_TEST_POSTGRES_URL"))
    parser.add_argument("--tables", type=int, default=200)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if not args.url:
        parser.error("give a PostgreSQL server URL or set MIGDASH_TEST_POSTGRES_URL")
    server = sa.engine.make_url(args.url)
    name = f"mdbench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    url = server.set(database=name)
    db_engine = sa.create_engine(url)
    try:
        return run(db_engine, url, args.tables, args.runs)
    finally:
        db_engine.dispose()
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def run(db_engine: sa.Engine, url: sa.URL, tables: int, runs: int) -> int:
    started = time.perf_counter()
    build_metadata(tables).create_all(db_engine)
    print(f"built {tables} tables in {time.perf_counter() - started:.1f} s")
    with db_engine.connect() as connection:
        version = connection.dialect.server_version_info
        print(f"PostgreSQL {'.'.join(map(str, version or ()))}")

        def take() -> object:
            return snapshot_schema(connection)

        def take_uncached() -> object:
            _normalise.cache_clear()
            return snapshot_schema(connection)

        snapshot_median = report("snapshot", timed(take, runs))
        report("  no cache", timed(take_uncached, runs))
        first, second = snapshot_schema(connection), snapshot_schema(connection)
    changed_schema = copy.deepcopy(first.schema)
    for table in changed_schema["tables"].values():
        table["columns"]["added"] = {
            "type": "TEXT",
            "nullable": True,
            "default": None,
            "autoincrement": False,
            "position": len(table["columns"]),
        }
    changed = build_snapshot(first.dialect, first.server_major, changed_schema)
    report("diff", timed(lambda: diff_schemas(first, second), runs))
    report("diff changed", timed(lambda: diff_schemas(first, changed), runs))
    columns = sum(len(table["columns"]) for table in first.schema["tables"].values())
    print(
        f"schema: {len(first.schema['tables'])} tables, {columns} columns;"
        f" diff same: {diff_schemas(first, second).same};"
        f" changed: {len(diff_schemas(first, changed).real)} real items"
    )
    command = pg_dump_command(url)
    if command is None:
        print("pg_dump not found (Debian: apt-get install postgresql-client); no comparison")
        return 0
    argv, env = command

    def dump() -> object:
        return subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)

    dump_median = report("pg_dump", timed(dump, runs))
    print(f"ratio snapshot / pg_dump (medians): {snapshot_median / dump_median:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
