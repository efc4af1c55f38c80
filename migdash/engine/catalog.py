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

import contextlib
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migdash.engine.child import project_folder
from migdash.engine.graph import RevisionGraph, graph_from_data
from migdash.engine.launch import call_child
from migdash.errors import BrokenProject

Signature = tuple[tuple[str, int, int], ...]
LOAD_TIMEOUT = 300.0
BACKGROUND_FROM = 500
"""Projects with at least this many revision files load in the background for pages."""
RECHECK_AFTER = 1.0
"""Pages re-sign a big project's folder at most this often (10,000 stat calls cost ~50 ms)."""


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
        self._loading: dict[str, threading.Thread] = {}
        self._checked: dict[str, float] = {}

    def graph_or_none(self, location: str, *, wait: float = 0.25) -> RevisionGraph | None:
        """The graph if ready within *wait* seconds, else None while it loads in the background.

        A page calls this so that the first request after start-up never waits
        on a cold load of thousands of revision files: a small project (fewer
        than :data:`BACKGROUND_FROM` files) loads at once as :meth:`graph`
        does; a big one loads on a thread that waits for the loader child, and
        every caller meanwhile gets None (one load, whoever asks).  A big
        project's folder is re-signed at most every :data:`RECHECK_AFTER`
        seconds, so an edit shows within that.  Raises :class:`BrokenProject`
        like :meth:`graph` once the load has failed.
        """
        entry = self._entries.get(location)
        checked = self._checked.get(location, -RECHECK_AFTER)
        if entry is not None and time.monotonic() - checked < RECHECK_AFTER:
            return self.graph(location, entry.signature)  # big, and signed a moment ago
        signature = project_signature(location, self._folders.get(location))
        if len(signature) >= BACKGROUND_FROM:
            self._checked[location] = time.monotonic()
        if entry is None or entry.signature != signature:
            if len(signature) < BACKGROUND_FROM:
                return self.graph(location, signature)
            thread = self._load_in_background(location)
            thread.join(wait)
            if thread.is_alive():
                return None
            return self.graph(location)  # the load may have learnt the real version folders
        return self.graph(location, signature)

    def loading(self, location: str) -> bool:
        """True while a background load of *location* runs."""
        with self._guard:
            thread = self._loading.get(location)
            return thread is not None and thread.is_alive()

    def _load_in_background(self, location: str) -> threading.Thread:
        with self._guard:
            thread = self._loading.get(location)
            if thread is None or not thread.is_alive():
                thread = threading.Thread(
                    target=self._load_quietly,
                    args=(location,),
                    daemon=True,
                    name=f"migdash-graph-load-{Path(location).name}",
                )
                self._loading[location] = thread
                thread.start()
            return thread

    def _load_quietly(self, location: str) -> None:
        with contextlib.suppress(BrokenProject):  # kept in the cache; the next caller sees it
            self.graph(location)

    def graph(self, location: str, signature: Signature | None = None) -> RevisionGraph:
        """The project's graph; raises :class:`BrokenProject` (also cached) if it cannot load.

        *signature* is the caller's fresh :func:`project_signature`, if it has one.
        """
        with self._lock_for(location):
            if signature is None:
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
            self._checked.pop(location, None)

    def _lock_for(self, location: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(location, threading.Lock())

    def _load(self, location: str, signature: Signature) -> _Entry:
        data = self._read_cache(location, signature)
        cached = data is not None
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
        graph = graph_from_data(location, data)
        if data.get("history") is None or not cached:
            self._write_cache(location, signature, {**data, "history": list(graph.history)})
        return _Entry(signature, graph, None)

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
        signed_with = self._folders.get(location)
        signed_with = _default_folders(location) if signed_with is None else signed_with
        if folders != signed_with:  # the caller signed other folders: sign the stored ones
            signature = project_signature(location, folders)
        if [list(e) for e in signature] != stored.get("signature"):
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
    folders = folders if folders is not None else _default_folders(location)
    entries = [_stat(str(path)) for path in watched + folders]
    for folder in folders:
        _scan(str(folder), entries)
    return tuple(sorted(entries))


def _default_folders(location: str) -> list[Path]:
    root = Path(location)
    return [root / "versions"] if root.is_dir() else []


def _scan(folder: str, entries: list[tuple[str, int, int]]) -> None:
    """Append every ``*.py`` file below *folder* (os.scandir: a 10,000-file folder in ~20 ms)."""
    try:
        scanner = os.scandir(folder)
    except OSError:
        return
    with scanner:
        for item in scanner:
            try:
                if item.is_dir():
                    _scan(item.path, entries)
                elif item.name.endswith(".py"):
                    stat = item.stat()
                    entries.append((item.path, stat.st_size, stat.st_mtime_ns))
            except OSError:
                entries.append((item.path, -1, -1))


def _stat(path: str) -> tuple[str, int, int]:
    try:
        stat = os.stat(path)
    except OSError:
        return (path, -1, -1)
    return (path, stat.st_size, stat.st_mtime_ns)
