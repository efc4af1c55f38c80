"""Drift against the models: what ``alembic check`` finds, as data, with nothing written.

:func:`compare_models` runs the project's ``env.py`` the way Alembic's
``command.check`` does (an :class:`~alembic.runtime.environment.EnvironmentContext`
with a :class:`~alembic.autogenerate.RevisionContext`), so ``target_metadata``,
``compare_type``, ``compare_server_default``, ``include_schemas``, a
``process_revision_directives`` hook and every other option reach autogenerate
from ``env.py``'s own ``context.configure(...)`` call, exactly as for
``alembic check`` and ``alembic revision --autogenerate``.  Three things differ,
on purpose:

- tables the models do not know are not compared (so never reported as
  drops): a name filter (``include_name``) and an object filter
  (``include_object``) are added to whatever ``env.py`` passes, and both must
  agree; everything the models know is compared as Alembic compares it;
- nothing is written: no version table is created on a database that has
  none (``dont_mutate``, as ``alembic current`` does), and any statement that
  would change the database is refused (:func:`read_only`);
- a database not at the project's heads is reported as such (the check does
  not apply: Alembic refuses to autogenerate against it) instead of failing.

Executes ``env.py``: it runs in a child process only (``migdash.jobs.runner``).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from alembic import autogenerate
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from migdash.errors import MigdashError

CHECK_ARGS: dict[str, Any] = {
    "message": None,
    "autogenerate": True,
    "sql": False,
    "head": "head",
    "splice": False,
    "branch_label": None,
    "version_path": None,
    "rev_id": None,
    "depends_on": None,
}
"""The revision arguments ``alembic check`` uses (``command.check``)."""

_WRITES = frozenset(
    {
        *("insert", "update", "delete", "merge", "upsert", "replace", "copy", "load"),
        *("create", "alter", "drop", "truncate", "rename", "comment", "grant", "revoke"),
        *("vacuum", "reindex", "cluster", "lock", "call", "do"),
    }
)
"""First words of statements that change a database (or may: a procedure call, a PL block)."""
_FIRST_WORD = re.compile(r"^(?:\s|/\*.*?\*/|--[^\n]*(?:\n|$)|\()*(\w+)", re.DOTALL)


class ModelsNotCompared(MigdashError):
    """``env.py`` finished without running the comparison (it never ran its migrations)."""

    hint = "env.py must call context.configure(...) and context.run_migrations() when online."


class WriteRefused(MigdashError):
    """Something tried to change the database during a drift check; nothing was written."""

    hint = "A drift check only reads. Make env.py leave the database alone when online."


@dataclass
class _Findings:
    """What the comparison left behind (filled in while ``env.py`` runs)."""

    compared: bool = False
    has_metadata: bool = False
    up_to_date: bool = False
    revisions: tuple[str, ...] = ()
    context: MigrationContext | None = None


def compare_models(config: Config) -> dict[str, Any]:
    """Run ``env.py`` as ``alembic check`` does; return its findings as plain JSON-able data.

    Keys: ``has_metadata`` (``env.py`` passed a ``target_metadata``),
    ``up_to_date`` (the database is at every head, so the comparison ran),
    ``revisions`` (the version table's rows), ``heads`` (the project's),
    ``dialect``, ``diffs`` (see :func:`plain_diffs`) and ``operations``
    (the upgrade operations as Alembic would write them into a revision).

    :raises ModelsNotCompared: ``env.py`` never ran its migrations online.
    :raises WriteRefused: something tried to write to the database.
    """
    script = ScriptDirectory.from_config(config)
    revision_context = autogenerate.RevisionContext(config, script, dict(CHECK_ARGS))
    found = _Findings()

    def compare(rev: Any, context: MigrationContext) -> list[Any]:
        found.compared, found.context = True, context
        found.revisions = tuple(rev or ())
        found.has_metadata = context.opts.get("target_metadata") is not None
        found.up_to_date = set(script.get_revisions(rev)) == set(script.get_revisions("heads"))
        if found.has_metadata and found.up_to_date:
            revision_context.run_autogenerate(rev, context)
        return []  # no step: nothing runs, nothing is stamped

    with (
        read_only(),
        models_environment(
            config,
            script,
            fn=compare,
            as_sql=False,
            dont_mutate=True,
            template_args=revision_context.template_args,
            revision_context=revision_context,
        ),
    ):
        script.run_env()
    if not found.compared or found.context is None:
        raise ModelsNotCompared("env.py finished without running its migrations online")
    return _findings(found, revision_context, list(script.get_heads()))


def _findings(
    found: _Findings, revision_context: autogenerate.RevisionContext, heads: list[str]
) -> dict[str, Any]:
    context = found.context
    assert context is not None  # checked by the caller
    result: dict[str, Any] = {
        "has_metadata": found.has_metadata,
        "up_to_date": found.up_to_date,
        "revisions": sorted(found.revisions),
        "heads": sorted(heads),
        "dialect": context.dialect.name,
        "diffs": [],
        "operations": None,
    }
    generated = revision_context.generated_revisions
    if not (found.has_metadata and found.up_to_date) or not generated:
        return result  # a process_revision_directives hook may drop an empty script
    upgrade_ops = [ops for ops in generated[-1].upgrade_ops_list if not ops.is_empty()]
    result["diffs"] = plain_diffs(
        [diff for ops in upgrade_ops for diff in ops.as_diffs()], context.dialect
    )
    if upgrade_ops:
        result["operations"] = "\n\n".join(render_operations(ops, context) for ops in upgrade_ops)
    return result


def render_operations(upgrade_ops: Any, context: MigrationContext) -> str:
    """The body of ``upgrade()`` Alembic would write for *upgrade_ops*, with env.py's options."""
    opts = context.opts
    code = autogenerate.render_python_code(
        upgrade_ops,
        sqlalchemy_module_prefix=opts.get("sqlalchemy_module_prefix") or "sa.",
        alembic_module_prefix=opts.get("alembic_module_prefix") or "op.",
        render_as_batch=bool(opts.get("render_as_batch")),
        render_item=opts.get("render_item"),
        # the target's dialect (its types render as they would in the revision file), without
        # env.py's script: with one, Alembic would insist on metadata for a mere rendering
        migration_context=MigrationContext.configure(dialect=context.dialect),
        user_module_prefix=opts.get("user_module_prefix"),
    )
    # Alembic indents every line but the first (the template supplies that one)
    return textwrap.dedent("    " + code).strip("\n")


def models_environment(config: Config, script: ScriptDirectory, **kw: Any) -> EnvironmentContext:
    """An ``EnvironmentContext`` whose ``configure`` adds migdash's filters to ``env.py``'s own.

    The instance's ``configure`` is wrapped, not subclassed: Alembic installs
    the ``alembic.context`` proxy per class, and only for ``EnvironmentContext``.
    """
    environment = EnvironmentContext(config, script, **kw)
    configure = environment.configure

    def default_schema() -> str | None:
        return environment.get_context().dialect.default_schema_name

    def configure_filtered(*args: Any, **options: Any) -> None:
        known = known_tables(options.get("target_metadata"))
        options["include_name"] = _all_of(
            table_name_filter(known, default_schema), options.get("include_name")
        )
        options["include_object"] = _all_of(skip_unknown_tables, options.get("include_object"))
        configure(*args, **options)

    environment.configure = configure_filtered  # type: ignore[method-assign]
    return environment


def known_tables(
    metadata: sa.MetaData | Sequence[sa.MetaData] | None,
) -> set[tuple[str | None, str]]:
    """``(schema, name)`` of every table in *metadata* (one MetaData or a sequence of them)."""
    if metadata is None:
        return set()
    collections = [metadata] if isinstance(metadata, sa.MetaData) else list(metadata)
    return {(table.schema, table.name) for m in collections for table in m.tables.values()}


def table_name_filter(
    known: set[tuple[str | None, str]], default_schema: Callable[[], str | None]
) -> Callable[[str | None, str, dict[str, Any]], bool]:
    """An ``include_name`` hook: reflect only tables the models know.

    The database reports tables of its default schema with no schema, while
    a model may name that schema explicitly (Alembic treats both alike).
    """

    def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
        if type_ != "table" or name is None:
            return True
        schema = parent_names.get("schema_name")
        if (schema, name) in known:
            return True
        default = default_schema()
        return (schema is None and (default, name) in known) or (
            schema == default and (None, name) in known
        )

    return include_name


def skip_unknown_tables(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """An ``include_object`` hook: a table found only in the database is not a drop."""
    return not (type_ == "table" and reflected and compare_to is None)


def _all_of(ours: Callable[..., bool], theirs: Callable[..., bool] | None) -> Callable[..., bool]:
    if theirs is None:
        return ours

    def both(*args: Any) -> bool:
        return bool(ours(*args)) and bool(theirs(*args))

    return both


@contextmanager
def read_only() -> Iterator[None]:
    """Refuse every statement that would change a database while the block runs.

    A drift check only reads (reflection is ``SELECT``, ``PRAGMA`` and
    ``SHOW``); this makes sure that stays true whatever ``env.py`` or a
    future Alembic does.  The refusal happens before the statement is sent.
    """

    def check(_conn: sa.Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        match = _FIRST_WORD.match(statement)
        if match and match.group(1).lower() in _WRITES:
            first = " ".join(statement.split())[:80]
            raise WriteRefused(f"a drift check only reads; refused {first!r}: nothing was written")

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", check)
    try:
        yield
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", check)


# --- diffs as plain data ----------------------------------------------------------------------


@dataclass(frozen=True)
class ModelDiff:
    """One difference autogenerate found, in words and as JSON-able values."""

    kind: str
    """Alembic's name for it: ``add_column``, ``remove_index``, ``modify_type`` ..."""
    subject: str
    """What it is about: ``accounts``, ``accounts.note``, ``ix_accounts_note`` ..."""
    text: str
    args: list[Any] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "subject": self.subject, "text": self.text, "args": self.args}


def plain_diffs(diffs: Sequence[Any], dialect: sa.Dialect) -> list[dict[str, Any]]:
    """``UpgradeOps.as_diffs()`` as JSON-able dicts (column changes come as lists: flattened)."""
    flat: list[tuple[Any, ...]] = []
    for diff in diffs:
        if isinstance(diff, list):
            flat.extend(diff)
        else:
            flat.append(diff)
    return [describe_diff(diff, dialect).to_json() for diff in flat]


def describe_diff(diff: tuple[Any, ...], dialect: sa.Dialect) -> ModelDiff:
    kind, args = str(diff[0]), diff[1:]
    plain = [_plain(arg, dialect) for arg in args]
    if kind.startswith("modify_"):
        schema, table, column = args[0], args[1], args[2]
        subject = f"{_qualified(schema, table)}.{column}"
        what = kind.removeprefix("modify_").replace("default", "server default")
        text = f"column {subject}: {what} {plain[4]!s} in the database, {plain[5]!s} in the models"
        return ModelDiff(kind, subject, text, plain)
    if kind in ("add_column", "remove_column"):
        column = args[2]
        subject = f"{_qualified(args[0], args[1])}.{column.name}"
        where = "models" if kind == "add_column" else "database"
        text = f"column {subject} ({_type_text(column.type, dialect)}) is only in the {where}"
        return ModelDiff(kind, subject, text, plain)
    obj = args[0] if args else None
    subject = _subject(obj)
    noun = kind.split("_", 1)[1].replace("fk", "foreign key").replace("_", " ")
    if kind.startswith("add_"):
        text = f"{noun} {subject} is only in the models"
    elif kind.startswith("remove_"):
        text = f"{noun} {subject} is only in the database"
    else:
        text = f"{kind} {subject}"
    return ModelDiff(kind, subject, text, plain)


def _qualified(schema: str | None, name: str) -> str:
    return f"{schema}.{name}" if schema else str(name)


def _subject(obj: Any) -> str:
    if isinstance(obj, sa.Table):
        return _qualified(obj.schema, obj.name)
    if isinstance(obj, sa.Index):
        table = obj.table.name if obj.table is not None else "?"
        return f"{obj.name} on {table}({', '.join(_index_parts(obj))})"
    if isinstance(obj, sa.Constraint):
        table = obj.table.name if getattr(obj, "table", None) is not None else "?"
        return f"{obj.name or '(unnamed)'} on {table}"
    return str(obj)


def _index_parts(index: sa.Index) -> list[str]:
    return [getattr(expr, "name", None) or str(expr) for expr in index.expressions]


def _type_text(type_: Any, dialect: sa.Dialect) -> str:
    try:
        return str(type_.compile(dialect=dialect))
    except Exception:  # noqa: BLE001 - a type the dialect cannot compile is still shown
        return repr(type_)


def _plain(value: Any, dialect: sa.Dialect) -> Any:
    """A JSON-able rendering of one argument of a diff tuple."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, dialect) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, dialect) for k, v in value.items()}
    if isinstance(value, sa.Column):
        return {
            "column": value.name,
            "type": _type_text(value.type, dialect),
            "nullable": value.nullable,
        }
    if isinstance(value, sa.types.TypeEngine):
        return _type_text(value, dialect)
    if isinstance(value, (sa.Table, sa.Index, sa.Constraint)):
        return _subject(value)
    if isinstance(value, sa.DefaultClause):
        arg = value.arg
        return str(arg.text) if hasattr(arg, "text") else str(arg)
    return repr(value)
