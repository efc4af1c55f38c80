"""The transaction rule, checked on the source: only boundaries commit.

Library code under ``migdash/jobs`` (and ``migdash/status.py``) adds and
flushes; the view, API route, CLI command, worker loop or reaper pass that
called it commits once.  A function that commits half-way is how a refused
request once left a queued job behind, so a ``.commit()`` call anywhere else
fails this test.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import migdash

PACKAGE = Path(migdash.__file__).parent
BOUNDARIES = {
    "jobs/worker.py": "the worker loop: claims, heartbeats and results are its own transactions",
    "jobs/locks.py": "leases are short transactions of their own, taken only by the worker loop",
    "jobs/consumer.py": "the worker process itself",
    "jobs/delivery.py": "the worker's webhook pass: no transaction stays open during a POST",
    "jobs/rollout_driver.py": "the worker's rollout loop: each member started is a transaction",
}
"""Modules under jobs/ that are boundaries, and why."""


def commit_calls(path: Path) -> list[int]:
    """Lines of every ``<anything>.commit(...)`` call in *path*."""
    tree = ast.parse(path.read_text())
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "commit"
    ]


def library_modules() -> list[Path]:
    jobs = sorted((PACKAGE / "jobs").glob("*.py"))
    return [p for p in jobs if f"jobs/{p.name}" not in BOUNDARIES] + [PACKAGE / "status.py"]


def test_the_scan_sees_a_commit() -> None:
    assert commit_calls(PACKAGE / "jobs" / "worker.py"), "the worker loop commits: the scan works"


@pytest.mark.parametrize("path", library_modules(), ids=lambda p: p.name)
def test_library_code_never_commits(path: Path) -> None:
    assert commit_calls(path) == [], f"{path.name} commits; flush and let the boundary commit"


def test_the_rule_is_written_where_the_code_lives() -> None:
    doc = migdash.jobs.__doc__ or ""
    assert "never commit" in doc
    for module in BOUNDARIES:
        assert module.split("/")[1] in doc, f"{module} is a boundary: say so in jobs/__init__.py"


def test_children_that_run_project_code_load_without_flask() -> None:
    """The package root imports Flask only inside create_app, so children stay small."""
    probe = (
        "import sys, migdash.engine, migdash.engine.loader, migdash.jobs.runner, "
        "migdash.engine.actions; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'flask'))"
    )
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout
