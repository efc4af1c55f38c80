"""The ``migdash`` command: one group per noun, ``--json`` on every read.

A thin layer: each command parses its arguments, calls the same functions
the web uses, and prints.  ``MigdashError`` becomes a ``ClickException``
with the hint, in ``base.MigdashGroup`` and nowhere below.  Importing the
submodules registers their commands on :data:`main`.
"""

from __future__ import annotations

from migdash.cli import (
    actions,
    check,
    compare,
    drift,
    people,
    reads,
    reference,
    registry,
    rollouts,
    schemas,
    serve,
    webhooks,
)
from migdash.cli.base import main

__all__ = [
    "actions",
    "check",
    "compare",
    "drift",
    "main",
    "people",
    "reads",
    "reference",
    "registry",
    "rollouts",
    "schemas",
    "serve",
    "webhooks",
]
