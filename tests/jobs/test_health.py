"""``/healthz`` and ``/readyz``: no sign-in, JSON, 200 or 503 naming what failed, no secrets.

Readiness needs the metadata DB, the queue and a fresh worker heartbeat; the
heartbeat is written by the ``migdash worker`` loop into the queue's
key-value store, so the last test starts a real worker process and waits for
``/readyz`` to turn ready.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from migdash.jobs.heartbeat import beat, last_beat
from migdash.services import services_of
from migdash.store.models import utcnow

SECRET = "pw-Sup3rSecret"  # noqa: S105 - planted to be looked for


def readiness(app: Flask) -> tuple[int, dict[str, Any]]:
    response = app.test_client().get("/readyz")
    assert response.mimetype == "application/json"
    return response.status_code, response.get_json()


def test_healthz_answers_without_sign_in_or_database(make_app: Callable[..., Flask]) -> None:
    dead = make_app(MIGDASH_DATABASE_URL=f"postgresql+psycopg://u:{SECRET}@127.0.0.1:1/x")
    response = dead.test_client().get("/healthz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


def test_readyz_needs_a_worker_heartbeat(app: Flask) -> None:
    status, body = readiness(app)
    assert status == 503
    assert body["status"] == "not_ready"
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["queue"]["ok"] is True
    assert body["checks"]["worker"]["ok"] is False
    assert "migdash worker" in body["checks"]["worker"]["reason"]


def test_readyz_is_ready_with_a_fresh_heartbeat_and_not_with_a_stale_one(app: Flask) -> None:
    queue = services_of(app).queue
    limit = services_of(app).settings["MIGDASH_JOB_HEARTBEAT_TIMEOUT"]
    beat(queue, "w1", utcnow() - timedelta(seconds=limit / 2))
    status, body = readiness(app)
    assert (status, body["status"]) == (200, "ready"), body
    assert limit / 2 <= body["checks"]["worker"]["age_seconds"] < limit
    beat(queue, "w1", utcnow() - timedelta(seconds=limit + 5))
    status, body = readiness(app)
    assert status == 503
    assert body["checks"]["worker"]["ok"] is False
    assert "old" in body["checks"]["worker"]["reason"]


def test_readyz_names_an_unreachable_database_without_its_secrets(
    make_app: Callable[..., Flask],
) -> None:
    dead = make_app(MIGDASH_DATABASE_URL=f"postgresql+psycopg://u:{SECRET}@127.0.0.1:1/x")
    beat(services_of(dead).queue, "w1", utcnow())
    status, body = readiness(dead)
    assert status == 503
    assert body["checks"]["database"]["ok"] is False
    assert "metadata database" in body["checks"]["database"]["reason"]
    assert (body["checks"]["queue"]["ok"], body["checks"]["worker"]["ok"]) == (True, True)
    assert SECRET not in str(body)
    assert "127.0.0.1" not in str(body)


def test_readyz_names_an_unreachable_queue_without_its_secrets(
    make_app: Callable[..., Flask],
) -> None:
    dead = make_app(MIGDASH_QUEUE_URL=f"redis://:{SECRET}@127.0.0.1:1/0")
    status, body = readiness(dead)
    assert status == 503
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["queue"]["ok"] is False
    assert "queue" in body["checks"]["queue"]["reason"]
    assert body["checks"]["worker"]["ok"] is False
    assert SECRET not in str(body)


def test_a_real_worker_process_makes_readyz_ready(
    app: Flask, start_worker: Callable[..., Any]
) -> None:
    assert readiness(app)[0] == 503
    start_worker(threads=1)
    deadline = time.monotonic() + 30
    while (status := readiness(app)[0]) != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status == 200, readiness(app)[1]
    found = last_beat(services_of(app).queue)
    assert found is not None
    assert found.age(utcnow()) < 5


@pytest.mark.server
def test_readyz_on_redis(make_app: Callable[..., Flask], redis_url: str) -> None:
    other = make_app(MIGDASH_QUEUE_URL=redis_url)
    assert readiness(other)[0] == 503
    beat(services_of(other).queue, "w1", utcnow())
    status, body = readiness(other)
    assert status == 200, body
