"""diff_schemas and the fingerprint as properties, over generated schemas and SQLite databases."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from migdash.engine.schema import (
    SchemaDiff,
    SchemaSnapshot,
    diff_schemas,
    snapshot_schema,
)
from migdash.engine.schema.normalise import (
    CHECK_IDENTITY,
    FK_IDENTITY,
    INDEX_IDENTITY,
    UNIQUE_IDENTITY,
    sort_entries,
)
from migdash.engine.schema.snapshot import build_snapshot
from migdash.errors import InvalidInput

NAMES = st.sampled_from(["a", "b", "c", "d", "e"])
MAYBE_NAME = st.one_of(st.none(), st.sampled_from(["ix_1", "ix_2", "uq_1", "fk_1", "ck_1"]))
TYPES = st.sampled_from(["INTEGER", "BIGINT", "VARCHAR(50)", "VARCHAR(60)", "TEXT", "BOOLEAN"])
DEFAULTS = st.sampled_from([None, "'a'", "'b'", "0", "TRUE", "CURRENT_TIMESTAMP"])


@st.composite
def tables(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(NAMES, min_size=1, max_size=4, unique=True))
    columns = {
        name: {
            "type": draw(TYPES),
            "nullable": draw(st.booleans()),
            "default": draw(DEFAULTS),
            "autoincrement": draw(st.booleans()),
            "position": position,
        }
        for position, name in enumerate(names)
    }
    covered = st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True)
    indexes = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "name": MAYBE_NAME,
                    "columns": covered,
                    "unique": st.booleans(),
                    "options": st.just({}),
                }
            ),
            max_size=3,
        )
    )
    uniques = draw(
        st.lists(
            st.fixed_dictionaries({"name": MAYBE_NAME, "columns": covered, "options": st.just({})}),
            max_size=2,
        )
    )
    fks = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "name": MAYBE_NAME,
                    "columns": covered,
                    "referred_schema": st.none(),
                    "referred_table": st.sampled_from(["p", "q"]),
                    "referred_columns": st.just(["id"]),
                    "options": st.sampled_from([{}, {"ondelete": "CASCADE"}]),
                }
            ),
            max_size=2,
        )
    )
    checks = draw(
        st.lists(
            st.fixed_dictionaries(
                {"name": MAYBE_NAME, "sqltext": st.sampled_from(["a > 0", "b < 9"])}
            ),
            max_size=2,
        )
    )
    key = draw(st.one_of(st.none(), st.just({"name": draw(MAYBE_NAME), "columns": names[:1]})))
    return {
        "columns": columns,
        "primary_key": key,
        "indexes": sort_entries(indexes, INDEX_IDENTITY),
        "uniques": sort_entries(uniques, UNIQUE_IDENTITY),
        "foreign_keys": sort_entries(fks, FK_IDENTITY),
        "checks": sort_entries(checks, CHECK_IDENTITY),
    }


@st.composite
def snapshots(draw: st.DrawFn, dialect: str = "postgresql") -> SchemaSnapshot:
    table_names = draw(
        st.lists(st.sampled_from(["t", "u", "w"]), min_size=1, max_size=3, unique=True)
    )
    schema = {
        "tables": {name: draw(tables()) for name in table_names},
        "views": draw(
            st.dictionaries(
                st.sampled_from(["v"]),
                st.fixed_dictionaries(
                    {
                        "definition": st.sampled_from(["SELECT 1", "SELECT 2"]),
                        "columns": st.just(["x"]),
                    }
                ),
            )
        ),
        "enums": draw(
            st.dictionaries(
                st.sampled_from(["mood"]),
                st.fixed_dictionaries({"labels": st.sampled_from([["a"], ["a", "b"]])}),
            )
        ),
    }
    return build_snapshot(dialect, 16, schema)


def mirrored(found: SchemaDiff) -> list[tuple[Any, ...]]:
    swap = {"added": "removed", "removed": "added", "changed": "changed"}
    return sorted(
        (
            swap[item.change],
            item.kind,
            item.table,
            item.cosmetic,
            repr(item.after),
            repr(item.before),
        )
        for item in found.items
    )


def plain(found: SchemaDiff) -> list[tuple[Any, ...]]:
    return sorted(
        (item.change, item.kind, item.table, item.cosmetic, repr(item.before), repr(item.after))
        for item in found.items
    )


@given(snapshots())
def test_a_schema_has_no_difference_with_itself(snapshot: SchemaSnapshot) -> None:
    assert diff_schemas(snapshot, snapshot).items == ()
    assert diff_schemas(snapshot, copy.deepcopy(snapshot)).items == ()


@given(snapshots(), snapshots())
def test_a_diff_read_backwards_is_its_mirror_image(a: SchemaSnapshot, b: SchemaSnapshot) -> None:
    assert plain(diff_schemas(b, a)) == mirrored(diff_schemas(a, b))


@given(snapshots(), snapshots())
def test_the_fingerprint_agrees_with_the_diff(a: SchemaSnapshot, b: SchemaSnapshot) -> None:
    """Same dialect: equal fingerprints exactly when the diff has no real item."""
    assert (a.fingerprint == b.fingerprint) == diff_schemas(a, b).same


@given(snapshots(), st.randoms(use_true_random=False))
def test_renaming_and_reordering_is_cosmetic_only(
    snapshot: SchemaSnapshot, rnd: random.Random
) -> None:
    schema = copy.deepcopy(snapshot.schema)
    for table in schema["tables"].values():
        positions = list(range(len(table["columns"])))
        rnd.shuffle(positions)
        for column, position in zip(table["columns"].values(), positions, strict=True):
            column["position"] = position
        for key in ("indexes", "uniques", "foreign_keys", "checks"):
            for number, entry in enumerate(table[key]):
                entry["name"] = f"renamed_{key}_{number}"
    renamed = build_snapshot(snapshot.dialect, snapshot.server_major, schema)
    found = diff_schemas(snapshot, renamed)

    assert found.real == ()
    assert renamed.fingerprint == snapshot.fingerprint


@given(snapshots())
def test_a_snapshot_survives_json(snapshot: SchemaSnapshot) -> None:
    assert SchemaSnapshot.from_json(snapshot.to_json()) == snapshot


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {"dialect": "sqlite"},
        {
            "dialect": "x",
            "server_major": 1,
            "normaliser_version": 1,
            "fingerprint": "f",
            "schema": [],
        },
    ],
)
def test_what_is_not_a_snapshot_is_refused(data: Any) -> None:
    with pytest.raises(InvalidInput):
        SchemaSnapshot.from_json(data)


def test_the_fingerprint_records_normaliser_and_dialect() -> None:
    schema: dict[str, Any] = {"tables": {}, "views": {}, "enums": {}}
    sqlite_one = build_snapshot("sqlite", 3, schema)

    assert sqlite_one.fingerprint != build_snapshot("postgresql", 16, schema).fingerprint
    assert sqlite_one.fingerprint == build_snapshot("sqlite", 4, schema).fingerprint
    assert sqlite_one.normaliser_version >= 1


# Generated real databases ------------------------------------------------------------------

COLUMN_TYPES = [
    sa.Integer(),
    sa.BigInteger(),
    sa.String(30),
    sa.Text(),
    sa.Boolean(),
    sa.Numeric(8, 2),
    sa.DateTime(),
    sa.JSON(),
]


@st.composite
def table_specs(draw: st.DrawFn) -> list[tuple[str, int, bool, bool]]:
    """Columns as (name, type number, nullable, indexed)."""
    names = draw(
        st.lists(
            st.sampled_from(["a", "b", "c", "d", "e", "f"]), min_size=1, max_size=5, unique=True
        )
    )
    return [
        (
            name,
            draw(st.integers(0, len(COLUMN_TYPES) - 1)),
            draw(st.booleans()),
            draw(st.booleans()),
        )
        for name in names
    ]


def build_sqlite(
    spec: list[tuple[str, int, bool, bool]], order: list[int], index_prefix: str
) -> SchemaSnapshot:
    metadata = sa.MetaData()
    columns = [sa.Column("id", sa.Integer, primary_key=True)]
    columns += [sa.Column(spec[i][0], COLUMN_TYPES[spec[i][1]], nullable=spec[i][2]) for i in order]
    table = sa.Table("t", metadata, *columns)
    for name, _, _, indexed in spec:
        if indexed:
            sa.Index(f"{index_prefix}_{name}", table.c[name])
    db_engine = sa.create_engine("sqlite://")
    try:
        metadata.create_all(db_engine)
        with db_engine.connect() as connection:
            return snapshot_schema(connection)
    finally:
        db_engine.dispose()


@settings(max_examples=30, deadline=None)
@given(table_specs(), st.randoms(use_true_random=False))
def test_generated_sqlite_schemas_differ_only_where_they_really_do(
    spec: list[tuple[str, int, bool, bool]], rnd: random.Random
) -> None:
    order = list(range(len(spec)))
    shuffled = order[:]
    rnd.shuffle(shuffled)
    a = build_sqlite(spec, order, "ix")
    b = build_sqlite(spec, shuffled, "idx")

    assert diff_schemas(a, b).real == ()
    assert a.fingerprint == b.fingerprint

    position = rnd.randrange(len(spec))
    name, type_number, nullable, indexed = spec[position]
    changed = spec[:]
    changed[position] = (name, type_number, not nullable, indexed)
    c = build_sqlite(changed, order, "ix")
    found = diff_schemas(a, c)

    assert [(item.table, item.name, item.cosmetic) for item in found.items] == [("t", name, False)]
    assert a.fingerprint != c.fingerprint


@given(snapshots())
def test_the_schema_serialises_to_one_text(snapshot: SchemaSnapshot) -> None:
    reordered = {key: dict(reversed(value.items())) for key, value in snapshot.schema.items()}
    again = build_snapshot(snapshot.dialect, snapshot.server_major, reordered)

    assert json.dumps(again.schema) == json.dumps(snapshot.schema)
    assert list(snapshot.schema["tables"]) == sorted(snapshot.schema["tables"])
