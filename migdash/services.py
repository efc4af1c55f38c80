"""The per-app objects every layer needs: metadata DB, graph cache, probe pool.

Built once by ``create_app`` and kept in ``app.extensions["migdash"]``; the
CLI and the web reach them through :func:`services_of`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy.orm import Session, sessionmaker

from migdash.engine.catalog import GraphCatalog
from migdash.engine.probe import ProbePool
from migdash.jobs.queue import JobQueue
from migdash.store.session import create_db_engine, create_session_factory


@dataclass
class Services:
    db_engine: sa.Engine
    sessions: sessionmaker[Session]
    catalog: GraphCatalog
    probes: ProbePool
    queue: JobQueue
    settings: dict[str, Any]


def build_services(settings: dict[str, Any]) -> Services:
    """Create the objects; nothing connects until first use."""
    db_engine = create_db_engine(settings["MIGDASH_DATABASE_URL"])
    return Services(
        db_engine=db_engine,
        sessions=create_session_factory(db_engine),
        catalog=GraphCatalog(),
        probes=ProbePool(
            timeout=settings["MIGDASH_PROBE_TIMEOUT"],
            max_workers=settings["MIGDASH_PROBE_WORKERS"],
        ),
        queue=JobQueue(settings["MIGDASH_QUEUE_URL"], settings["MIGDASH_INSTANCE"]),
        settings=settings,
    )


def services_of(app: Flask | None = None) -> Services:
    target = app or current_app
    services: Services = target.extensions["migdash"]
    return services
