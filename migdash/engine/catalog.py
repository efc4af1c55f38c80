"""A process-wide cache of revision graphs, reloaded only when a versions folder changes.

Importing every revision file costs real time on a large project, and pages
ask for the graph constantly.  The cache key is a cheap signature of the
version folders (each ``.py`` file's name, size and mtime), so an edited,
added or removed revision file is picked up on the next request and nothing
else triggers a reload.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from migdash.engine.graph import RevisionGraph, build_graph
from migdash.engine.project import alembic_config, open_project, version_folders
from migdash.errors import BrokenProject

Signature = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class _Entry:
    signature: Signature
    graph: RevisionGraph | None
    error: BrokenProject | None


class GraphCatalog:
    """Hands out :class:`RevisionGraph` objects by project location, cached by signature."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._folders: dict[str, list[Path]] = {}
        self._lock = threading.Lock()

    def graph(self, location: str) -> RevisionGraph:
        """The project's graph; raises :class:`BrokenProject` (also cached) if it cannot load."""
        signature = self._signature(location)
        with self._lock:
            entry = self._entries.get(location)
            if entry is None or entry.signature != signature:
                entry = self._load(location, signature)
                self._entries[location] = entry
        if entry.error is not None:
            raise entry.error
        assert entry.graph is not None
        return entry.graph

    def forget(self, location: str) -> None:
        """Drop a project from the cache (after it is edited or removed)."""
        with self._lock:
            self._entries.pop(location, None)
            self._folders.pop(location, None)

    def _load(self, location: str, signature: Signature) -> _Entry:
        try:
            script_dir = open_project(location)
        except BrokenProject as exc:
            return _Entry(signature, None, exc)
        self._folders[location] = version_folders(script_dir)
        return _Entry(signature, build_graph(script_dir, location), None)

    def _signature(self, location: str) -> Signature:
        folders = self._folders.get(location)
        if folders is None:
            try:
                from alembic.script import ScriptDirectory

                folders = version_folders(ScriptDirectory.from_config(alembic_config(location)))
            except Exception:  # noqa: BLE001 - the load itself reports the problem
                return (("<unreadable>", 0, 0),)
        entries: list[tuple[str, int, int]] = []
        for folder in folders:
            if not folder.is_dir():
                entries.append((str(folder), -1, -1))
                continue
            for root, _dirs, files in os.walk(folder):
                for name in files:
                    if name.endswith(".py"):
                        stat = os.stat(os.path.join(root, name))
                        entries.append((os.path.join(root, name), stat.st_size, stat.st_mtime_ns))
        return tuple(sorted(entries))
