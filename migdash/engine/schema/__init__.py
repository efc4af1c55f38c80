"""Schema snapshots, normalisation and diff: is this database's schema the same as that one's?

Engine layering applies: no Flask, nothing from ``migdash.web``, ``jobs`` or
``store``.  :func:`snapshot_schema` reads a live schema through one
connection (one round trip per kind of object) and returns a
:class:`SchemaSnapshot`; :func:`diff_schemas` compares two snapshots, also
across dialects.  Modules: :mod:`.reflect` (the Inspector), :mod:`.coltypes`
and :mod:`.expressions` (spelling), :mod:`.normalise` (the canonical form),
:mod:`.snapshot` (value and fingerprint), :mod:`.diff`.

What is normalised (``NORMALISER_VERSION`` 1):

- **Types** become a family plus parameters, read from SQLAlchemy's type
  objects: ``int4``/``integer``/``serial`` are INTEGER, ``int8``/``bigserial``
  BIGINT, ``varchar``/``character varying`` VARCHAR(n), ``numeric``/``decimal``
  NUMERIC(p,s), ``timestamptz`` TIMESTAMP WITH TIME ZONE, ``double precision``
  DOUBLE; MySQL ``tinyint(1)`` is BOOLEAN, integer display widths are dropped,
  MariaDB ``longtext`` with a ``json_valid(col)`` check is JSON (and the check
  is not listed).  Kept: lengths, precision, scale, time zone, UNSIGNED, enum
  labels.  Not compared: MySQL character sets, collations, ZEROFILL.
- **Types across dialects**: against SQLite only the storage affinity counts
  (SQLite's own rules); between PostgreSQL and MySQL, DATETIME = TIMESTAMP
  (time zone and precision aside), TINYTEXT/MEDIUMTEXT/LONGTEXT = TEXT,
  JSONB = JSON, BYTEA = BLOB kinds, CHAR(32) = UUID.  Such a pair is reported
  as a *cosmetic* type difference, not hidden.
- **Defaults**: casts and redundant parentheses are dropped; ``now()``,
  ``CURRENT_TIMESTAMP``, ``current_timestamp()`` and ``transaction_timestamp()``
  are CURRENT_TIMESTAMP; on a BOOLEAN column ``true``/``1``/``'1'`` are TRUE
  and ``false``/``0``/``'0'`` FALSE; on a numeric column a number, quoted or
  not, is compared by value (``'0.00'`` = ``0``); a ``NULL`` default is no
  default.  A ``nextval()`` of a sequence owned by the column (``serial``) and
  an identity are dropped from the default and become ``autoincrement: true``
  (so SERIAL, IDENTITY and an Integer model key agree); so are MySQL's
  AUTO_INCREMENT and SQLite's INTEGER PRIMARY KEY.  A ``nextval()`` of a
  sequence the column does not own stays a default.
- **Expressions** (defaults, CHECKs, index expressions and predicates,
  generated columns, views) are parsed with sqlglot in the source dialect and
  printed in one spelling: keyword and function case, quoting and
  parentheses no longer matter, database qualifiers are dropped.  A cast
  inside an expression is dropped too (PostgreSQL adds them on its own).
- **Indexes, UNIQUE and foreign keys** are matched by what they cover:
  columns or expressions in order with DESC/NULLS flags, uniqueness,
  predicate, method other than btree, INCLUDE columns, operator classes;
  referenced table and columns, ON DELETE/ON UPDATE (NO ACTION dropped; on
  MySQL RESTRICT too, as InnoDB treats them alike), DEFERRABLE.  A UNIQUE
  constraint and a plain unique index are the same entry (MySQL cannot tell
  them apart).  A name-only difference is cosmetic; an unnamed constraint
  matches a named one silently.  MySQL's own foreign-key index (a plain index
  on exactly a foreign key's columns) is cosmetic when one side lacks it.
- **Column order** is cosmetic (one item per table).  **Primary-key names**
  are cosmetic (and ignored on MySQL, where every one is PRIMARY).
- **Identifiers** are case-folded per dialect: all of them on SQLite; column,
  index and constraint names on MySQL (table names follow the file system
  there and are kept); none on PostgreSQL, where the reflected name is exact.
- **Ignored**: ``alembic_version`` and any other table in ``ignore_tables``,
  AUTO_INCREMENT counters, owners, grants, comments, table options, storage
  engines, sequences (other than as above), triggers, functions.

Never folded: VARCHAR(50) vs VARCHAR(60), a default ``'a'`` vs ``'b'``,
nullability, autoincrement, CHECK text, index coverage: these are real.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from .diff import DiffItem, SchemaDiff, diff_schemas
from .normalise import normalise_schema
from .reflect import reflect_schema
from .snapshot import (
    NORMALISER_VERSION,
    SchemaSnapshot,
    build_snapshot,
    canonical_json,
    fingerprint,
)

__all__ = [
    "NORMALISER_VERSION",
    "DiffItem",
    "SchemaDiff",
    "SchemaSnapshot",
    "canonical_json",
    "diff_schemas",
    "fingerprint",
    "snapshot_schema",
]


def snapshot_schema(
    connection: sa.Connection,
    *,
    ignore_tables: Iterable[str] = ("alembic_version",),
    schema: str | None = None,
) -> SchemaSnapshot:
    """Reflect, normalise and fingerprint the live schema behind *connection*.

    Read-only, and the caller owns the connection and its transaction.  Not
    for the hot status path: it reads every table's definition.

    :param ignore_tables: tables to leave out (compared case-folded per dialect).
    :param schema: the database schema to read; the connection's default when None.
    """
    raw = reflect_schema(connection, schema)
    normalised = normalise_schema(raw, ignore_tables, schema)
    major = raw.server_version_info[0] if raw.server_version_info else None
    return build_snapshot(
        raw.dialect,
        int(major) if isinstance(major, int) else None,
        normalised,
        server_version=raw.server_version,
        notes=tuple(raw.notes),
    )
