"""Webhooks end to end: real jobs announce events that a real HTTP receiver gets, signed.

The receiver is ``http.server`` in a thread on 127.0.0.1 (a free port), so
each webhook here is saved with ``allow_private`` (loopback allowed on
purpose); the refusals without it are tested in ``test_webhook_guard.py``.
Deliveries are sent by :func:`migdash.jobs.delivery.deliver_due`, the
worker's pass, called here directly; jobs run in this process (``run_queue``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from migdash.jobs.approvals import approve
from migdash.jobs.delivery import DeliverySettings, deliver_due
from migdash.jobs.drift import DriftKind
from migdash.jobs.events import announce_drift
from migdash.jobs.requests import request_target_action
from migdash.jobs.webhooks import WebhookFields, save_webhook
from migdash.services import services_of
from migdash.status import refresh_status
from migdash.store import registry
from migdash.store.models import Role, utcnow
from migdash.store.webhook_models import WebhookDelivery

SECRET = "receiver-shared-secret-0123"  # noqa: S105 - a test key
FAST = DeliverySettings(timeout=3.0, retry_seconds=0.0, max_attempts=5)
"""Retries due at once, so one pass sends every attempt however fast the machine is."""


@dataclass
class Receiver:
    """What a webhook receiver got, and what it will answer next (200 once the script runs out)."""

    url: str
    answers: list[int] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def events(self) -> list[str]:
        return [json.loads(body)["event"] for _, body in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            box.requests.append((dict(self.headers.items()), body))
            status = box.answers.pop(0) if box.answers else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/migdash?token=path-secret"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield box
    server.shutdown()
    server.server_close()


@pytest.fixture
def add_webhook(app: Flask) -> Callable[..., int]:
    def add(url: str, name: str = "hook", **extra: Any) -> int:
        fields = WebhookFields(name=name, url=url, secret=SECRET, allow_private=True, **extra)
        with services_of(app).sessions() as session:
            hook = save_webhook(session, fields, actor="admin", role=Role.ADMIN, now=utcnow())
            session.commit()
            return hook.id

    return add


def deliveries(app: Flask) -> list[WebhookDelivery]:
    with services_of(app).sessions() as session:
        return list(session.scalars(sa.select(WebhookDelivery).order_by(WebhookDelivery.id)))


def valid_signature(headers: dict[str, str], body: bytes) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["X-Migdash-Signature"], expected)


@pytest.fixture
def protected_target(
    app: Flask, make_project: Callable[..., Any], make_target: Callable[..., str]
) -> str:
    project = make_project("linear")
    with services_of(app).sessions() as session:
        registry.add_project(session, project.name, str(project.location))
        registry.add_environment(session, "prod", protected=True)
        registry.add_target(
            session,
            "shop",
            project=project.name,
            environment="prod",
            url=make_target(project, "a1"),
        )
        session.commit()
    return "shop"


def request_and_approve(app: Flask, target: str) -> int:
    services = services_of(app)
    with services.sessions() as session:
        job = request_target_action(
            session,
            services.jobs,
            registry.get_target(session, target),
            "upgrade",
            "heads",
            actor="requester",
            role=Role.OPERATOR,
            now=utcnow(),
        )
        session.commit()
        assert job is not None
        job_id = job.id
    with services.sessions() as session:
        approve(
            session,
            services.jobs,
            job_id,
            actor="approver",
            role=Role.APPROVER,
            comment="",
            seen_plan=None,
            now=utcnow(),
        )
        session.commit()
    return job_id


def test_a_real_job_announces_each_step_in_order_signed(
    app: Flask,
    protected_target: str,
    receiver: Receiver,
    add_webhook: Callable[..., int],
    run_queue: Callable[[], int],
) -> None:
    add_webhook(receiver.url)
    job_id = request_and_approve(app, protected_target)
    assert receiver.requests == [], "nothing is sent before the worker's delivery pass"
    assert run_queue() == 1

    assert deliver_due(services_of(app).sessions, FAST) == 5

    assert receiver.events() == [
        "job.requested",
        "job.awaiting_approval",
        "job.approved",
        "job.started",
        "job.succeeded",
    ]
    ids = []
    for headers, body in receiver.requests:
        document = json.loads(body)
        assert valid_signature(headers, body)
        assert headers["X-Migdash-Event"] == document["event"]
        assert headers["X-Migdash-Delivery"] == str(document["delivery"])
        assert document["job"]["id"] == job_id
        assert document["job"]["environment"] == "prod"
        ids.append(document["delivery"])
    assert ids == sorted(ids)
    final = json.loads(receiver.requests[-1][1])["job"]
    assert (final["state"], final["result_revisions"]) == ("succeeded", ["c3"])
    assert {d.state for d in deliveries(app)} == {"delivered"}
    assert deliver_due(services_of(app).sessions, FAST) == 0, "a delivered event is sent once"


def test_a_tampered_body_fails_the_signature(
    app: Flask, protected_target: str, receiver: Receiver, add_webhook: Callable[..., int]
) -> None:
    add_webhook(receiver.url)
    request_and_approve(app, protected_target)
    deliver_due(services_of(app).sessions, FAST)
    headers, body = receiver.requests[0]
    assert valid_signature(headers, body)
    assert not valid_signature(headers, body.replace(b"requester", b"requestor"))


def test_a_receiver_failing_twice_gets_the_event_on_the_third_try_and_the_log_shows_all(
    app: Flask,
    protected_target: str,
    receiver: Receiver,
    add_webhook: Callable[..., int],
) -> None:
    add_webhook(receiver.url, events=("job.requested",))
    receiver.answers = [500, 500]
    request_and_approve(app, protected_target)

    deliver_due(services_of(app).sessions, FAST)

    assert receiver.events() == ["job.requested"] * 3
    bodies = {body for _, body in receiver.requests}
    assert len(bodies) == 1, "each retry sends the same signed body"
    (delivery,) = deliveries(app)
    assert (delivery.state, delivery.attempt_count) == ("delivered", 3)
    assert [a["status"] for a in delivery.attempts] == [500, 500, 200]
    assert [a["error"] for a in delivery.attempts] == [
        "the receiver answered 500",
        "the receiver answered 500",
        None,
    ]


def test_back_off_waits_and_later_events_keep_their_turn(
    app: Flask,
    protected_target: str,
    receiver: Receiver,
    add_webhook: Callable[..., int],
) -> None:
    add_webhook(receiver.url)
    receiver.answers = [503]
    request_and_approve(app, protected_target)
    slow = DeliverySettings(timeout=3.0, retry_seconds=60.0, max_attempts=5)

    assert deliver_due(services_of(app).sessions, slow) == 1
    assert deliver_due(services_of(app).sessions, slow) == 0, "nothing is due during back-off"

    first, *later = deliveries(app)
    assert first.attempt_count == 1
    assert first.state == "pending"
    assert first.next_attempt_at is not None
    waited = (first.next_attempt_at - utcnow()).total_seconds()
    assert 50 < waited <= 60
    assert all(d.attempt_count == 0 for d in later), "no event overtakes the one being retried"


def test_it_gives_up_after_the_last_attempt(
    app: Flask, protected_target: str, receiver: Receiver, add_webhook: Callable[..., int]
) -> None:
    add_webhook(receiver.url, events=("job.requested",))
    receiver.answers = [500] * 10
    request_and_approve(app, protected_target)
    settings = DeliverySettings(timeout=3.0, retry_seconds=0.0, max_attempts=3)

    deliver_due(services_of(app).sessions, settings)

    (delivery,) = deliveries(app)
    assert (delivery.state, delivery.attempt_count, len(delivery.attempts)) == ("failed", 3, 3)
    assert len(receiver.requests) == 3


def test_an_event_exists_only_if_its_cause_committed(
    app: Flask, protected_target: str, receiver: Receiver, add_webhook: Callable[..., int]
) -> None:
    add_webhook(receiver.url)
    services = services_of(app)
    with services.sessions() as session:
        request_target_action(
            session,
            services.jobs,
            registry.get_target(session, protected_target),
            "upgrade",
            "heads",
            actor="requester",
            role=Role.OPERATOR,
            now=utcnow(),
        )
        assert session.scalar(sa.select(sa.func.count(WebhookDelivery.id))) == 2
        session.rollback()
    assert deliveries(app) == []
    assert deliver_due(services.sessions, FAST) == 0
    assert receiver.requests == []


def test_scope_and_event_filters_choose_the_receivers(
    app: Flask,
    protected_target: str,
    receiver: Receiver,
    add_webhook: Callable[..., int],
    make_project: Callable[..., Any],
) -> None:
    other = make_project("linear", name="other")
    with services_of(app).sessions() as session:
        registry.add_project(session, "other", str(other.location))
        registry.add_environment(session, "dev")
        session.commit()
    add_webhook(receiver.url, name="everything")
    add_webhook(receiver.url, name="other-project", project="other")
    add_webhook(receiver.url, name="dev-only", environment="dev")
    add_webhook(receiver.url, name="prod-approvals", environment="prod", events=("job.approved",))

    request_and_approve(app, protected_target)

    with services_of(app).sessions() as session:
        got = {(d.webhook.name, d.event) for d in session.scalars(sa.select(WebhookDelivery))}
    assert {name for name, _ in got} == {"everything", "prod-approvals"}
    assert {event for name, event in got if name == "prod-approvals"} == {"job.approved"}


def test_drift_multiple_heads_and_unreachable_are_announced(
    app: Flask,
    receiver: Receiver,
    add_webhook: Callable[..., int],
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    tmp_path: Any,
) -> None:
    project = make_project("two_heads")
    services = services_of(app)
    with services.sessions() as session:
        registry.add_project(session, project.name, str(project.location))
        registry.add_target(
            session, "forked", project=project.name, environment="dev", url=make_target(project)
        )
        registry.add_target(
            session,
            "gone",
            project=project.name,
            environment="dev",
            url=f"sqlite:///{tmp_path}/no/such/folder/x.db",
        )
        session.commit()
    add_webhook(receiver.url)
    with services.sessions() as session:
        targets = [registry.get_target(session, n) for n in ("forked", "gone")]
        for _ in range(2):  # seen twice: announced once
            refresh_status(session, services.catalog, services.probes, targets)
            session.commit()
        announce_drift(
            session, targets[0], DriftKind.MODELS.value, "drift", "1 difference", utcnow()
        )
        announce_drift(session, targets[0], DriftKind.MODELS.value, "none", "", utcnow())
        session.commit()

    deliver_due(services.sessions, FAST)

    by_event = {}
    for _, body in receiver.requests:
        document = json.loads(body)
        by_event.setdefault(document["event"], []).append(document)
    assert sorted(by_event) == ["drift.detected", "project.multiple_heads", "target.unreachable"]
    assert [len(v) for _, v in sorted(by_event.items())] == [1, 1, 1]
    assert len(by_event["project.multiple_heads"][0]["heads"]) == 2
    assert by_event["target.unreachable"][0]["target"] == "gone"
    assert by_event["drift.detected"][0]["target"] == "forked"


def test_slack_format_posts_text(
    app: Flask, protected_target: str, receiver: Receiver, add_webhook: Callable[..., int]
) -> None:
    add_webhook(receiver.url, format="slack", events=("job.requested",))
    request_and_approve(app, protected_target)
    deliver_due(services_of(app).sessions, FAST)
    ((headers, body),) = receiver.requests
    document = json.loads(body)
    assert list(document) == ["text"]
    assert "job.requested" not in document["text"]
    assert "requested" in document["text"]
    assert valid_signature(headers, body)


def test_neither_secret_nor_url_reaches_the_logs_or_the_audit(
    app: Flask,
    protected_target: str,
    receiver: Receiver,
    add_webhook: Callable[..., int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from migdash.store.models import AuditEvent

    caplog.set_level(logging.DEBUG)
    add_webhook(receiver.url)
    add_webhook("http://127.0.0.1:1/closed-port/path-secret", name="dead")
    receiver.answers = [500]
    request_and_approve(app, protected_target)
    deliver_due(services_of(app).sessions, DeliverySettings(timeout=2, retry_seconds=60))

    assert "failed" in caplog.text
    with services_of(app).sessions() as session:
        audit = json.dumps([e.detail for e in session.scalars(sa.select(AuditEvent))])
        stored = json.dumps(
            [
                [d.payload, d.attempts, d.last_error]
                for d in session.scalars(sa.select(WebhookDelivery))
            ]
        )
    for text in (caplog.text, audit, stored):
        assert SECRET not in text
        assert "path-secret" not in text


def test_a_name_that_later_resolves_to_loopback_is_refused_at_delivery(
    app: Flask,
    protected_target: str,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from migdash.jobs import delivery

    port = receiver.url.split(":")[2].split("/")[0]
    monkeypatch.setattr(delivery, "resolve_host", lambda *_: ["93.184.216.34"])
    fields = WebhookFields(
        name="rebind",
        url=f"http://hooks.example.com:{port}/x",
        secret=SECRET,
        events=("job.requested",),
    )
    with services_of(app).sessions() as session:
        save_webhook(session, fields, actor="admin", role=Role.ADMIN, now=utcnow())
        session.commit()
    request_and_approve(app, protected_target)
    rebound = DeliverySettings(timeout=3.0, retry_seconds=60, resolver=lambda *_: ["127.0.0.1"])

    deliver_due(services_of(app).sessions, rebound)

    assert receiver.requests == [], "the POST never left for the loopback address"
    (delivery_row,) = deliveries(app)
    assert delivery_row.state == "pending"
    assert "loopback, private or reserved" in (delivery_row.attempts[0]["error"] or "")


def test_the_worker_process_delivers(
    app: Flask,
    receiver: Receiver,
    add_webhook: Callable[..., int],
    make_project: Callable[..., Any],
    make_target: Callable[..., str],
    register: Callable[..., None],
    start_worker: Callable[..., Any],
) -> None:
    import time

    project = make_project("linear")
    register(project, shop=make_target(project, at="a1"))
    add_webhook(receiver.url)
    services = services_of(app)
    with services.sessions() as session:
        request_target_action(
            session,
            services.jobs,
            registry.get_target(session, "shop"),
            "upgrade",
            "heads",
            actor="requester",
            role=Role.OPERATOR,
            now=utcnow(),
        )
        session.commit()
    start_worker()
    deadline = time.monotonic() + 60
    while len(receiver.requests) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert receiver.events() == ["job.requested", "job.started", "job.succeeded"]
    assert all(valid_signature(headers, body) for headers, body in receiver.requests)
