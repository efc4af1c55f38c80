"""The /webhooks pages: internal receivers refused, URLs masked, secrets never shown.

Nothing here sends anything: the pages only save webhooks and queue test
events; the worker's pass delivers (``tests/jobs/test_webhooks.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from migdash.jobs import delivery
from migdash.jobs.delivery import DeliverySettings, record_attempt
from migdash.services import services_of
from migdash.store.models import Role, utcnow
from migdash.store.webhook_models import Webhook, WebhookDelivery

SECRET = "web-form-secret-abcdef"  # noqa: S105 - a test key
PATH_TOKEN = "T0KEN-IN-THE-PATH"


def webhook_count(app: Flask) -> int:
    with services_of(app).sessions() as session:
        return int(session.scalar(sa.select(sa.func.count(Webhook.id))) or 0)


def field_errors(html: str, field: str) -> str:
    match = re.search(rf'<label>[^<]*<[^>]*name="{field}".*?</label>', html, re.S)
    assert match, f"no {field} field"
    return " ".join(re.findall(r'<span class="err">(.*?)</span>', match.group(0)))


def form(url: str, **extra: str) -> dict[str, str]:
    return {
        "name": "alerts",
        "url": url,
        "secret": SECRET,
        "project": "",
        "environment": "",
        "format": "json",
        "events": "",
        "active": "y",
        **extra,
    }


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/x",
        "http://localhost/x",
        "http://[::1]/x",
        "http://10.0.0.7/x",
        "https://192.168.1.20/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://intranet.example/x",
    ],
)
def test_an_internal_receiver_is_refused_beside_the_url_field(
    app: Flask, login: Callable[..., FlaskClient], monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    real = delivery.resolve_host
    monkeypatch.setattr(
        delivery,
        "resolve_host",
        lambda host, port: ["10.20.30.40"] if host == "intranet.example" else real(host, port),
    )
    client = login(Role.ADMIN)
    response = client.post("/webhooks/new", data=form(url))
    assert response.status_code == 400
    assert "loopback, private or reserved" in field_errors(response.get_data(as_text=True), "url")
    assert webhook_count(app) == 0

    allowed = client.post("/webhooks/new", data=form(url, allow_private="y"))
    assert allowed.status_code == 302, allowed.get_data(as_text=True)[:2000]
    assert webhook_count(app) == 1


def test_pages_mask_the_url_and_never_show_the_secret(
    app: Flask, login: Callable[..., FlaskClient]
) -> None:
    client = login(Role.ADMIN)
    url = f"http://127.0.0.1:9000/hooks/{PATH_TOKEN}?key={PATH_TOKEN}"
    assert client.post("/webhooks/new", data=form(url, allow_private="y")).status_code == 302
    for page in ("/webhooks/", "/webhooks/alerts", "/webhooks/alerts/edit", "/audit/"):
        html = client.get(page).get_data(as_text=True)
        assert PATH_TOKEN not in html, page
        assert SECRET not in html, page
    assert "http://127.0.0.1:9000/***" in client.get("/webhooks/").get_data(as_text=True)


def test_an_edit_keeps_the_stored_url_and_secret_when_left_empty(
    app: Flask, login: Callable[..., FlaskClient]
) -> None:
    client = login(Role.ADMIN)
    client.post("/webhooks/new", data=form("http://127.0.0.1:9/a", allow_private="y"))
    changed = form("", allow_private="y", secret="", format="slack", events="job.failed")
    assert client.post("/webhooks/alerts/edit", data=changed).status_code == 302
    with services_of(app).sessions() as session:
        hook = session.scalar(sa.select(Webhook))
        assert hook is not None
        assert (hook.url, hook.secret, hook.format, hook.events) == (
            "http://127.0.0.1:9/a",
            SECRET,
            "slack",
            ["job.failed"],
        )
    refused = client.post("/webhooks/alerts/edit", data={**changed, "allow_private": ""})
    assert refused.status_code == 400, "turning the allowance off re-checks the stored URL"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", '<script>alert(1)</script>"'),
        ("name", "x" * 101),
        ("url", "javascript:alert('<b>')"),
        ("url", "gopher://127.0.0.1:6379/_FLUSHALL"),
        ("secret", "short"),
        ("events", "job.started, <img src=x>"),
        ("format", "xml"),
        ("project", "no-such-project"),
    ],
)
def test_hostile_fields_get_a_400_that_names_the_field_escaped(
    app: Flask, login: Callable[..., FlaskClient], field: str, value: str
) -> None:
    client = login(Role.ADMIN)
    response = client.post(
        "/webhooks/new", data={**form("http://127.0.0.1/x", allow_private="y"), field: value}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert field_errors(html, field)
    assert "<script>alert" not in html
    assert "<img src=x>" not in html
    assert webhook_count(app) == 0


def test_nul_in_any_field_is_a_400(app: Flask, login: Callable[..., FlaskClient]) -> None:
    client = login(Role.ADMIN)
    for field in ("name", "url", "secret", "events"):
        response = client.post(
            "/webhooks/new", data={**form("http://127.0.0.1/x"), field: "a\x00b"}
        )
        assert response.status_code == 400, field
    assert webhook_count(app) == 0


def test_the_delivery_log_shows_every_attempt_and_test_send_queues_one(
    app: Flask, login: Callable[..., FlaskClient]
) -> None:
    client = login(Role.ADMIN)
    client.post("/webhooks/new", data=form("http://127.0.0.1:9/x", allow_private="y"))
    assert client.post("/webhooks/alerts/test").status_code == 302
    with services_of(app).sessions() as session:
        (queued,) = session.scalars(sa.select(WebhookDelivery)).all()
        assert (queued.event, queued.state) == ("webhook.test", "pending")
        for status in (500, 502, 200):
            error = None if status == 200 else f"the receiver answered {status}"
            record_attempt(session, queued.id, status, error, 12, utcnow(), DeliverySettings())
        session.commit()
    html = client.get("/webhooks/alerts").get_data(as_text=True)
    row = re.search(rf'<tr data-delivery="{queued.id}">.*?</tr>', html, re.S)
    assert row is not None
    attempts = re.findall(r"<li>(.*?)</li>", row.group(0), re.S)
    assert [re.search(r"HTTP (\d+)", a).group(1) for a in attempts] == ["500", "502", "200"]  # type: ignore[union-attr]
    assert "delivered" in row.group(0)


def test_remove_takes_the_log_with_it(app: Flask, login: Callable[..., FlaskClient]) -> None:
    client = login(Role.ADMIN)
    client.post("/webhooks/new", data=form("http://127.0.0.1:9/x", allow_private="y"))
    client.post("/webhooks/alerts/test")
    assert client.post("/webhooks/alerts/delete").status_code == 302
    assert webhook_count(app) == 0
    with services_of(app).sessions() as session:
        assert session.scalar(sa.select(sa.func.count(WebhookDelivery.id))) == 0
    assert client.get("/webhooks/alerts").status_code == 404


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR, Role.APPROVER])
def test_only_admins_see_or_change_webhooks(
    app: Flask, login: Callable[..., FlaskClient], role: Role, **_: Any
) -> None:
    client = login(role)
    assert client.get("/webhooks/").status_code == 403
    assert client.post("/webhooks/new", data=form("http://8.8.8.8/x")).status_code == 403
    assert webhook_count(app) == 0
