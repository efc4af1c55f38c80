"""SQL expression text (defaults, checks, index expressions, predicates, views) in one spelling.

Databases hand back expressions in their own words: PostgreSQL writes
``'a'::character varying`` and ``price > 0::numeric``, MariaDB
``current_timestamp()`` and ```price` > 0``, SQLite whatever the DDL said.
Comparing that text would report drift between identical schemas, so each
expression is parsed with sqlglot in the dialect that produced it and printed
back in sqlglot's neutral dialect after the rewrites listed in
:func:`normalise_expression`.  Anything sqlglot cannot parse falls back to the
text with whitespace collapsed and outer parentheses removed, so an exotic
expression is still compared, only more strictly.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

SQLGLOT_DIALECTS = {
    "postgresql": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
    "sqlite": "sqlite",
    "mssql": "tsql",
    "oracle": "oracle",
}
CASE_INSENSITIVE = frozenset({"mysql", "mariadb", "sqlite"})
"""Dialects whose identifiers compare without regard to case (quoted or not)."""

_PLAIN_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_$]*$")
_NOW_SYNONYMS = frozenset({"now", "transaction_timestamp", "current_timestamp"})
_TRUE = frozenset({"1", "t", "true", "y", "yes", "on"})
_FALSE = frozenset({"0", "f", "false", "n", "no", "off"})
_OPERATORS = (exp.Binary, exp.Not, exp.Neg, exp.In, exp.Between, exp.Is)


def fold_identifier(name: str, dialect: str) -> str:
    """An identifier as the dialect compares it: lower-cased where case does not count."""
    return name.lower() if dialect in CASE_INSENSITIVE else name


def normalise_expression(
    text: str, dialect: str, *, boolean: bool = False, numeric: bool = False
) -> str:
    """*text*, written by *dialect*, in one canonical spelling.

    Rewrites: casts are dropped (``'a'::varchar`` is ``'a'``); parentheses are
    re-derived from the parse tree, so ``(x)`` and ``x`` agree while
    ``(a + b) * c`` and ``a + b * c`` still differ; ``now()``,
    ``CURRENT_TIMESTAMP``, ``current_timestamp()`` and
    ``transaction_timestamp()`` are ``CURRENT_TIMESTAMP`` (a precision
    argument is kept); database and catalog qualifiers are dropped (a MariaDB
    view names its own database); identifiers are case-folded per dialect and
    unquoted when plain.  With *boolean* (the column is a BOOLEAN) a literal
    ``true``/``1``/``'1'`` is ``TRUE`` and ``false``/``0``/``'0'`` is ``FALSE``;
    with *numeric* a numeric literal, quoted or not, is compared by value
    (MariaDB reports ``DEFAULT '0.00'`` where PostgreSQL says ``0``).
    String literals, operators and function arguments are otherwise kept, so
    ``'a'`` and ``'b'`` stay different.
    """
    return _normalise(text.strip(), dialect, boolean, numeric)


@lru_cache(maxsize=8192)
def _normalise(text: str, dialect: str, boolean: bool, numeric: bool) -> str:
    try:
        tree = sqlglot.parse_one(text, read=SQLGLOT_DIALECTS.get(dialect))
    except SqlglotError:
        return _fallback(text)
    if tree is None:  # pragma: no cover - parse_one returns a tree or raises
        return _fallback(text)
    tree = _rewrite(tree, dialect)
    if boolean:
        tree = _as_boolean(tree)
    if numeric:
        tree = _as_number(tree)
    return tree.sql()


def normalise_statement(text: str, dialect: str) -> str:
    """A view's SELECT (or a whole ``CREATE VIEW``) in canonical spelling, as above."""
    try:
        tree = sqlglot.parse_one(text.strip().rstrip(";"), read=SQLGLOT_DIALECTS.get(dialect))
    except SqlglotError:
        return _fallback(text)
    if isinstance(tree, exp.Create) and isinstance(tree.expression, exp.Expr):
        tree = tree.expression
    return _rewrite(tree, dialect).sql()


def parse_index_sql(sql: str, dialect: str) -> tuple[bool, list[str], str | None] | None:
    """``(unique, columns or expressions, predicate)`` from a ``CREATE INDEX`` statement.

    SQLite keeps only the statement for an expression index (SQLAlchemy's
    reflection skips those with a warning), so it is read from here.  Plain
    columns come back as their names, expressions in parentheses; ``None``
    when the statement cannot be read.
    """
    try:
        tree = sqlglot.parse_one(sql, read=SQLGLOT_DIALECTS.get(dialect))
    except SqlglotError:
        return None
    index = tree.this if isinstance(tree, exp.Create) else None
    if not isinstance(index, exp.Index) or index.args.get("params") is None:
        return None
    params = index.args["params"]
    columns = [_index_element(element, dialect) for element in params.args.get("columns") or []]
    where = params.args.get("where")
    predicate = _rewrite(where.this, dialect).sql() if isinstance(where, exp.Where) else None
    return bool(tree.args.get("unique")), columns, predicate


def _index_element(element: exp.Expr, dialect: str) -> str:
    descending = isinstance(element, exp.Ordered) and bool(element.args.get("desc"))
    inner = element.this if isinstance(element, exp.Ordered) else element
    if isinstance(inner, exp.Column) and not inner.table:
        text = fold_identifier(inner.name, dialect)
    else:
        text = f"({_rewrite(inner, dialect).sql()})"
    return f"{text} DESC" if descending else text


def _rewrite(tree: exp.Expr, dialect: str) -> exp.Expr:
    tree = _drop_noise(tree.copy())
    tree = tree.transform(lambda node: _spell(node, dialect), copy=False)
    return tree.transform(_parenthesise, copy=False)


def _drop_noise(tree: exp.Expr) -> exp.Expr:
    """Remove what carries no meaning: casts and the parentheses the text happened to have."""
    while isinstance(tree, exp.Cast | exp.Paren):
        tree = tree.this
    for node in list(tree.find_all(exp.Cast, exp.Paren)):
        node.replace(node.this)
    return tree


def _spell(node: exp.Expr, dialect: str) -> exp.Expr:
    if isinstance(node, exp.CurrentTimestamp) and node.this is None:
        return exp.var("CURRENT_TIMESTAMP")
    if (
        isinstance(node, exp.Anonymous)
        and str(node.this).lower() in _NOW_SYNONYMS
        and not node.expressions
    ):
        return exp.var("CURRENT_TIMESTAMP")
    if isinstance(node, exp.Column | exp.Table):
        node.set("db", None)
        node.set("catalog", None)
    if isinstance(node, exp.Identifier):
        name = node.this if (node.quoted and dialect not in CASE_INSENSITIVE) else node.this.lower()
        return exp.Identifier(this=name, quoted=not _PLAIN_IDENTIFIER.match(name))
    return node


def _parenthesise(node: exp.Expr) -> exp.Expr:
    """Put every operator nested in another operator in parentheses, so precedence is explicit."""
    if isinstance(node, _OPERATORS):
        for key in ("this", "expression"):
            child = node.args.get(key)
            if isinstance(child, _OPERATORS) and not isinstance(child, exp.Neg):
                node.set(key, exp.Paren(this=child))
    return node


def _as_boolean(tree: exp.Expr) -> exp.Expr:
    if isinstance(tree, exp.Boolean):
        return tree
    if isinstance(tree, exp.Literal):
        word = str(tree.this).strip().lower()
        if word in _TRUE:
            return exp.Boolean(this=True)
        if word in _FALSE:
            return exp.Boolean(this=False)
    return tree


def _as_number(tree: exp.Expr) -> exp.Expr:
    negative = isinstance(tree, exp.Neg) and isinstance(tree.this, exp.Literal)
    literal = tree.this if negative else tree
    if not isinstance(literal, exp.Literal):
        return tree
    try:
        value = Decimal(str(literal.this).strip())
    except InvalidOperation:
        return tree
    if not value.is_finite():
        return tree
    value = -value if negative else value
    text = format(value.normalize(), "f")
    if text.startswith("-"):
        return exp.Neg(this=exp.Literal.number(text[1:]))
    return exp.Literal.number(text)


def _fallback(text: str) -> str:
    text = " ".join(text.split())
    while text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1].strip()
    return text


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += (char == "(") - (char == ")")
        if depth < 0:
            return False
    return depth == 0
