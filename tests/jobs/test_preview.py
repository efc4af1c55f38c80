"""``migdash upgrade TARGET REV --sql``: Alembic's offline SQL from the target's real revision.

Nothing is queued and nothing runs against the target; revisions that read
through a live connection (``op.get_bind()``) are flagged, because their
offline script cannot show what they will do.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from migdash.scaffold import RevisionSpec
from tests.conftest import migrate_to


def schema_of(url: str) -> tuple[set[str], list[str]]:
    """The tables and the version table's rows, read directly."""
    db_engine = sa.create_engine(url)
    try:
        with db_engine.connect() as connection:
            tables = set(sa.inspect(connection).get_table_names())
            versions = (
                [
                    row[0]
                    for row in connection.exec_driver_sql("SELECT version_num FROM alembic_version")
                ]
                if "alembic_version" in tables
                else []
            )
        return tables, versions
    finally:
        db_engine.dispose()


@pytest.mark.server
def test_offline_sql_for_postgres_holds_only_pending_ddl_and_runs_nothing(
    make_project: Callable[..., Any],
    register: Callable[..., None],
    cli_json: Callable[..., Any],
    postgres_url: str,
) -> None:
    project = make_project("linear")
    migrate_to(project, postgres_url, "a1")
    register(project, pg=postgres_url)
    before = schema_of(postgres_url)
    assert before == ({"accounts", "alembic_version"}, ["a1"])

    preview = cli_json("upgrade", "pg", "heads", "--sql")

    assert preview["error"] is None
    assert preview["current"] == ["a1"]
    assert preview["steps"] == ["upgrade a1 -> b2", "upgrade b2 -> c3"]
    sql = preview["sql"]
    assert "CREATE TABLE orders" in sql
    assert "CREATE TABLE items" in sql
    assert sql.index("CREATE TABLE orders") < sql.index("CREATE TABLE items")
    assert "CREATE TABLE accounts" not in sql, "a1 is already applied"
    assert "CREATE TABLE alembic_version" not in sql, "the version table exists already"
    assert (
        "UPDATE alembic_version SET version_num='c3' WHERE alembic_version.version_num = 'b2'"
        in sql
    )
    assert sql.lstrip().startswith("BEGIN;"), "PostgreSQL's dialect: transactional DDL"
    assert sql.rstrip().endswith("COMMIT;")
    assert preview["hazards"] == {}
    assert schema_of(postgres_url) == before
    assert cli_json("jobs") == [], "a preview queues nothing"


def test_offline_sql_of_a_downgrade_starts_from_the_current_revision(
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    register: Callable[..., None],
    cli_json: Callable[..., Any],
) -> None:
    project = make_project("linear")
    url = make_target(project, at="heads")
    register(project, shop=url)

    preview = cli_json("downgrade", "shop", "-1", "--sql")

    assert (preview["error"], preview["current"]) == (None, ["c3"])
    assert preview["steps"] == ["downgrade c3 -> b2"]
    assert "DROP TABLE items" in preview["sql"]
    assert "DROP TABLE orders" not in preview["sql"]
    assert schema_of(url)[1] == ["c3"]


def test_preview_flags_pending_revisions_that_use_get_bind(
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    register: Callable[..., None],
    cli: Callable[..., Any],
) -> None:
    live_read = (
        'bind = op.get_bind()\nbind.execute(sa.text("SELECT count(*) FROM accounts")).scalar()\n'
    )
    project = make_project(
        [
            RevisionSpec(
                "a1",
                None,
                "create accounts",
                upgrade_body=live_read.replace("SELECT count(*) FROM accounts", "SELECT 1")
                + 'op.create_table("accounts", sa.Column("id", sa.Integer, primary_key=True))',
            ),
            RevisionSpec("b2", "a1", "backfill from accounts", upgrade_body=live_read),
            RevisionSpec("c3", "b2", "create items", table="items"),
        ]
    )
    url = make_target(project, at="a1")
    register(project, shop=url)

    result = cli("upgrade", "shop", "heads", "--sql", "--json", ok=False)
    assert result.exit_code == 1, "no SQL could be shown: that is an error, said on stderr"
    assert "no SQL can be shown for this plan" in result.stderr
    preview = json.loads(result.stdout)

    assert preview["sql"] is None
    assert preview["steps"] == ["upgrade a1 -> b2", "upgrade b2 -> c3"]
    assert set(preview["hazards"]) == {"b2"}, "a1 uses get_bind too, but it is applied"
    assert "get_bind" in preview["hazards"]["b2"]
    assert schema_of(url)[1] == ["a1"]
