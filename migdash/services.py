"""The per-app objects every layer needs: metadata DB, graph cache, probe pool, queue.

Built once by ``create_app`` and kept in ``app.extensions["migdash"]``; the
CLI and the web reach them through :func:`services_of`, and hand the jobs
layer the smaller :class:`~migdash.jobs.context.JobServices` in ``jobs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet
from flask import Flask, current_app
from sqlalchemy.orm import Session, sessionmaker

from migdash.engine.catalog import GraphCatalog
from migdash.engine.probe import ProbePool
from migdash.jobs.context import JobServices, bind_queue
from migdash.jobs.queue import JobQueue
from migdash.store.crypto import UrlCipher, load_keys
from migdash.store.session import create_db_engine, create_session_factory, upgrade_schema


@dataclass
class Services:
    db_engine: sa.Engine
    sessions: sessionmaker[Session]
    catalog: GraphCatalog
    probes: ProbePool
    queue: JobQueue
    cipher: UrlCipher
    settings: dict[str, Any]
    jobs: JobServices

    def upgrade_schema(self) -> None:
        """``migdash db upgrade`` for this app's metadata DB."""
        upgrade_schema(self.db_engine, cipher=self.cipher)


def build_services(settings: dict[str, Any]) -> Services:
    """Create the objects; nothing connects until first use."""
    db_engine = create_db_engine(settings["MIGDASH_DATABASE_URL"])
    keys = load_keys(settings["MIGDASH_ENCRYPTION_KEY"], Path(settings["MIGDASH_INSTANCE"]))
    if not keys and settings.get("TESTING"):
        keys = [Fernet.generate_key().decode()]
    cipher = UrlCipher(keys)
    sessions = create_session_factory(db_engine, cipher)
    catalog = GraphCatalog(cache_dir=Path(settings["MIGDASH_INSTANCE"]) / "graph-cache")
    probes = ProbePool(
        timeout=settings["MIGDASH_PROBE_TIMEOUT"],
        max_workers=settings["MIGDASH_PROBE_WORKERS"],
        idle_seconds=settings["MIGDASH_PROBE_IDLE_SECONDS"],
        max_idle=settings["MIGDASH_PROBE_MAX_IDLE"],
    )
    queue = JobQueue(settings["MIGDASH_QUEUE_URL"], settings["MIGDASH_INSTANCE"])
    bind_queue(sessions, queue)
    return Services(
        db_engine=db_engine,
        sessions=sessions,
        cipher=cipher,
        catalog=catalog,
        probes=probes,
        queue=queue,
        settings=settings,
        jobs=JobServices(sessions, catalog, probes, queue),
    )


def services_of(app: Flask | None = None) -> Services:
    target = app or current_app
    services: Services = target.extensions["migdash"]
    return services
