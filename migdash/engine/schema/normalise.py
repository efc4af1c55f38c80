"""A reflected schema in canonical, JSON-able form: the same schema reads the same everywhere.

The form, per table::

    {"columns": {name: {"type", "nullable", "default", "autoincrement", "position"
                        [, "generated"]}},
     "primary_key": {"name", "columns"} | None,
     "indexes": [{"name", "columns", "unique", "options" [, "fk_index"]}],
     "uniques": [{"name", "columns", "options"}],
     "foreign_keys": [{"name", "columns", "referred_schema", "referred_table",
                       "referred_columns", "options"}],
     "checks": [{"name", "sqltext"}]}

plus ``"views"`` (definition and columns) and ``"enums"`` (PostgreSQL labels).
Lists are sorted by what an entry covers, then by name, so the JSON text of
two equal schemas is equal.  What is folded together is listed in the
package docstring (:mod:`migdash.engine.schema`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from .coltypes import UNKNOWN, canonical_type, is_boolean, is_numeric
from .expressions import fold_identifier, normalise_expression, normalise_statement
from .reflect import RawSchema, RawTable

_NEXTVAL = re.compile(r"^nextval\('([^']+)'", re.IGNORECASE)
_DEFAULT_FK_ACTIONS = {"NO ACTION"}
_MYSQL_DEFAULT_FK_ACTIONS = {"NO ACTION", "RESTRICT"}  # InnoDB: RESTRICT is NO ACTION


def normalise_schema(
    raw: RawSchema, ignore_tables: Iterable[str], schema: str | None
) -> dict[str, Any]:
    """The canonical form of *raw*, without the tables named in *ignore_tables*."""
    dialect = raw.dialect
    ignored = {fold_table(name, dialect) for name in ignore_tables}
    tables = {
        fold_table(name, dialect): _table(table, name, raw, schema)
        for name, table in raw.tables.items()
        if fold_table(name, dialect) not in ignored
    }
    views = {
        fold_table(name, dialect): {
            "definition": normalise_statement(definition, dialect) if definition else None,
            "columns": [fold_identifier(column, dialect) for column in columns],
        }
        for name, (definition, columns) in raw.views.items()
        if fold_table(name, dialect) not in ignored
    }
    enums = {
        _enum_name(enum, schema): {"labels": list(enum.get("labels", []))}
        for enum in raw.enums
        if enum.get("visible", True) or enum.get("schema") == schema
    }
    return {"tables": tables, "views": views, "enums": enums}


def fold_table(name: str, dialect: str) -> str:
    """Table names: case-insensitive on SQLite; on MySQL they follow the file system, so kept."""
    return name.lower() if dialect == "sqlite" else name


def sort_entries(entries: list[dict[str, Any]], identity: tuple[str, ...]) -> list[dict[str, Any]]:
    """Entries in a stable order: by what they cover (*identity* fields), then by name."""

    def key(entry: dict[str, Any]) -> tuple[str, str]:
        covered = json.dumps({field: entry.get(field) for field in identity}, sort_keys=True)
        return covered, entry.get("name") or ""

    return sorted(entries, key=key)


INDEX_IDENTITY = ("columns", "unique", "options")
UNIQUE_IDENTITY = ("columns", "options")
FK_IDENTITY = ("columns", "referred_schema", "referred_table", "referred_columns", "options")
CHECK_IDENTITY = ("sqltext",)


def _table(table: RawTable, name: str, raw: RawSchema, schema: str | None) -> dict[str, Any]:
    dialect = raw.dialect
    pk_columns = [
        fold_identifier(column, dialect)
        for column in (table.primary_key or {}).get("constrained_columns") or []
    ]
    json_columns = {
        fold_identifier(column, dialect)
        for column, clause in table.column_checks
        if _is_json_valid(clause, column, dialect)
    }
    foreign_keys = [_foreign_key(fk, dialect, schema) for fk in table.foreign_keys]
    uniques, indexes = _indexes(table, dialect, [tuple(fk["columns"]) for fk in foreign_keys])
    return {
        "columns": _columns(table, name, raw, pk_columns, json_columns),
        "primary_key": (
            {"name": _primary_key_name(table, dialect), "columns": pk_columns}
            if pk_columns
            else None
        ),
        "indexes": sort_entries(indexes, INDEX_IDENTITY),
        "uniques": sort_entries(uniques, UNIQUE_IDENTITY),
        "foreign_keys": sort_entries(foreign_keys, FK_IDENTITY),
        "checks": sort_entries(_checks(table, dialect, json_columns), CHECK_IDENTITY),
    }


def _columns(
    table: RawTable, table_name: str, raw: RawSchema, pk_columns: list[str], json_columns: set[str]
) -> dict[str, dict[str, Any]]:
    dialect = raw.dialect
    columns: dict[str, dict[str, Any]] = {}
    for position, column in enumerate(table.columns):
        name = fold_identifier(column["name"], dialect)
        coltype = canonical_type(column["type"], dialect)
        if name in json_columns and coltype.endswith("TEXT"):
            coltype = "JSON"
        if coltype == UNKNOWN and column.get("type_name"):
            coltype = str(column["type_name"]).upper()
        default, autoincrement = _default(column, table_name, coltype, raw)
        if dialect == "sqlite":
            autoincrement = pk_columns == [name] and coltype == "INTEGER"
        entry: dict[str, Any] = {
            "type": coltype,
            "nullable": bool(column.get("nullable", True)),
            "default": default,
            "autoincrement": autoincrement,
            "position": position,
        }
        computed = column.get("computed")
        if computed:
            entry["default"] = None
            entry["generated"] = {
                "expression": normalise_expression(str(computed["sqltext"]), dialect),
                "persisted": bool(computed.get("persisted")),
            }
        columns[name] = entry
    return columns


def _default(
    column: dict[str, Any], table_name: str, coltype: str, raw: RawSchema
) -> tuple[str | None, bool]:
    """``(default, autoincrement)``: an identity or a column-owned ``nextval()`` is the flag."""
    text = column.get("default")
    if column.get("identity"):
        return None, True
    if raw.dialect == "postgresql" and text is not None:
        match = _NEXTVAL.match(text.strip())
        if match:
            sequence = match.group(1).rsplit(".", 1)[-1].strip('"')
            if raw.owned_sequences.get(sequence) == (table_name, column["name"]):
                return None, True
    autoincrement = raw.dialect == "mysql" and column.get("autoincrement") is True
    if text is None or str(text).strip().upper() == "NULL":
        return None, autoincrement
    default = normalise_expression(
        str(text), raw.dialect, boolean=is_boolean(coltype), numeric=is_numeric(coltype)
    )
    return default, autoincrement


def _primary_key_name(table: RawTable, dialect: str) -> str | None:
    name = (table.primary_key or {}).get("name")
    if not name or dialect == "mysql":  # MySQL calls every primary key PRIMARY
        return None
    return fold_identifier(name, dialect)


def _indexes(
    table: RawTable, dialect: str, fk_columns: list[tuple[str, ...]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(uniques, indexes)``: a plain unique index and a UNIQUE constraint are one thing."""
    uniques: list[dict[str, Any]] = []
    indexes: list[dict[str, Any]] = []
    for index in table.indexes:
        if index.get("duplicates_constraint"):
            continue  # PostgreSQL: the UNIQUE constraint below stands for it
        name = _name(index.get("name"), dialect)
        columns = _index_columns(index, dialect)
        options = _index_options(index, dialect)
        plain = all(not column.startswith("(") and " " not in column for column in columns)
        if index.get("unique") and plain and not options:
            uniques.append({"name": name, "columns": columns, "options": {}})
            continue
        entry = {
            "name": name,
            "columns": columns,
            "unique": bool(index.get("unique")),
            "options": options,
        }
        if (
            dialect == "mysql"
            and not entry["unique"]
            and not options
            and tuple(columns) in fk_columns
        ):
            entry["fk_index"] = True  # InnoDB creates it for the foreign key by itself
        indexes.append(entry)
    for unique in table.unique_constraints:
        if unique.get("duplicates_index"):
            continue  # MySQL: the unique index above stands for it
        options = {}
        if (unique.get("dialect_options") or {}).get("postgresql_nulls_not_distinct"):
            options["nulls_not_distinct"] = True
        columns = [fold_identifier(column, dialect) for column in unique["column_names"]]
        uniques.append(
            {"name": _name(unique.get("name"), dialect), "columns": columns, "options": options}
        )
    return uniques, indexes


def _index_columns(index: dict[str, Any], dialect: str) -> list[str]:
    if "elements" in index:  # SQLite, read from the CREATE INDEX text
        return list(index["elements"])
    names = index.get("column_names") or []
    expressions = index.get("expressions") or names
    sorting = index.get("column_sorting") or {}
    columns = []
    for column, expression in zip(names, expressions, strict=False):
        if column is not None:
            text = fold_identifier(column, dialect)
        else:
            text = f"({normalise_expression(expression, dialect)})"
        flags = sorting.get(column if column is not None else expression) or ()
        columns.append(" ".join([text, *(flag.upper().replace("_", " ") for flag in flags)]))
    return columns


def _index_options(index: dict[str, Any], dialect: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if index.get("where"):
        options["where"] = index["where"]
    if index.get("unparsed"):
        options["sql"] = " ".join(index["unparsed"].split())
    for key, value in (index.get("dialect_options") or {}).items():
        short = key.split("_", 1)[-1]
        if short == "where":
            value = normalise_expression(str(value), dialect)
        if value in (None, "", False) or value == [] or value == {}:
            continue
        if short == "using" and str(value).lower() == "btree":
            continue
        options[short] = _json_safe(value)
    return options


def _foreign_key(fk: dict[str, Any], dialect: str, schema: str | None) -> dict[str, Any]:
    referred_schema = fk.get("referred_schema")
    defaults = _MYSQL_DEFAULT_FK_ACTIONS if dialect == "mysql" else _DEFAULT_FK_ACTIONS
    options: dict[str, Any] = {}
    for key, value in (fk.get("options") or {}).items():
        if key == "deferrable":
            if value:
                options[key] = True
        elif value is not None and str(value).upper() not in defaults:
            options[key] = str(value).upper()
    if not options.get("deferrable"):
        options.pop("initially", None)
    return {
        "name": _name(fk.get("name"), dialect),
        "columns": [fold_identifier(column, dialect) for column in fk["constrained_columns"]],
        "referred_schema": None if referred_schema == schema else referred_schema,
        "referred_table": fold_table(fk["referred_table"], dialect),
        "referred_columns": [fold_identifier(column, dialect) for column in fk["referred_columns"]],
        "options": options,
    }


def _checks(table: RawTable, dialect: str, json_columns: set[str]) -> list[dict[str, Any]]:
    checks = [
        {
            "name": _name(check.get("name"), dialect),
            "sqltext": normalise_expression(str(check["sqltext"]), dialect),
        }
        for check in table.check_constraints
    ]
    for column, clause in table.column_checks:
        if fold_identifier(column, dialect) in json_columns and _is_json_valid(
            clause, column, dialect
        ):
            continue  # part of the JSON type on MariaDB
        checks.append(
            {"name": _name(column, dialect), "sqltext": normalise_expression(clause, dialect)}
        )
    return checks


def _is_json_valid(clause: str, column: str, dialect: str) -> bool:
    expected = normalise_expression(f"json_valid(`{column}`)", dialect)
    return normalise_expression(clause, dialect) == expected


def _name(name: str | None, dialect: str) -> str | None:
    return fold_identifier(name, dialect) if name else None


def _enum_name(enum: dict[str, Any], schema: str | None) -> str:
    enum_schema = enum.get("schema")
    if enum.get("visible", True) or enum_schema in (None, schema):
        return str(enum["name"])
    return f"{enum_schema}.{enum['name']}"


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
