"""Fixtures for the engine suite: real projects read back through the engine, and a probe pool.

The engine has no web app, so nothing here builds one: projects come from
the root ``make_project`` factory, graphs from :func:`open_project` plus
:func:`build_graph`, and probes from a real :class:`ProbePool`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from migdash.engine.graph import RevisionGraph, build_graph
from migdash.engine.probe import ProbePool
from migdash.engine.project import open_project


@pytest.fixture
def load_graph() -> Callable[[Any], RevisionGraph]:
    """Read a ``make_project`` project back through the engine, as the catalog does."""

    def factory(project: Any) -> RevisionGraph:
        return build_graph(open_project(project.location), str(project.location))

    return factory


@pytest.fixture
def probes() -> Iterator[ProbePool]:
    """A probe pool with a short time-out, closed after the test."""
    pool = ProbePool(timeout=3.0)
    yield pool
    pool.close()
