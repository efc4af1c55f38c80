"""Read a live schema with SQLAlchemy's Inspector: one round trip per kind, not per table.

``get_multi_*`` answers for every table at once on PostgreSQL and MySQL
(SQLite's pragmas are per table by nature, but local).  What the Inspector
leaves out is read with one extra query per dialect: PostgreSQL's sequences
owned by a column (a ``serial``'s ``nextval()`` default is an autoincrement
flag, not a default), MariaDB's column-level CHECKs (a JSON column is a
LONGTEXT with ``CHECK (json_valid(col))``), and SQLite's expression indexes
(the Inspector skips them with a warning).  Nothing here interprets what it
reads; :mod:`.normalise` does.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine.reflection import Inspector, ObjectKind

from .expressions import parse_index_sql

_PG_OWNED_SEQUENCES = sa.text(
    """
    SELECT s.relname AS sequence, t.relname AS "table", a.attname AS "column"
    FROM pg_class s
    JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass
        AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
    JOIN pg_class t ON t.oid = d.refobjid
    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
    JOIN pg_namespace n ON n.oid = t.relnamespace
    WHERE s.relkind = 'S' AND n.nspname = COALESCE(:schema, current_schema())
    """
)
_MARIADB_COLUMN_CHECKS = sa.text(
    """
    SELECT TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
    WHERE CONSTRAINT_SCHEMA = COALESCE(:schema, DATABASE()) AND LEVEL = 'Column'
    """
)
_PG_TYPE_NAMES = sa.text(
    """
    SELECT c.relname, a.attname, t.typname FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_type t ON t.oid = a.atttypid
    WHERE n.nspname = COALESCE(:schema, current_schema()) AND a.attnum > 0
        AND NOT a.attisdropped AND c.relkind IN ('r', 'p')
    """
)
_SQLITE_SKIPPED_INDEX = "Skipped unsupported reflection of expression-based index"


@dataclass
class RawTable:
    """What the Inspector said about one table, as SQLAlchemy's dictionaries."""

    columns: list[dict[str, Any]]
    primary_key: dict[str, Any] | None
    indexes: list[dict[str, Any]]
    unique_constraints: list[dict[str, Any]]
    foreign_keys: list[dict[str, Any]]
    check_constraints: list[dict[str, Any]]
    column_checks: list[tuple[str, str]] = field(default_factory=list)
    """MariaDB column-level CHECKs as (column, clause); the Inspector does not return them."""


@dataclass
class RawSchema:
    """One reflection of a schema, before normalisation."""

    dialect: str
    server_version_info: tuple[Any, ...] | None
    server_version: str | None
    tables: dict[str, RawTable]
    views: dict[str, tuple[str | None, list[str]]]
    """View name -> (definition, column names in order)."""
    enums: list[dict[str, Any]]
    owned_sequences: dict[str, tuple[str, str]]
    """Sequence name -> (table, column) owning it (PostgreSQL serial and identity)."""
    notes: list[str]
    """Warnings SQLAlchemy raised while reflecting (unrecognised types and the like)."""


def reflect_schema(connection: sa.Connection, schema: str | None) -> RawSchema:
    """Everything :mod:`.normalise` needs, read in a fixed number of round trips."""
    dialect = connection.dialect
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", sa.exc.SAWarning)
        inspector = sa.inspect(connection)
        tables = _reflect_tables(connection, inspector, schema)
        views = _reflect_views(inspector, schema)
        enums = _reflect_enums(inspector, schema)
    notes = sorted({str(warning.message) for warning in caught} - {""})
    if dialect.name == "sqlite":  # read from the CREATE INDEX text instead; see _sqlite_indexes
        notes = [note for note in notes if not note.startswith(_SQLITE_SKIPPED_INDEX)]
    version = dialect.server_version_info
    return RawSchema(
        dialect=dialect.name,
        server_version_info=tuple(version) if version else None,
        server_version=_server_version(connection),
        tables=tables,
        views=views,
        enums=enums,
        owned_sequences=_owned_sequences(connection, schema),
        notes=notes,
    )


def _reflect_tables(
    connection: sa.Connection, inspector: Inspector, schema: str | None
) -> dict[str, RawTable]:
    kind = ObjectKind.TABLE
    columns = inspector.get_multi_columns(schema=schema, kind=kind)
    primary_keys = inspector.get_multi_pk_constraint(schema=schema, kind=kind)
    uniques = inspector.get_multi_unique_constraints(schema=schema, kind=kind)
    foreign_keys = inspector.get_multi_foreign_keys(schema=schema, kind=kind)
    checks = _multi_or_empty(inspector.get_multi_check_constraints, schema, kind)
    if connection.dialect.name == "sqlite":
        indexes = _sqlite_indexes(connection, schema)
    else:
        multi = inspector.get_multi_indexes(schema=schema, kind=kind)
        indexes = {key[1]: [dict(index) for index in value] for key, value in multi.items()}
    column_checks = _mariadb_column_checks(connection, schema)
    tables: dict[str, RawTable] = {}
    for key, table_columns in columns.items():
        name = key[1]
        primary_key = primary_keys.get(key)
        tables[name] = RawTable(
            columns=[dict(column) for column in table_columns],
            primary_key=dict(primary_key) if primary_key else None,
            indexes=[dict(index) for index in indexes.get(name, [])],
            unique_constraints=[dict(unique) for unique in uniques.get(key, [])],
            foreign_keys=[dict(fk) for fk in foreign_keys.get(key, [])],
            check_constraints=[dict(check) for check in checks.get(key, [])],
            column_checks=column_checks.get(name, []),
        )
    _name_unknown_types(connection, tables, schema)
    return tables


def _name_unknown_types(
    connection: sa.Connection, tables: dict[str, RawTable], schema: str | None
) -> None:
    """Give PostgreSQL columns of a type SQLAlchemy does not know their type's name.

    Without it every such column reads as one NullType, and a ``citext``
    column would match an ``hstore`` one.  One query, only when needed.
    """
    unknown = [
        (name, column)
        for name, table in tables.items()
        for column in table.columns
        if isinstance(column["type"], sa.types.NullType)
    ]
    if not unknown or connection.dialect.name != "postgresql":
        return
    names = {
        (table, column): type_name
        for table, column, type_name in connection.execute(_PG_TYPE_NAMES, {"schema": schema})
    }
    for table_name, column in unknown:
        column["type_name"] = names.get((table_name, column["name"]))


def _multi_or_empty(method: Any, schema: str | None, kind: ObjectKind) -> dict[Any, Any]:
    """Check constraints are optional for a dialect; one that lacks them reports none."""
    try:
        return dict(method(schema=schema, kind=kind))
    except NotImplementedError:
        return {}


def _sqlite_indexes(
    connection: sa.Connection, schema: str | None
) -> dict[str, list[dict[str, Any]]]:
    """SQLite indexes from their CREATE INDEX text, expression indexes included.

    Indexes without text (``sqlite_autoindex_*``) back a PRIMARY KEY or UNIQUE
    constraint, which the constraint reflection already reports.
    """
    master = f'"{schema}".sqlite_master' if schema else "sqlite_master"
    rows = connection.exec_driver_sql(
        f"SELECT tbl_name, name, sql FROM {master} WHERE type = 'index' AND sql IS NOT NULL"  # noqa: S608 - schema is the caller's identifier, quoted
    ).all()
    found: dict[str, list[dict[str, Any]]] = {}
    for table, name, sql in rows:
        parsed = parse_index_sql(sql, "sqlite")
        if parsed is None:
            entry = {"name": name, "column_names": [], "unique": False, "unparsed": sql}
        else:
            unique, elements, where = parsed
            entry = {"name": name, "elements": elements, "unique": unique, "where": where}
        found.setdefault(table, []).append(entry)
    return found


def _mariadb_column_checks(
    connection: sa.Connection, schema: str | None
) -> dict[str, list[tuple[str, str]]]:
    if not getattr(connection.dialect, "is_mariadb", False):
        return {}
    found: dict[str, list[tuple[str, str]]] = {}
    for table, column, clause in connection.execute(_MARIADB_COLUMN_CHECKS, {"schema": schema}):
        found.setdefault(table, []).append((column, clause))
    return found


def _reflect_views(
    inspector: Inspector, schema: str | None
) -> dict[str, tuple[str | None, list[str]]]:
    """Views with their definitions (one query per view: schemas hold few) and columns."""
    names = inspector.get_view_names(schema=schema)
    if not names:
        return {}
    columns = inspector.get_multi_columns(schema=schema, kind=ObjectKind.VIEW)
    views: dict[str, tuple[str | None, list[str]]] = {}
    for name in names:
        try:
            definition: str | None = inspector.get_view_definition(name, schema=schema)
        except NotImplementedError:
            definition = None
        view_columns = [column["name"] for column in columns.get((schema, name), [])]
        views[name] = (definition, view_columns)
    return views


def _reflect_enums(inspector: Inspector, schema: str | None) -> list[dict[str, Any]]:
    get_enums = getattr(inspector, "get_enums", None)
    if get_enums is None:
        return []
    return [dict(enum) for enum in get_enums(schema=schema)]


def _owned_sequences(connection: sa.Connection, schema: str | None) -> dict[str, tuple[str, str]]:
    if connection.dialect.name != "postgresql":
        return {}
    rows = connection.execute(_PG_OWNED_SEQUENCES, {"schema": schema})
    return {sequence: (table, column) for sequence, table, column in rows}


def _server_version(connection: sa.Connection) -> str | None:
    version = connection.dialect.server_version_info
    if not version:
        return None
    text = ".".join(str(part) for part in version)
    if getattr(connection.dialect, "is_mariadb", False):
        return f"MariaDB {text}"
    return text
