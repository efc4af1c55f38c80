"""Normalisation rules one by one: what is folded together, and what never is."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import mysql, postgresql, sqlite

import migdash.engine.schema
from migdash.engine.schema.coltypes import canonical_type, compare_types, sqlite_affinity
from migdash.engine.schema.expressions import normalise_expression
from tests.engine.test_layering import violations

SCHEMA_PACKAGE = Path(migdash.engine.schema.__file__).parent


@pytest.mark.parametrize("path", sorted(SCHEMA_PACKAGE.glob("*.py")), ids=lambda path: path.name)
def test_schema_package_keeps_the_engine_layering_rule(path: Path) -> None:
    module = f"migdash.engine.schema.{path.stem}"
    assert violations(path.read_text(), module) == []


@pytest.mark.parametrize(
    ("coltype", "dialect", "expected"),
    [
        (postgresql.INTEGER(), "postgresql", "INTEGER"),
        (mysql.INTEGER(display_width=11), "mysql", "INTEGER"),
        (mysql.BIGINT(display_width=20), "mysql", "BIGINT"),
        (mysql.TINYINT(display_width=1), "mysql", "BOOLEAN"),
        (mysql.TINYINT(display_width=4), "mysql", "TINYINT"),
        (mysql.INTEGER(unsigned=True), "mysql", "INTEGER UNSIGNED"),
        (postgresql.VARCHAR(50), "postgresql", "VARCHAR(50)"),
        (mysql.VARCHAR(50, charset="utf8mb4"), "mysql", "VARCHAR(50)"),
        (mysql.DECIMAL(10, 2), "mysql", "NUMERIC(10,2)"),
        (postgresql.NUMERIC(10, 2), "postgresql", "NUMERIC(10,2)"),
        (postgresql.TIMESTAMP(timezone=True), "postgresql", "TIMESTAMP WITH TIME ZONE"),
        (postgresql.TIMESTAMP(), "postgresql", "TIMESTAMP"),
        (postgresql.DOUBLE_PRECISION(), "postgresql", "DOUBLE"),
        (postgresql.JSONB(), "postgresql", "JSONB"),
        (postgresql.ARRAY(sa.Integer()), "postgresql", "INTEGER[]"),
        (postgresql.ENUM("a", "b", name="e"), "postgresql", "ENUM('a','b')"),
        (sqlite.DATETIME(), "sqlite", "DATETIME"),
        (sa.types.NullType(), "postgresql", "UNKNOWN"),
    ],
)
def test_types_become_a_family_plus_parameters(
    coltype: sa.types.TypeEngine[object], dialect: str, expected: str
) -> None:
    assert canonical_type(coltype, dialect) == expected


def test_what_changes_what_a_column_holds_is_never_folded() -> None:
    assert canonical_type(postgresql.VARCHAR(50), "postgresql") != canonical_type(
        postgresql.VARCHAR(60), "postgresql"
    )
    assert compare_types("VARCHAR(50)", "postgresql", "VARCHAR(60)", "postgresql") == "real"
    assert (
        compare_types("TIMESTAMP", "postgresql", "TIMESTAMP WITH TIME ZONE", "postgresql") == "real"
    )
    assert compare_types("INTEGER", "mysql", "INTEGER UNSIGNED", "postgresql") == "real"
    assert compare_types("INTEGER", "sqlite", "VARCHAR(5)", "postgresql") == "real"


@pytest.mark.parametrize(
    ("before", "before_dialect", "after", "after_dialect", "verdict"),
    [
        ("DATETIME", "sqlite", "TIMESTAMP WITH TIME ZONE", "postgresql", "cosmetic"),
        ("VARCHAR(50)", "sqlite", "TEXT", "postgresql", "cosmetic"),
        ("DATETIME", "mysql", "TIMESTAMP WITH TIME ZONE", "postgresql", "cosmetic"),
        ("LONGTEXT", "mysql", "TEXT", "postgresql", "cosmetic"),
        ("JSON", "mysql", "JSONB", "postgresql", "cosmetic"),
        ("VARCHAR(50)", "mysql", "VARCHAR(60)", "postgresql", "real"),
        ("TEXT", "mysql", "TEXT", "postgresql", None),
    ],
)
def test_across_dialects_only_what_both_can_say_counts(
    before: str, before_dialect: str, after: str, after_dialect: str, verdict: str | None
) -> None:
    assert compare_types(before, before_dialect, after, after_dialect) == verdict
    assert compare_types(after, after_dialect, before, before_dialect) == verdict


@pytest.mark.parametrize(
    ("declared", "affinity"),
    [("INTEGER", "INTEGER"), ("BIGINT", "INTEGER"), ("VARCHAR(9)", "TEXT"), ("BLOB", "BLOB"),
     ("DOUBLE", "REAL"), ("NUMERIC(10,2)", "NUMERIC"), ("BOOLEAN", "NUMERIC"), ("UUID", "TEXT")],
)  # fmt: skip
def test_sqlite_affinity_follows_sqlites_rules(declared: str, affinity: str) -> None:
    assert sqlite_affinity(declared) == affinity


@pytest.mark.parametrize(
    ("text", "dialect", "options", "expected"),
    [
        ("'a'::character varying", "postgresql", {}, "'a'"),
        ("now()", "postgresql", {}, "CURRENT_TIMESTAMP"),
        ("current_timestamp()", "mysql", {}, "CURRENT_TIMESTAMP"),
        ("(CURRENT_TIMESTAMP)", "sqlite", {}, "CURRENT_TIMESTAMP"),
        ("current_timestamp(6)", "mysql", {}, "CURRENT_TIMESTAMP(6)"),
        ("true", "postgresql", {"boolean": True}, "TRUE"),
        ("'1'", "sqlite", {"boolean": True}, "TRUE"),
        ("0", "mysql", {"boolean": True}, "FALSE"),
        ("'0.00'", "mysql", {"numeric": True}, "0"),
        ("(-1)", "postgresql", {"numeric": True}, "-1"),
        ("price > 0::numeric", "postgresql", {}, "price > 0"),
        ("`price` > 0", "mysql", {}, "price > 0"),
        ("((a > 0) AND (b > 0))", "postgresql", {}, "(a > 0) AND (b > 0)"),
        ('"Mixed" > 1', "postgresql", {}, '"Mixed" > 1'),
        ("`Mixed` > 1", "mysql", {}, "mixed > 1"),
    ],
)
def test_expressions_are_spelled_one_way(
    text: str, dialect: str, options: dict[str, bool], expected: str
) -> None:
    assert normalise_expression(text, dialect, **options) == expected


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("'a'", "'b'"),
        ("(a + b) * c", "a + (b * c)"),
        ("1", "2"),
        ("'1'", "1"),
        ("now()", "statement_timestamp()"),
    ],
)
def test_expressions_that_mean_different_things_stay_different(left: str, right: str) -> None:
    assert normalise_expression(left, "postgresql") != normalise_expression(right, "postgresql")


IDENTIFIERS = st.sampled_from(["a", "b", "price", "Mixed", "x1"])
ATOMS = st.one_of(
    IDENTIFIERS,
    IDENTIFIERS.map(lambda name: f'"{name}"'),
    st.integers(-50, 50).map(str),
    st.sampled_from(["'a'", "'it''s'", "'1'", "true", "NULL", "now()", "CURRENT_TIMESTAMP"]),
)


def _compound(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.tuples(children, st.sampled_from(["+", "*", ">", "=", "AND", "OR"]), children)
    return st.one_of(
        binary.map(lambda parts: f"{parts[0]} {parts[1]} {parts[2]}"),
        children.map(lambda inner: f"({inner})"),
        children.map(lambda inner: f"({inner})::text"),
        children.map(lambda inner: f"lower({inner})"),
        children.map(lambda inner: f"NOT {inner}"),
    )


EXPRESSIONS = st.recursive(ATOMS, _compound, max_leaves=8)


@given(EXPRESSIONS, st.booleans(), st.booleans())
def test_normalising_twice_changes_nothing(text: str, boolean: bool, numeric: bool) -> None:
    once = normalise_expression(text, "postgresql", boolean=boolean, numeric=numeric)

    assert normalise_expression(once, "", boolean=boolean, numeric=numeric) == once


@given(EXPRESSIONS)
def test_redundant_parentheses_and_casts_never_matter(text: str) -> None:
    assert normalise_expression(f"(({text}))", "postgresql") == normalise_expression(
        text, "postgresql"
    )
    assert normalise_expression(f"({text})::integer", "postgresql") == normalise_expression(
        text, "postgresql"
    )
