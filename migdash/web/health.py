"""``/healthz`` and ``/readyz`` for load balancers and orchestrators: no sign-in, no secrets.

``/healthz`` answers from the process alone (it touches no database), so a
liveness probe never restarts a web process because the metadata DB is
slow.  ``/readyz`` checks what a request needs: the metadata DB answers, the
queue answers, and some worker wrote its heartbeat recently (see
:mod:`migdash.jobs.heartbeat`).  A failed check names itself and the kind of
error only; exception texts (hosts, user names) are logged, never answered.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, jsonify

from migdash.jobs.heartbeat import last_beat
from migdash.services import Services, services_of
from migdash.store.models import utcnow

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)

PUBLIC = frozenset({"health.healthz", "health.readyz"})
"""Endpoints that answer without a signed-in user (``auth`` lets them through)."""


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    services = services_of()
    checks = {
        "database": _check_database(services),
        "queue": _check_queue(services),
    }
    checks["worker"] = _check_worker(services, queue_ok=checks["queue"]["ok"])
    ready = all(check["ok"] for check in checks.values())
    body = {"status": "ready" if ready else "not_ready", "checks": checks}
    return jsonify(body), 200 if ready else 503


def _check_database(services: Services) -> dict[str, Any]:
    try:
        with services.db_engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        return _failed("database", "the metadata database cannot be reached", exc)
    return {"ok": True}


def _check_queue(services: Services) -> dict[str, Any]:
    try:
        depth = services.queue.pending_count()
    except Exception as exc:  # noqa: BLE001
        return _failed("queue", "the job queue cannot be reached", exc)
    return {"ok": True, "depth": depth}


def _check_worker(services: Services, *, queue_ok: bool) -> dict[str, Any]:
    if not queue_ok:
        return {"ok": False, "reason": "unknown: the job queue cannot be reached"}
    try:
        found = last_beat(services.queue)
    except Exception as exc:  # noqa: BLE001
        return _failed("worker", "the worker heartbeat cannot be read", exc)
    limit = float(services.settings["MIGDASH_JOB_HEARTBEAT_TIMEOUT"])
    if found is None:
        return {"ok": False, "reason": "no worker has sent a heartbeat: start `migdash worker`"}
    age = round(found.age(utcnow()), 1)
    if age > limit:
        return {
            "ok": False,
            "reason": f"the last worker heartbeat is {age} s old (limit {limit:g} s)",
            "age_seconds": age,
        }
    return {"ok": True, "age_seconds": age}


def _failed(check: str, reason: str, exc: Exception) -> dict[str, Any]:
    log.warning("readiness check %s failed: %s", check, exc)
    return {"ok": False, "reason": f"{reason} ({type(exc).__name__})"}
