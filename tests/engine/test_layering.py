"""The engine's layering rule: pure Python over Alembic, no Flask and no upper layers.

Every ``migdash/engine/*.py`` is parsed (not imported) and every import in
it, at any depth and in relative form too, is checked.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import migdash.engine

ENGINE = Path(migdash.engine.__file__).parent
FORBIDDEN = ("flask", "migdash.web", "migdash.jobs", "migdash.store")


def imported_modules(source: str, module: str) -> list[tuple[int, str]]:
    """``(line, absolute module name)`` for every import in *source*, which is *module*.

    ``from x import y`` yields both ``x`` and ``x.y`` because ``y`` may be a
    submodule (``from migdash import web``).
    """
    package = module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - node.level + 1]
                base = ".".join([*parent, base]) if base else ".".join(parent)
            found.append((node.lineno, base))
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
    return found


def violations(source: str, module: str) -> list[str]:
    return [
        f"{module}:{line} imports {name}"
        for line, name in imported_modules(source, module)
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)
    ]


def engine_modules() -> list[Path]:
    """Every module of the engine, subpackages (``engine/schema/``) included."""
    return sorted(ENGINE.rglob("*.py"))


def test_engine_has_the_modules_this_test_expects_to_read() -> None:
    names = {path.stem for path in engine_modules()}

    assert {"__init__", "graph", "probe", "project", "render", "scrub", "state"} <= names


@pytest.mark.parametrize("path", engine_modules(), ids=lambda path: str(path.relative_to(ENGINE)))
def test_engine_module_imports_nothing_above_the_engine(path: Path) -> None:
    parts = ["migdash", "engine", *path.relative_to(ENGINE).with_suffix("").parts]
    module = ".".join(parts)

    assert violations(path.read_text(), module) == []


@pytest.mark.parametrize(
    "source",
    [
        "import flask",
        "import flask.json as fj",
        "from flask import current_app",
        "from migdash.store.models import Target",
        "from migdash import web",
        "import migdash.jobs.worker",
        "from .. import store",
        "from ..web.errors import handler",
        "def late():\n    from migdash.jobs import queue\n",
        "try:\n    import flask\nexcept ImportError:\n    flask = None\n",
    ],
)
def test_checker_catches_forbidden_imports(source: str) -> None:
    assert violations(source, "migdash.engine.example") != []


@pytest.mark.parametrize(
    "source",
    [
        "import alembic",
        "from sqlalchemy import engine",
        "from migdash.errors import BrokenProject",
        "from migdash.engine.graph import build_graph",
        "from . import graph",
        "from .scrub import mask_url",
        "import flaskish",
        "from migdash import storefront",
    ],
)
def test_checker_allows_the_engine_its_own_imports(source: str) -> None:
    assert violations(source, "migdash.engine.example") == []
