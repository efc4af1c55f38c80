"""Schema snapshots after every job and on demand, and the live diff of two targets.

Two PostgreSQL targets at the same revision, one changed by hand (a column
added, an index dropped): the diff names exactly those two, in the CLI
(exit 1, as diff(1)) and on the diff page; snapshots taken after jobs carry
the job, and the fleet view groups the pair as "same revision, different
schema".
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from migdash.jobs.schemas import fleet_groups, latest_schema_snapshots
from migdash.scaffold import RevisionSpec
from migdash.services import services_of
from migdash.status import cached_status
from migdash.store.queries import find_targets
from migdash.store.schema_models import SchemaSnapshot
from tests.conftest import _fresh_database, migrate_to

ORDERS = RevisionSpec(
    "b2",
    "a1",
    "orders with an index",
    upgrade_body=(
        'op.create_table("orders", sa.Column("id", sa.Integer, primary_key=True),\n'
        '                sa.Column("total", sa.Integer))\n'
        'op.create_index("ix_orders_total", "orders", ["total"])'
    ),
)


@pytest.fixture
def second_postgres_url(postgres_server: str) -> Iterator[str]:
    yield from _fresh_database(postgres_server)


@pytest.mark.server
def test_a_hand_change_is_named_exactly_and_flags_the_pair(
    app: Flask,
    make_project: Callable[..., Any],
    register: Callable[..., None],
    cli: Callable[..., Any],
    cli_json: Callable[..., Any],
    run_queue: Callable[[], int],
    load_job: Callable[[int], Any],
    login: Callable[..., Any],
    postgres_url: str,
    second_postgres_url: str,
) -> None:
    project = make_project([RevisionSpec("a1", None, "accounts", table="accounts"), ORDERS])
    for url in (postgres_url, second_postgres_url):
        migrate_to(project, url, "a1")
    register(project, pg1=postgres_url, pg2=second_postgres_url)
    jobs = [cli_json("upgrade", name, "heads")["id"] for name in ("pg1", "pg2")]
    run_queue()
    assert [load_job(j).state for j in jobs] == ["succeeded", "succeeded"]
    with services_of(app).sessions() as session:
        after_jobs = {row.job_id: row.fingerprint for row in session.query(SchemaSnapshot)}
    assert set(after_jobs) == set(jobs), "one snapshot after each job, carrying the job"
    assert len(set(after_jobs.values())) == 1, "same revision, same schema"
    same = cli("diff", "pg1", "pg2")
    assert same.exit_code == 0, same.output
    assert same.output.startswith("no differences")

    db = sa.create_engine(second_postgres_url)
    with db.begin() as connection:  # somebody fixes prod by hand
        connection.exec_driver_sql("ALTER TABLE orders ADD COLUMN shipped_at timestamp")
        connection.exec_driver_sql("DROP INDEX ix_orders_total")
    db.dispose()

    differs = cli("diff", "pg1", "pg2", "--json", ok=False)
    assert differs.exit_code == 1
    data = json.loads(differs.stdout)
    real = sorted(
        (i["change"], i["kind"], i["table"], i["name"]) for i in data["items"] if not i["cosmetic"]
    )
    assert real == [
        ("added", "column", "orders", "shipped_at"),
        ("removed", "index", "orders", "ix_orders_total"),
    ]
    viewer = login("viewer")
    page = viewer.get("/schemas/diff?left=pg1&right=pg2").get_data(as_text=True)
    assert 'data-same="no"' in page
    assert "shipped_at" in page
    assert "ix_orders_total" in page

    assert cli_json("snapshot", "pg2")["fingerprint"] != after_jobs[jobs[0]]
    with services_of(app).sessions() as session:
        targets = find_targets(session, project=project.name)
        reports = cached_status(session, targets)
        (group,) = fleet_groups(reports, latest_schema_snapshots(session, [t.id for t in targets]))
    assert group.revisions == ("b2",)
    assert group.differs
    assert sorted(sorted(names) for names in group.by_fingerprint.values()) == [["pg1"], ["pg2"]]
    overview = viewer.get("/").get_data(as_text=True)
    assert overview.count('data-flag="schema-differs"') == 2
    assert "/schemas/diff?left=pg1&amp;right=pg2" in overview, "the diff is one click away"


def test_an_unreachable_target_gives_exit_2_and_the_reason(
    app: Flask,
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    register: Callable[..., None],
    cli: Callable[..., Any],
) -> None:
    project = make_project("linear")
    register(
        project,
        here=make_target(project, at="c3"),
        gone="postgresql+psycopg://u:secret-pw@127.0.0.1:1/none",
    )
    result = cli("diff", "here", "gone", ok=False)
    assert result.exit_code == 2
    assert "cannot read the schema of gone" in result.stderr
    assert "secret-pw" not in result.output + result.stderr
