"""The snapshot value and its fingerprint.

The fingerprint is SHA-256 over the canonical JSON (sorted keys, no spaces)
of ``{"normaliser_version", "dialect", "schema": identity form}``, where the
identity form is the normalised schema without what :func:`diff_schemas
<migdash.engine.schema.diff.diff_schemas>` calls cosmetic: index, unique,
foreign-key, check and primary-key names, column positions, and MySQL's own
foreign-key indexes.  So two schemas whose diff is empty or cosmetic only
have one fingerprint, and any real difference changes it.

What is deliberately left out: the server's major version (a fleet half way
through a PostgreSQL upgrade has not drifted; the snapshot records the major
beside the fingerprint, and reference-schema caches key on it themselves)
and anything cross-dialect (the dialect is in the hash, so the same models
on SQLite and PostgreSQL have different fingerprints; compare those with a
diff).  The normaliser version is in the hash, so a fingerprint is only ever
compared with one made by the same rules; callers re-snapshot rather than
compare across versions.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from migdash.errors import InvalidInput

from .normalise import (
    CHECK_IDENTITY,
    FK_IDENTITY,
    INDEX_IDENTITY,
    UNIQUE_IDENTITY,
    sort_entries,
)

NORMALISER_VERSION = 1
"""Bump whenever normalisation changes what a schema normalises to."""

_SNAPSHOT_FIELDS = ("dialect", "server_major", "normaliser_version", "schema", "fingerprint")


@dataclass(frozen=True)
class SchemaSnapshot:
    """One target's live schema, normalised, with its fingerprint."""

    dialect: str
    """SQLAlchemy's dialect name: ``sqlite``, ``postgresql``, ``mysql`` (MariaDB too), ..."""
    server_major: int | None
    """The server's major version (PostgreSQL 16, MariaDB 10, MySQL 8; SQLite 3)."""
    normaliser_version: int
    schema: dict[str, Any]
    """The canonical form (see :mod:`.normalise`): ``{"tables", "views", "enums"}``."""
    fingerprint: str
    """SHA-256 hex of the identity form; see the module docstring for what it covers."""
    server_version: str | None = None
    """The full server version as text (``MariaDB 10.11.6``), for people to read."""
    notes: tuple[str, ...] = field(default=())
    """What reflection warned about (an unrecognised type reads as UNKNOWN)."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict that :meth:`from_json` reads back unchanged."""
        return {
            "dialect": self.dialect,
            "server_major": self.server_major,
            "server_version": self.server_version,
            "normaliser_version": self.normaliser_version,
            "fingerprint": self.fingerprint,
            "notes": list(self.notes),
            "schema": self.schema,
        }

    @classmethod
    def from_json(cls, data: Any) -> SchemaSnapshot:
        """Read :meth:`to_json` output back; the stored fingerprint is kept, not recomputed.

        :raises InvalidInput: *data* is not a snapshot's JSON.
        """
        if not isinstance(data, dict) or any(key not in data for key in _SNAPSHOT_FIELDS):
            raise InvalidInput(
                "Not a schema snapshot: expected keys " + ", ".join(_SNAPSHOT_FIELDS)
            )
        schema = data["schema"]
        if not isinstance(schema, dict) or not isinstance(schema.get("tables"), dict):
            raise InvalidInput("Not a schema snapshot: 'schema' has no 'tables' mapping")
        return cls(
            dialect=str(data["dialect"]),
            server_major=None if data["server_major"] is None else int(data["server_major"]),
            normaliser_version=int(data["normaliser_version"]),
            schema={"tables": {}, "views": {}, "enums": {}, **schema},
            fingerprint=str(data["fingerprint"]),
            server_version=data.get("server_version"),
            notes=tuple(str(note) for note in data.get("notes") or ()),
        )


def build_snapshot(
    dialect: str,
    server_major: int | None,
    schema: dict[str, Any],
    *,
    server_version: str | None = None,
    notes: tuple[str, ...] = (),
) -> SchemaSnapshot:
    """A snapshot of an already normalised *schema*, fingerprinted by the current rules.

    The schema is copied with every mapping's keys in sorted order, so it
    serialises to the same text whichever order the server listed tables in.
    """
    return SchemaSnapshot(
        dialect=dialect,
        server_major=server_major,
        normaliser_version=NORMALISER_VERSION,
        schema=json.loads(canonical_json(schema)),
        fingerprint=fingerprint(dialect, schema),
        server_version=server_version,
        notes=notes,
    )


def fingerprint(dialect: str, schema: dict[str, Any]) -> str:
    """SHA-256 over the normaliser version, the dialect and the identity form of *schema*."""
    payload = {
        "normaliser_version": NORMALISER_VERSION,
        "dialect": dialect,
        "schema": identity_form(schema),
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def canonical_json(value: Any) -> str:
    """The one JSON text of *value*: sorted keys, no insignificant whitespace."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def identity_form(schema: dict[str, Any]) -> dict[str, Any]:
    """*schema* without names and positions: what two schemas must share to be the same."""
    tables = {}
    for name, table in schema.get("tables", {}).items():
        columns = {
            column: {key: value for key, value in entry.items() if key != "position"}
            for column, entry in table.get("columns", {}).items()
        }
        primary_key = table.get("primary_key")
        indexes = [index for index in table.get("indexes", []) if not index.get("fk_index")]
        tables[name] = {
            "columns": columns,
            "primary_key": primary_key and primary_key.get("columns"),
            "indexes": _nameless(indexes, INDEX_IDENTITY),
            "uniques": _nameless(table.get("uniques", []), UNIQUE_IDENTITY),
            "foreign_keys": _nameless(table.get("foreign_keys", []), FK_IDENTITY),
            "checks": _nameless(table.get("checks", []), CHECK_IDENTITY),
        }
    return {"tables": tables, "views": schema.get("views", {}), "enums": schema.get("enums", {})}


def _nameless(entries: list[dict[str, Any]], identity: tuple[str, ...]) -> list[dict[str, Any]]:
    return sort_entries([{key: entry.get(key) for key in identity} for entry in entries], identity)
