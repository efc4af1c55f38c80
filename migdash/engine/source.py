"""Read a revision file's source, split into its ``upgrade`` and ``downgrade`` functions.

For ``alembic show`` in the browser: the page highlights each function on
its own.  Parsing uses ``ast`` on the file text; nothing is imported.
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RevisionSource:
    text: str
    upgrade: str | None
    downgrade: str | None


def read_revision_source(path: str | Path) -> RevisionSource:
    """The file's text plus the source of its two functions (None when absent)."""
    text = Path(path).read_text(errors="replace")
    functions: dict[str, str | None] = {"upgrade": None, "downgrade": None}
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return RevisionSource(text, None, None)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in functions:
            functions[node.name] = ast.get_source_segment(text, node)
    return RevisionSource(text, functions["upgrade"], functions["downgrade"])


@dataclass(frozen=True)
class ContentHashes:
    """Two fingerprints of a revision file's text, for "edited after it was applied"."""

    raw: str
    """SHA-256 of the text itself: any change at all."""
    ast: str
    """SHA-256 of its syntax tree: line endings, whitespace and comments don't count."""


def content_hashes(text: str) -> ContentHashes:
    """Hash *text* both ways (an unparsable file's tree hash is its raw hash)."""
    raw = hashlib.sha256(text.encode()).hexdigest()
    try:
        tree = ast.dump(ast.parse(text), include_attributes=False)
    except (SyntaxError, ValueError):
        return ContentHashes(raw, raw)
    return ContentHashes(raw, hashlib.sha256(tree.encode()).hexdigest())
