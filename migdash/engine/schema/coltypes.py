"""Column types as a family plus the parameters that change what a column holds.

The reflected SQLAlchemy type object is read (never its DDL text), so
``int4``, ``integer`` and ``serial`` are all INTEGER, ``character varying``
is VARCHAR, ``decimal`` is NUMERIC, ``timestamptz`` is TIMESTAMP WITH TIME
ZONE, MySQL's integer display widths are dropped and ``tinyint(1)`` is
BOOLEAN.  Lengths, precision, scale, time zones, UNSIGNED and enum labels
are kept, because they change what a column can hold: VARCHAR(50) and
VARCHAR(60) differ.  MySQL character sets, collations and ZEROFILL are not
compared.

Across dialects, :func:`compare_types` decides how far two spellings may
differ: against SQLite only the storage affinity counts (SQLite keeps the
declared name but stores by affinity), and between PostgreSQL and MySQL a
parameter one side cannot express (a time zone, a TEXT size class, JSONB)
makes the difference cosmetic.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeEngine

UNKNOWN = "UNKNOWN"
"""A type SQLAlchemy could not recognise (its reflection warned; see the snapshot's notes)."""

_GENERIC_NAMES = {
    "big_integer": "BIGINT",
    "small_integer": "SMALLINT",
    "integer": "INTEGER",
    "boolean": "BOOLEAN",
    "string": "VARCHAR",
    "unicode": "VARCHAR",
    "text": "TEXT",
    "unicode_text": "TEXT",
    "datetime": "DATETIME",
    "date": "DATE",
    "time": "TIME",
    "uuid": "UUID",
    "large_binary": "BLOB",
    "float": "FLOAT",
    "double": "DOUBLE",
    "double_precision": "DOUBLE",
    "DOUBLE_PRECISION": "DOUBLE",
    "numeric": "NUMERIC",
    "DECIMAL": "NUMERIC",
    "interval": "INTERVAL",
    "json": "JSON",
    "enum": "ENUM",
}
_PORTABLE = {
    "DATETIME": "TIMESTAMP",
    "TINYTEXT": "TEXT",
    "MEDIUMTEXT": "TEXT",
    "LONGTEXT": "TEXT",
    "JSONB": "JSON",
    "BYTEA": "BLOB",
    "TINYBLOB": "BLOB",
    "MEDIUMBLOB": "BLOB",
    "LONGBLOB": "BLOB",
    "CHAR(32)": "UUID",
}


def canonical_type(coltype: TypeEngine[Any], dialect: str) -> str:
    """The canonical spelling of a reflected type: ``VARCHAR(50)``, ``NUMERIC(10,2)``."""
    if isinstance(coltype, sa.types.NullType):
        return UNKNOWN
    if isinstance(coltype, sa.ARRAY):
        dimensions = coltype.dimensions or 1
        return canonical_type(coltype.item_type, dialect) + "[]" * dimensions
    if dialect == "mysql" and _visit_name(coltype) == "TINYINT" and _width(coltype) == 1:
        return "BOOLEAN"
    if isinstance(coltype, sa.Boolean):
        return "BOOLEAN"
    if isinstance(coltype, sa.Enum):
        return "ENUM(" + ",".join(_quote(label) for label in coltype.enums) + ")"
    if isinstance(coltype, sa.Integer):
        return _visit_name(coltype) + _unsigned(coltype)
    if isinstance(coltype, sa.Float):
        return _float(coltype) + _unsigned(coltype)
    if isinstance(coltype, sa.Numeric):
        return "NUMERIC" + _params(coltype.precision, coltype.scale) + _unsigned(coltype)
    if isinstance(coltype, sa.DateTime | sa.Time):
        return _temporal(coltype)
    if isinstance(coltype, sa.String | sa.types._Binary):
        return _sized(coltype)
    return _visit_name(coltype)


def sqlite_affinity(canonical: str) -> str:
    """The affinity SQLite gives a column declared as *canonical* (SQLite's documented rules).

    Names SQLAlchemy would declare differently on SQLite are mapped first:
    an ENUM or UUID is stored as text, an INTERVAL as a datetime.
    """
    name = canonical.upper()
    if name.startswith(("ENUM", "UUID")):
        return "TEXT"
    if name.startswith("INTERVAL"):
        return "NUMERIC"
    if "INT" in name:
        return "INTEGER"
    if any(part in name for part in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in name or not name:
        return "BLOB"
    if any(part in name for part in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


def portable_type(canonical: str) -> str:
    """*canonical* without what only one of PostgreSQL or MySQL can express."""
    name = canonical.replace(" WITH TIME ZONE", "")
    family, paren, rest = name.partition("(")
    name = _PORTABLE.get(family, family) + paren + rest
    return _PORTABLE.get(name, name)


def compare_types(before: str, before_dialect: str, after: str, after_dialect: str) -> str | None:
    """``None`` when the types match, ``"cosmetic"`` or ``"real"`` for how they differ.

    Same dialect: any difference of the canonical spelling is real.  Against
    SQLite: equal affinity makes it cosmetic.  PostgreSQL against MySQL:
    equal :func:`portable_type` makes it cosmetic.
    """
    if before == after:
        return None
    if before_dialect == after_dialect:
        return "real"
    if "sqlite" in (before_dialect, after_dialect):
        same = sqlite_affinity(before) == sqlite_affinity(after)
    else:
        same = portable_type(before) == portable_type(after)
    return "cosmetic" if same else "real"


def is_boolean(canonical: str) -> bool:
    return canonical == "BOOLEAN"


def is_numeric(canonical: str) -> bool:
    family = canonical.partition("(")[0].replace(" UNSIGNED", "")
    return family.endswith("INT") or family in ("INTEGER", "NUMERIC", "FLOAT", "DOUBLE", "REAL")


def _visit_name(coltype: TypeEngine[Any]) -> str:
    name = str(getattr(coltype, "__visit_name__", "") or type(coltype).__name__)
    return _GENERIC_NAMES.get(name, name.upper())


def _width(coltype: TypeEngine[Any]) -> int | None:
    return getattr(coltype, "display_width", None)


def _unsigned(coltype: TypeEngine[Any]) -> str:
    return " UNSIGNED" if getattr(coltype, "unsigned", False) else ""


def _float(coltype: sa.Float[Any]) -> str:
    name = _visit_name(coltype)
    if name in ("DOUBLE", "REAL"):
        return name
    return "FLOAT" + _params(coltype.precision)


def _temporal(coltype: sa.DateTime | sa.Time) -> str:
    name = _visit_name(coltype)
    if name not in ("DATETIME", "TIME"):
        name = "TIMESTAMP" if isinstance(coltype, sa.DateTime) else "TIME"
    precision = getattr(coltype, "precision", None) or getattr(coltype, "fsp", None)
    zone = " WITH TIME ZONE" if getattr(coltype, "timezone", False) else ""
    return name + _params(precision) + zone


def _sized(coltype: sa.String | sa.types._Binary) -> str:
    name = _visit_name(coltype)
    if name in ("NVARCHAR", "NCHAR"):
        name = name[1:]
    length = getattr(coltype, "length", None)
    return name + _params(length)


def _params(*values: int | None) -> str:
    present = [str(value) for value in values if value is not None]
    return f"({','.join(present)})" if present else ""


def _quote(label: str) -> str:
    return "'" + label.replace("'", "''") + "'"
