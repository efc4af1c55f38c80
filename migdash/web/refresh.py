"""Refresh the fleet's status in the background; a page waits for it only briefly.

Probing a thousand targets can take longer than anyone should wait for a
page, and one slow host must not hold back the answers of the others.  A
:class:`StatusRefresher` probes on its own thread (one refresh at a time per
process), records each snapshot as its target answers (committing every
moment or so), and the page waits at most ``MIGDASH_PAGE_WAIT_SECONDS``
before rendering whatever the snapshots say by then; the matrix's htmx
refresh picks up the rest.  The thread is a boundary like the worker loop:
it commits its own session.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from flask import Flask, current_app
from sqlalchemy.orm import Session, sessionmaker

from migdash.engine.catalog import GraphCatalog
from migdash.engine.probe import ProbePool, TargetProbe
from migdash.services import services_of
from migdash.status import probe_request, project_graph, record_probes, stale_targets
from migdash.store.models import Target
from migdash.store.queries import all_projects, find_targets

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5
"""Answers are committed at least this often while a refresh runs."""
_CREATING = threading.Lock()


class StatusRefresher:
    """At most one background refresh of every target's status per process."""

    def __init__(
        self, sessions: sessionmaker[Session], catalog: GraphCatalog, probes: ProbePool
    ) -> None:
        self._sessions, self._catalog, self._probes = sessions, catalog, probes
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._forced_next = False

    def refresh(self, max_age: timedelta | None, wait: float) -> bool:
        """Probe targets older than *max_age* (all when None); True if done within *wait* s.

        A refresh already running is joined; a forced one (None) asked for
        meanwhile runs right after it, so "probe now" always probes again.
        """
        with self._lock:
            thread = self._thread
            if thread is None or not thread.is_alive():  # a forked child has no thread
                thread = self._thread = threading.Thread(
                    target=self._run, args=(max_age,), name="status-refresh", daemon=True
                )
                thread.start()
            elif max_age is None:
                self._forced_next = True
        thread.join(wait)
        return not thread.is_alive()

    def _run(self, max_age: timedelta | None) -> None:
        while True:
            try:
                self._refresh_once(max_age)
            except Exception:  # a broken metadata DB must not end the process's refreshes
                log.exception("status refresh failed")
            with self._lock:
                if not self._forced_next:
                    self._thread = None
                    return
                self._forced_next, max_age = False, None

    def _refresh_once(self, max_age: timedelta | None) -> None:
        with self._sessions() as session:
            stale, snapshots = stale_targets(session, find_targets(session), max_age)
            requests = [probe_request(t) for t in stale]
            answered: list[tuple[Target, TargetProbe]] = []
            flushed = time.monotonic()
            for item in self._probes.probe_as_completed(requests):
                if item is not None:
                    answered.append((stale[item[0]], item[1]))
                if answered and (item is None or time.monotonic() - flushed > FLUSH_SECONDS):
                    record_probes(session, self._catalog, answered, snapshots)
                    session.commit()
                    answered, flushed = [], time.monotonic()
            if answered:
                record_probes(session, self._catalog, answered, snapshots)
                session.commit()


def refresher_of(app: Flask | None = None) -> StatusRefresher:
    """The app's refresher, made on first use."""
    target = app or current_app
    with _CREATING:
        refresher = target.extensions.get("migdash_refresh")
        if refresher is None:
            services = services_of(target)
            refresher = StatusRefresher(services.sessions, services.catalog, services.probes)
            target.extensions["migdash_refresh"] = refresher
    assert isinstance(refresher, StatusRefresher)
    return refresher


def refresh_for_page(session: Session, max_age: timedelta | None) -> bool:
    """Start or join the refresh, wait up to the page's budget; True if it finished.

    The projects' graphs are loaded here first (the page draws them anyway),
    so the budget is spent on probing, not on a cold graph load.  The
    request's transaction ends before the wait: on SQLite it would hold the
    refresh's commits back, and not see them.
    """
    catalog = services_of().catalog
    for project in all_projects(session):
        project_graph(catalog, project)
    session.commit()
    wait = float(current_app.config["MIGDASH_PAGE_WAIT_SECONDS"])
    return refresher_of().refresh(max_age, wait)
