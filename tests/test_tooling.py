"""The codebase keeps its own rules: ruff (lint and format) and mypy --strict where STYLE asks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)


@pytest.mark.parametrize(
    "argv",
    [
        ("ruff", "check", "migdash", "tests", "bench", "wsgi.py"),
        ("ruff", "format", "--check", "migdash", "tests", "bench", "wsgi.py"),
    ],
)
def test_ruff(argv: tuple[str, ...]) -> None:
    executable = BIN / argv[0] if (BIN / argv[0]).exists() else shutil.which(argv[0])
    assert executable, "ruff is part of the test extras (pip install -e .[test])"
    result = _run(str(executable), *argv[1:])
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_on_engine_store_and_jobs() -> None:
    result = _run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout + result.stderr
