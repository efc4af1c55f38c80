"""The difference between two snapshots, item by item, real or cosmetic.

Indexes, unique constraints, foreign keys and checks are matched by what
they cover (the identity fields in :mod:`.normalise`), never by name: a pair
that covers the same thing under two names is a cosmetic rename.  What is
left is paired by name (a "changed" item) or reported as added or removed.
A real difference is one that changes what the database accepts or how it
behaves; a cosmetic one does not (a name, the column order, MySQL's own
foreign-key index, a spelling only one dialect can write).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .coltypes import compare_types
from .normalise import CHECK_IDENTITY, FK_IDENTITY, INDEX_IDENTITY, UNIQUE_IDENTITY
from .snapshot import SchemaSnapshot, canonical_json

COLUMN_ORDER = "(column order)"
"""The ``name`` of the one item per table that reports a different column order."""
_VERBS = {"added": "added", "removed": "dropped", "changed": "changed"}
_SUMMARY_ITEMS = 10

Entry = dict[str, Any]


@dataclass(frozen=True)
class DiffItem:
    """One difference between the left (before) and the right (after) schema."""

    change: str
    """``added`` (only on the right), ``removed`` (only on the left) or ``changed``."""
    kind: str
    """``table``, ``column``, ``primary_key``, ``index``, ``unique``, ``foreign_key``,
    ``check``, ``view`` or ``enum``."""
    table: str | None
    """The table it belongs to (the table itself for kind ``table``); None for views and enums."""
    name: str
    """Column, index or constraint name (the left one for a rename), or the table's, view's or
    enum's name; an unnamed constraint is named by what it covers."""
    detail: str
    """One line for people: ``type VARCHAR(50) -> VARCHAR(60)``, ``renamed ix_a -> ix_b``."""
    cosmetic: bool
    """True for a name-only, order-only or dialect-spelling difference."""
    before: Any = None
    after: Any = None

    def phrase(self) -> str:
        """The item as a summary reads it: ``column orders.note added``."""
        where = f"{self.table}.{self.name}" if self.kind == "column" else self.name
        if self.change == "changed":
            return f"{self.kind.replace('_', ' ')} {where}: {self.detail}"
        return f"{self.kind.replace('_', ' ')} {where} {_VERBS[self.change]}"

    def to_json(self) -> dict[str, Any]:
        return {
            "change": self.change,
            "kind": self.kind,
            "table": self.table,
            "name": self.name,
            "detail": self.detail,
            "cosmetic": self.cosmetic,
            "before": self.before,
            "after": self.after,
        }


@dataclass(frozen=True)
class SchemaDiff:
    """All differences between two snapshots, in a stable order (tables by name, then views)."""

    items: tuple[DiffItem, ...]

    @property
    def real(self) -> tuple[DiffItem, ...]:
        return tuple(item for item in self.items if not item.cosmetic)

    @property
    def cosmetic(self) -> tuple[DiffItem, ...]:
        return tuple(item for item in self.items if item.cosmetic)

    @property
    def same(self) -> bool:
        """No real difference (cosmetic ones may remain)."""
        return not self.real

    def to_json(self) -> dict[str, Any]:
        return {
            "same": self.same,
            "summary": self.summary(),
            "real_count": len(self.real),
            "cosmetic_count": len(self.cosmetic),
            "items": [item.to_json() for item in self.items],
        }

    def summary(self) -> str:
        """One line: ``2 differences: column orders.note added; index ix_x dropped``."""
        real, cosmetic = self.real, self.cosmetic
        if not real:
            return f"no differences ({len(cosmetic)} cosmetic)" if cosmetic else "no differences"
        phrases = [item.phrase() for item in real[:_SUMMARY_ITEMS]]
        if len(real) > _SUMMARY_ITEMS:
            phrases.append(f"and {len(real) - _SUMMARY_ITEMS} more")
        noun = "difference" if len(real) == 1 else "differences"
        return f"{len(real)} {noun}: " + "; ".join(phrases)


def diff_schemas(a: SchemaSnapshot, b: SchemaSnapshot) -> SchemaDiff:
    """What changes from *a* (left, before) to *b* (right, after); the dialects may differ."""
    sides = _Sides(a.dialect, b.dialect)
    items: list[DiffItem] = []
    tables_a, tables_b = a.schema.get("tables", {}), b.schema.get("tables", {})
    for name in sorted(tables_a.keys() | tables_b.keys()):
        if name not in tables_b:
            items.append(
                DiffItem("removed", "table", name, name, "table dropped", False, tables_a[name])
            )
        elif name not in tables_a:
            items.append(
                DiffItem("added", "table", name, name, "table added", False, None, tables_b[name])
            )
        else:
            items.extend(_diff_table(name, tables_a[name], tables_b[name], sides))
    items.extend(_diff_views(a.schema.get("views", {}), b.schema.get("views", {}), sides))
    items.extend(_diff_enums(a.schema.get("enums", {}), b.schema.get("enums", {}), sides))
    return SchemaDiff(tuple(items))


@dataclass(frozen=True)
class _Sides:
    before: str
    after: str

    @property
    def cross(self) -> bool:
        return self.before != self.after


def _diff_table(table: str, a: Entry, b: Entry, sides: _Sides) -> Iterator[DiffItem]:
    yield from _diff_columns(table, a.get("columns", {}), b.get("columns", {}), sides)
    yield from _diff_primary_key(table, a.get("primary_key"), b.get("primary_key"))
    matchers: list[tuple[str, str, tuple[str, ...], Callable[[Entry], str]]] = [
        ("index", "indexes", INDEX_IDENTITY, _describe_index),
        ("unique", "uniques", UNIQUE_IDENTITY, _describe_unique),
        ("foreign_key", "foreign_keys", FK_IDENTITY, _describe_fk),
        ("check", "checks", CHECK_IDENTITY, _describe_check),
    ]
    for kind, key, identity, describe in matchers:
        yield from _diff_entries(kind, table, a.get(key, []), b.get(key, []), identity, describe)


def _diff_columns(
    table: str, a: dict[str, Entry], b: dict[str, Entry], sides: _Sides
) -> Iterator[DiffItem]:
    for name in sorted(a.keys() | b.keys()):
        if name not in b:
            yield DiffItem(
                "removed", "column", table, name, f"dropped: {a[name]['type']}", False, a[name]
            )
        elif name not in a:
            yield DiffItem(
                "added", "column", table, name, f"added: {b[name]['type']}", False, None, b[name]
            )
        else:
            yield from _diff_column(table, name, a[name], b[name], sides)
    order_a = [name for name in _by_position(a) if name in b]
    order_b = [name for name in _by_position(b) if name in a]
    if order_a != order_b:
        detail = f"column order {', '.join(order_a)} -> {', '.join(order_b)}"
        yield DiffItem("changed", "column", table, COLUMN_ORDER, detail, True, order_a, order_b)


def _diff_column(table: str, name: str, a: Entry, b: Entry, sides: _Sides) -> Iterator[DiffItem]:
    verdict = compare_types(a["type"], sides.before, b["type"], sides.after)
    if verdict is not None:
        detail = f"type {a['type']} -> {b['type']}"
        if verdict == "cosmetic":
            detail += f" ({_equivalence(sides)})"
        yield DiffItem(
            "changed", "column", table, name, detail, verdict == "cosmetic", a["type"], b["type"]
        )
    if a.get("nullable") != b.get("nullable"):
        detail = f"{_nullability(a)} -> {_nullability(b)}"
        yield DiffItem(
            "changed", "column", table, name, detail, False, a.get("nullable"), b.get("nullable")
        )
    for field, label in (
        ("default", "default"),
        ("autoincrement", "autoincrement"),
        ("generated", "generated"),
    ):
        if a.get(field) != b.get(field):
            detail = f"{label} {_show(a.get(field))} -> {_show(b.get(field))}"
            yield DiffItem(
                "changed", "column", table, name, detail, False, a.get(field), b.get(field)
            )


def _diff_primary_key(table: str, a: Entry | None, b: Entry | None) -> Iterator[DiffItem]:
    if a is None and b is None:
        return
    label = (a or b or {}).get("name") or f"{table}_pkey"
    if a is None or b is None:
        change = "added" if a is None else "removed"
        described = _columns(b if a is None else a)
        yield DiffItem(change, "primary_key", table, label, f"primary key {described}", False, a, b)
    elif a["columns"] != b["columns"]:
        yield DiffItem(
            "changed", "primary_key", table, label, f"{_columns(a)} -> {_columns(b)}", False, a, b
        )
    elif a.get("name") and b.get("name") and a["name"] != b["name"]:
        yield DiffItem(
            "changed",
            "primary_key",
            table,
            label,
            f"renamed {a['name']} -> {b['name']}",
            True,
            a,
            b,
        )


def _diff_entries(
    kind: str,
    table: str,
    a: list[Entry],
    b: list[Entry],
    identity: tuple[str, ...],
    describe: Callable[[Entry], str],
) -> Iterator[DiffItem]:
    """Match by identity, then by name; whatever is left was added or removed."""
    pairs, left_a, left_b = _pair(a, b, lambda entry: _identity(entry, identity))
    for entry_a, entry_b in pairs:
        if entry_a.get("name") and entry_b.get("name") and entry_a["name"] != entry_b["name"]:
            detail = f"renamed {entry_a['name']} -> {entry_b['name']}"
            yield DiffItem("changed", kind, table, entry_a["name"], detail, True, entry_a, entry_b)
    named_pairs, only_a, only_b = _pair(left_a, left_b, lambda entry: entry.get("name") or None)
    for entry_a, entry_b in named_pairs:
        detail = f"{describe(entry_a)} -> {describe(entry_b)}"
        yield DiffItem("changed", kind, table, entry_a["name"], detail, False, entry_a, entry_b)
    for entry in only_a:
        label = entry.get("name") or describe(entry)
        yield DiffItem(
            "removed", kind, table, label, f"dropped: {describe(entry)}", _own(entry), entry
        )
    for entry in only_b:
        label = entry.get("name") or describe(entry)
        yield DiffItem(
            "added", kind, table, label, f"added: {describe(entry)}", _own(entry), None, entry
        )


def _pair(
    a: list[Entry], b: list[Entry], key: Callable[[Entry], str | None]
) -> tuple[list[tuple[Entry, Entry]], list[Entry], list[Entry]]:
    """Pair entries with equal keys (``None`` never pairs), same names first; symmetric in a, b."""
    pairs: list[tuple[Entry, Entry]] = []
    groups_a: dict[str, list[Entry]] = {}
    groups_b: dict[str, list[Entry]] = {}
    left_a: list[Entry] = []
    left_b: list[Entry] = []
    for entries, groups, left in ((a, groups_a, left_a), (b, groups_b, left_b)):
        for entry in entries:
            entry_key = key(entry)
            if entry_key is None:
                left.append(entry)
            else:
                groups.setdefault(entry_key, []).append(entry)
    for entry_key in sorted(groups_a.keys() | groups_b.keys()):
        group_a = sorted(groups_a.get(entry_key, []), key=_name_key)
        group_b = sorted(groups_b.get(entry_key, []), key=_name_key)
        for entry in list(group_a):
            twin = next(
                (other for other in group_b if other.get("name") == entry.get("name")), None
            )
            if twin is not None:
                pairs.append((entry, twin))
                group_a.remove(entry)
                group_b.remove(twin)
        pairs.extend(zip(group_a, group_b, strict=False))
        left_a.extend(group_a[len(group_b) :])
        left_b.extend(group_b[len(group_a) :])
    return pairs, left_a, left_b


def _diff_views(a: dict[str, Entry], b: dict[str, Entry], sides: _Sides) -> Iterator[DiffItem]:
    for name in sorted(a.keys() | b.keys()):
        if name not in b:
            yield DiffItem("removed", "view", None, name, "view dropped", False, a[name])
        elif name not in a:
            yield DiffItem("added", "view", None, name, "view added", False, None, b[name])
        else:
            if a[name].get("columns") != b[name].get("columns"):
                detail = (
                    f"columns {_show(a[name].get('columns'))} -> {_show(b[name].get('columns'))}"
                )
                yield DiffItem("changed", "view", None, name, detail, False, a[name], b[name])
            if a[name].get("definition") != b[name].get("definition"):
                detail = "definition changed"
                if sides.cross:
                    detail += f" (each dialect rewrites view text: {sides.before}, {sides.after})"
                yield DiffItem("changed", "view", None, name, detail, sides.cross, a[name], b[name])


def _diff_enums(a: dict[str, Entry], b: dict[str, Entry], sides: _Sides) -> Iterator[DiffItem]:
    both_named = sides.before == sides.after == "postgresql"
    for name in sorted(a.keys() | b.keys()):
        if name not in b or name not in a:
            change = "removed" if name not in b else "added"
            detail = f"enum type {_VERBS[change]}"
            if not both_named:
                detail += " (named enum types exist only on postgresql)"
            yield DiffItem(
                change, "enum", None, name, detail, not both_named, a.get(name), b.get(name)
            )
        elif a[name] != b[name]:
            detail = f"labels {_show(a[name].get('labels'))} -> {_show(b[name].get('labels'))}"
            yield DiffItem("changed", "enum", None, name, detail, False, a[name], b[name])


def _equivalence(sides: _Sides) -> str:
    if "sqlite" in (sides.before, sides.after):
        return "same SQLite affinity"
    return f"the same type as {sides.before} and {sides.after} can write it"


def _own(entry: Entry) -> bool:
    """MySQL creates an index for a foreign key by itself: having it or not is cosmetic."""
    return bool(entry.get("fk_index"))


def _identity(entry: Entry, identity: tuple[str, ...]) -> str:
    return canonical_json({field: entry.get(field) for field in identity})


def _name_key(entry: Entry) -> str:
    return entry.get("name") or ""


def _by_position(columns: dict[str, Entry]) -> list[str]:
    return sorted(columns, key=lambda name: (columns[name].get("position", 0), name))


def _columns(entry: Entry | None) -> str:
    return "(" + ", ".join((entry or {}).get("columns") or []) + ")"


def _options(entry: Entry) -> str:
    options = entry.get("options") or {}
    return "".join(f" {key}={_show(value)}" for key, value in sorted(options.items()))


def _describe_index(entry: Entry) -> str:
    unique = "unique " if entry.get("unique") else ""
    return f"{unique}index {_columns(entry)}{_options(entry)}"


def _describe_unique(entry: Entry) -> str:
    return f"unique {_columns(entry)}{_options(entry)}"


def _describe_fk(entry: Entry) -> str:
    schema = f"{entry['referred_schema']}." if entry.get("referred_schema") else ""
    referred = (
        f"{schema}{entry.get('referred_table')}({', '.join(entry.get('referred_columns') or [])})"
    )
    return f"foreign key {_columns(entry)} -> {referred}{_options(entry)}"


def _describe_check(entry: Entry) -> str:
    return f"CHECK ({entry.get('sqltext')})"


def _nullability(entry: Entry) -> str:
    return "nullable" if entry.get("nullable") else "not null"


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return "(" + ", ".join(str(item) for item in value) + ")"
    if isinstance(value, dict):
        return canonical_json(value)
    return str(value)
