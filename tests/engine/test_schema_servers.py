"""Schema snapshots and diffs on real SQLite, PostgreSQL and MariaDB (the issue's acceptance).

Every database here is created for the test and dropped after it; schemas are
built with ``metadata.create_all`` or plain DDL, as a team would, and read
back only through :func:`snapshot_schema`.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import func

from migdash.engine.schema import SchemaSnapshot, diff_schemas, snapshot_schema
from migdash.engine.schema.diff import COLUMN_ORDER

pytestmark = pytest.mark.server

DIALECTS = ("sqlite", "postgresql", "mariadb")


def acceptance_models() -> sa.MetaData:
    """Boolean, JSON, server_default=func.now(), an Integer key, a foreign key, a unique index."""
    metadata = sa.MetaData()
    sa.Table(
        "accounts",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("data", sa.JSON),
        sa.Column("created", sa.DateTime, server_default=func.now()),
        sa.Column("kind", sa.String(10), server_default="a"),
        sa.Column("balance", sa.Numeric(10, 2), server_default="0"),
        sa.CheckConstraint("balance >= 0", name="ck_accounts_balance"),
        sa.Index("ix_accounts_name", "name", unique=True),
    )
    sa.Table(
        "orders",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("total", sa.Integer, nullable=False, server_default="0"),
        sa.Index("ix_orders_total", "total"),
    )
    return metadata


@pytest.fixture
def make_database(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[str], str]]:
    """A factory: a new, empty database of *dialect* per call, dropped after the test."""
    created: list[tuple[sa.Engine, str]] = []

    def factory(dialect: str) -> str:
        if dialect == "sqlite":
            return f"sqlite:///{tmp_path / uuid.uuid4().hex[:8]}.db"
        server = request.getfixturevalue(f"{dialect.replace('postgresql', 'postgres')}_server")
        name = f"mdschema_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
        created.append((admin, name))
        url = sa.engine.make_url(server).set(database=name)
        return url.render_as_string(hide_password=False)

    yield factory
    for admin, name in created:
        with admin.connect() as connection:
            force = " WITH (FORCE)" if admin.dialect.name == "postgresql" else ""
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}{force}")
        admin.dispose()


def build(url: str, *, metadata: sa.MetaData | None = None, ddl: tuple[str, ...] = ()) -> str:
    db_engine = sa.create_engine(url)
    try:
        if metadata is not None:
            metadata.create_all(db_engine)
        with db_engine.begin() as connection:
            for statement in ddl:
                connection.exec_driver_sql(statement)
    finally:
        db_engine.dispose()
    return url


def snapshot(url: str, **options: object) -> SchemaSnapshot:
    db_engine = sa.create_engine(url)
    try:
        with db_engine.connect() as connection:
            return snapshot_schema(connection, **options)  # type: ignore[arg-type]
    finally:
        db_engine.dispose()


def cosmetic_kinds(a: SchemaSnapshot, b: SchemaSnapshot) -> list[tuple[str, str | None]]:
    return sorted((item.kind, item.table) for item in diff_schemas(a, b).cosmetic)


# Acceptance 1: the same models on three dialects -------------------------------------------

# What is still reported between the dialects, all cosmetic, and why:
EXPECTED_COSMETIC = {
    ("postgresql", "sqlite"): [
        # DateTime is TIMESTAMP on PostgreSQL, DATETIME on SQLite: same SQLite affinity.
        ("column", "accounts"),
    ],
    ("mysql", "sqlite"): [
        # InnoDB's own index on orders.account_id, which backs the foreign key.
        ("index", "orders"),
    ],
    ("mysql", "postgresql"): [
        # DateTime is DATETIME on MariaDB, TIMESTAMP on PostgreSQL.
        ("column", "accounts"),
        # The unnamed foreign key is orders_ibfk_1 on MariaDB, orders_account_id_fkey on PostgreSQL.
        ("foreign_key", "orders"),
        # InnoDB's own index on orders.account_id.
        ("index", "orders"),
    ],
}


def test_the_same_models_on_three_dialects_show_no_real_difference(
    make_database: Callable[[str], str],
) -> None:
    snapshots = [
        snapshot(build(make_database(dialect), metadata=acceptance_models()))
        for dialect in DIALECTS
    ]

    assert sorted(s.dialect for s in snapshots) == ["mysql", "postgresql", "sqlite"]
    for a, b in itertools.permutations(snapshots, 2):
        found = diff_schemas(a, b)
        assert found.real == (), (a.dialect, b.dialect, found.summary())
        pair = tuple(sorted((a.dialect, b.dialect)))
        assert cosmetic_kinds(a, b) == EXPECTED_COSMETIC[pair], (a.dialect, b.dialect)  # type: ignore[index]
        assert found.summary().startswith("no differences")


def test_mariadb_json_is_longtext_with_a_check_read_back_as_json(
    make_database: Callable[[str], str],
) -> None:
    taken = snapshot(build(make_database("mariadb"), metadata=acceptance_models()))
    accounts = taken.schema["tables"]["accounts"]

    assert str(taken.server_version).startswith("MariaDB")
    assert accounts["columns"]["data"]["type"] == "JSON"
    assert accounts["columns"]["active"]["type"] == "BOOLEAN"
    assert [check["sqltext"] for check in accounts["checks"]] == ["balance >= 0"]
    fk_index = taken.schema["tables"]["orders"]["indexes"]
    assert [(index["columns"], index.get("fk_index")) for index in fk_index] == [
        (["account_id"], True),
        (["total"], None),
    ]


# Acceptance 2: cosmetic only, no drift, and what is real ------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_column_order_and_a_renamed_index_are_cosmetic_only(
    make_database: Callable[[str], str], dialect: str
) -> None:
    a = snapshot(
        build(
            make_database(dialect),
            ddl=(
                "CREATE TABLE t (a INTEGER NOT NULL, b VARCHAR(20), c TEXT)",
                "CREATE INDEX ix_one ON t (a, b)",
            ),
        )
    )
    b = snapshot(
        build(
            make_database(dialect),
            ddl=(
                "CREATE TABLE t (c TEXT, a INTEGER NOT NULL, b VARCHAR(20))",
                "CREATE INDEX ix_two ON t (a, b)",
            ),
        )
    )
    found = diff_schemas(a, b)

    assert found.same
    assert sorted((item.name, item.detail) for item in found.cosmetic) == [
        (COLUMN_ORDER, "column order a, b, c -> c, a, b"),
        ("ix_one", "renamed ix_one -> ix_two"),
    ]
    assert a.fingerprint == b.fingerprint


def test_mariadb_foreign_key_index_is_cosmetic_against_postgresql(
    make_database: Callable[[str], str],
) -> None:
    ddl = (
        "CREATE TABLE p (id INTEGER PRIMARY KEY)",
        "CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER,"
        " CONSTRAINT fk_c_p FOREIGN KEY (p_id) REFERENCES p (id))",
    )
    maria = snapshot(build(make_database("mariadb"), ddl=ddl))
    postgres = snapshot(build(make_database("postgresql"), ddl=ddl))
    found = diff_schemas(postgres, maria)

    assert found.real == ()
    assert [(item.change, item.kind, item.cosmetic) for item in found.items] == [
        ("added", "index", True),
    ]


SERIAL_KEYS = {
    "serial": "CREATE TABLE t (id SERIAL PRIMARY KEY, v TEXT)",
    "identity": "CREATE TABLE t (id INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, v TEXT)",
    "always": "CREATE TABLE t (id INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v TEXT)",
}


def test_postgresql_serial_identity_and_an_integer_model_key_are_no_drift(
    make_database: Callable[[str], str],
) -> None:
    metadata = sa.MetaData()
    sa.Table("t", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.Text))
    snapshots = [snapshot(build(make_database("postgresql"), metadata=metadata))]
    snapshots += [
        snapshot(build(make_database("postgresql"), ddl=(ddl,))) for ddl in SERIAL_KEYS.values()
    ]

    for taken in snapshots:
        key = taken.schema["tables"]["t"]["columns"]["id"]
        assert (key["type"], key["default"], key["autoincrement"]) == ("INTEGER", None, True)
    for a, b in itertools.combinations(snapshots, 2):
        assert diff_schemas(a, b).items == ()
        assert a.fingerprint == b.fingerprint


def test_a_shared_sequence_default_is_a_default_not_an_autoincrement(
    make_database: Callable[[str], str],
) -> None:
    serial = snapshot(build(make_database("postgresql"), ddl=(SERIAL_KEYS["serial"],)))
    shared = snapshot(
        build(
            make_database("postgresql"),
            ddl=(
                "CREATE SEQUENCE shared_ids",
                "CREATE TABLE t (id INTEGER PRIMARY KEY DEFAULT nextval('shared_ids'), v TEXT)",
            ),
        )
    )

    assert [item.detail for item in diff_schemas(serial, shared).real] == [
        "default none -> NEXTVAL('shared_ids')",
        "autoincrement on -> off",
    ]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_longer_varchar_and_another_default_are_real_differences(
    make_database: Callable[[str], str], dialect: str
) -> None:
    a = snapshot(
        build(
            make_database(dialect),
            ddl=("CREATE TABLE t (id INTEGER PRIMARY KEY, s VARCHAR(50) DEFAULT 'a')",),
        )
    )
    b = snapshot(
        build(
            make_database(dialect),
            ddl=("CREATE TABLE t (id INTEGER PRIMARY KEY, s VARCHAR(60) DEFAULT 'b')",),
        )
    )
    found = diff_schemas(a, b)

    assert [(item.kind, item.table, item.name, item.detail) for item in found.real] == [
        ("column", "t", "s", "type VARCHAR(50) -> VARCHAR(60)"),
        ("column", "t", "s", "default 'a' -> 'b'"),
    ]
    assert found.cosmetic == ()
    assert a.fingerprint != b.fingerprint


# Acceptance 3: a hand-changed PostgreSQL database -------------------------------------------


def test_a_hand_change_is_named_exactly(make_database: Callable[[str], str]) -> None:
    untouched = snapshot(build(make_database("postgresql"), metadata=acceptance_models()))
    changed_url = build(make_database("postgresql"), metadata=acceptance_models())
    build(
        changed_url,
        ddl=("ALTER TABLE orders ADD COLUMN shipped_at TIMESTAMP", "DROP INDEX ix_orders_total"),
    )
    changed = snapshot(changed_url)
    found = diff_schemas(untouched, changed)

    assert [(item.change, item.kind, item.table, item.name) for item in found.items] == [
        ("added", "column", "orders", "shipped_at"),
        ("removed", "index", "orders", "ix_orders_total"),
    ]
    assert found.summary() == (
        "2 differences: column orders.shipped_at added; index ix_orders_total dropped"
    )
    assert untouched.fingerprint != changed.fingerprint


# Acceptance 4: the fingerprint -------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_fingerprint_is_stable_and_tells_real_changes(
    make_database: Callable[[str], str], dialect: str
) -> None:
    first_url = build(make_database(dialect), metadata=acceptance_models())
    second_url = build(make_database(dialect), metadata=acceptance_models())
    first, again, second = snapshot(first_url), snapshot(first_url), snapshot(second_url)
    build(second_url, ddl=("ALTER TABLE accounts ADD COLUMN extra INTEGER",))

    assert first.fingerprint == again.fingerprint == second.fingerprint
    assert first.schema == second.schema
    assert snapshot(second_url).fingerprint != first.fingerprint
    assert SchemaSnapshot.from_json(first.to_json()) == first


def test_alembic_version_and_ignored_tables_are_left_out(
    make_database: Callable[[str], str],
) -> None:
    url = build(
        make_database("postgresql"),
        ddl=(
            "CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)",
            "CREATE TABLE scratch (id INTEGER)",
            "CREATE TABLE kept (id INTEGER)",
        ),
    )

    assert sorted(snapshot(url).schema["tables"]) == ["kept", "scratch"]
    assert sorted(snapshot(url, ignore_tables=("scratch",)).schema["tables"]) == [
        "alembic_version",
        "kept",
    ]


def test_postgresql_views_enums_and_partial_expression_indexes(
    make_database: Callable[[str], str],
) -> None:
    ddl = (
        "CREATE TYPE mood AS ENUM ('sad', 'ok')",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, m mood, active BOOLEAN)",
        "CREATE INDEX ix_t_lower ON t (lower(name)) WHERE active",
        "CREATE VIEW v AS SELECT id, name FROM t WHERE active",
    )
    a = snapshot(build(make_database("postgresql"), ddl=ddl))
    b = snapshot(
        build(make_database("postgresql"), ddl=(ddl[0].replace("'ok'", "'ok', 'happy'"), *ddl[1:]))
    )

    assert a.schema["enums"] == {"mood": {"labels": ["sad", "ok"]}}
    assert a.schema["views"]["v"]["columns"] == ["id", "name"]
    [index] = a.schema["tables"]["t"]["indexes"]
    assert (index["columns"], index["options"]) == (["(LOWER(name))"], {"where": "active"})
    assert [(item.kind, item.name) for item in diff_schemas(a, b).real] == [
        ("column", "m"),
        ("enum", "mood"),
    ]


def test_sqlite_expression_and_partial_indexes_are_read(
    make_database: Callable[[str], str],
) -> None:
    url = build(
        make_database("sqlite"),
        ddl=(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, n INTEGER)",
            "CREATE INDEX ix_t_lower ON t (lower(name)) WHERE n > 0",
            "CREATE UNIQUE INDEX ux_t_n ON t (n DESC)",
            "CREATE VIEW v AS SELECT id, lower(name) AS low FROM t WHERE (n > 0)",
        ),
    )
    taken = snapshot(url)

    assert taken.schema["views"] == {
        "v": {
            "definition": "SELECT id, LOWER(name) AS low FROM t WHERE n > 0",
            "columns": ["id", "low"],
        }
    }
    assert taken.notes == ()
    assert taken.schema["tables"]["t"]["indexes"] == [
        {
            "name": "ix_t_lower",
            "columns": ["(LOWER(name))"],
            "unique": False,
            "options": {"where": "n > 0"},
        },
        {"name": "ux_t_n", "columns": ["n DESC"], "unique": True, "options": {}},
    ]


def test_postgresql_schemas_snapshot_alike_and_unknown_types_keep_their_names(
    make_database: Callable[[str], str],
) -> None:
    ddl: list[str] = []
    for schema, other_type in (("s1", "pair"), ("s2", "pair"), ("s3", "triple")):
        ddl += [
            f"CREATE SCHEMA {schema}",
            f"CREATE TYPE {schema}.{other_type} AS (a int, b int)",
            f"CREATE TABLE {schema}.p (id SERIAL PRIMARY KEY, v {schema}.{other_type})",
            f"CREATE TABLE {schema}.c (id SERIAL PRIMARY KEY,"
            f" p_id INTEGER REFERENCES {schema}.p (id) ON DELETE CASCADE)",
        ]
    url = build(make_database("postgresql"), ddl=tuple(ddl))
    s1, s2, s3 = (snapshot(url, schema=schema) for schema in ("s1", "s2", "s3"))

    assert s1.schema["tables"]["p"]["columns"]["v"]["type"] == "PAIR"
    assert s1.notes == ("Did not recognize type 's1.pair' of column 'v'",)
    assert s1.schema["tables"]["p"]["columns"]["id"]["autoincrement"] is True
    assert s1.schema["tables"]["c"]["foreign_keys"][0]["referred_schema"] is None
    assert diff_schemas(s1, s2).items == ()
    assert [item.detail for item in diff_schemas(s1, s3).items] == ["type PAIR -> TRIPLE"]
