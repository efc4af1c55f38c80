"""A process-wide cache of revision graphs, reloaded only when a project's files change.

Reading a project's graph imports every revision file, which is arbitrary
code, so it happens in a child process (``migdash.engine.loader``) that
returns plain data; this process only rebuilds a :class:`RevisionGraph` from
it.  The cache key is a cheap signature of the project's files (each
revision file's name, size and mtime, plus ``env.py``, ``alembic.ini`` and
the folders themselves), so an edited, added or removed file is picked up on
the next request and nothing else triggers a reload.  With a ``cache_dir``,
parsed graphs are also kept on disk by signature, so a new process (a CLI
call, a freshly started gunicorn worker) does not load a big project again.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migdash.engine.child import call_child, project_folder
from migdash.engine.graph import RevisionGraph, graph_from_data
from migdash.errors import BrokenProject

Signature = tuple[tuple[str, int, int], ...]
LOAD_TIMEOUT = 300.0


@dataclass(frozen=True)
class _Entry:
    signature: Signature
    graph: RevisionGraph | None
    error: BrokenProject | None


class GraphCatalog:
    """Hands out :class:`RevisionGraph` objects by project location, cached by signature."""

    def __init__(self, cache_dir: Path | None = None) -> None:
        self._entries: dict[str, _Entry] = {}
        self._folders: dict[str, list[Path]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._cache_dir = cache_dir

    def graph(self, location: str) -> RevisionGraph:
        """The project's graph; raises :class:`BrokenProject` (also cached) if it cannot load."""
        with self._lock_for(location):
            signature = project_signature(location, self._folders.get(location))
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
        with self._lock_for(location):
            self._entries.pop(location, None)
            self._folders.pop(location, None)

    def _lock_for(self, location: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(location, threading.Lock())

    def _load(self, location: str, signature: Signature) -> _Entry:
        data = self._read_cache(location, signature)
        if data is None:
            data, problem = call_child(
                "migdash.engine.loader",
                location,
                cwd=project_folder(location),
                timeout=LOAD_TIMEOUT,
            )
            if data is None:
                data = {"ok": False, "reason": f"the project could not be read ({problem})"}
        if not data.get("ok"):
            reason = str(data.get("reason") or "it could not be loaded")
            return _Entry(signature, None, BrokenProject(location, reason, file=data.get("file")))
        folders = [Path(p) for p in data.get("folders", [])]
        if self._folders.get(location) != folders:  # first load: sign the real version folders
            self._folders[location] = folders
            signature = project_signature(location, folders)
        self._write_cache(location, signature, data)
        return _Entry(signature, graph_from_data(location, data), None)

    def _cache_file(self, location: str) -> Path | None:
        if self._cache_dir is None:
            return None
        key = hashlib.sha256(location.encode()).hexdigest()[:32]
        return self._cache_dir / f"{key}.json"

    def _read_cache(self, location: str, signature: Signature) -> dict[str, Any] | None:
        path = self._cache_file(location)
        if path is None or not path.is_file():
            return None
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        folders = [Path(p) for p in stored.get("data", {}).get("folders", [])]
        if stored.get("location") != location:
            return None
        if [list(e) for e in project_signature(location, folders)] != stored.get("signature"):
            return None
        self._folders[location] = folders
        data: dict[str, Any] = stored["data"]
        return data

    def _write_cache(self, location: str, signature: Signature, data: dict[str, Any]) -> None:
        path = self._cache_file(location)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            scratch = path.with_suffix(f".{os.getpid()}.tmp")
            scratch.write_text(
                json.dumps(
                    {"location": location, "signature": [list(e) for e in signature], "data": data}
                )
            )
            scratch.replace(path)
        except OSError:
            return  # a cache that cannot be written only costs time


def project_signature(location: str, folders: list[Path] | None) -> Signature:
    """Name, size and mtime of everything whose change can change the graph.

    Before the first load the version folders are not known; the
    conventional ``versions/`` folder stands in for them until then.
    """
    root = Path(location)
    watched = [root]
    if root.is_dir():
        watched += [root / "env.py", root / "alembic.ini", root / "script.py.mako"]
    folders = folders if folders is not None else ([root / "versions"] if root.is_dir() else [])
    entries = [_stat(path) for path in watched + folders]
    for folder in folders:
        if not folder.is_dir():
            continue
        for base, _dirs, files in os.walk(folder):
            entries.extend(_stat(Path(base) / name) for name in files if name.endswith(".py"))
    return tuple(sorted(entries))


def _stat(path: Path) -> tuple[str, int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (str(path), -1, -1)
    return (str(path), stat.st_size, stat.st_mtime_ns)
