"""The SSRF guard: a webhook cannot make migdash call its own network unless an admin allows it.

Addresses are generated (Hypothesis) from every loopback, private,
link-local, shared, multicast, reserved, documentation and unspecified
range, in IPv4, IPv6 and IPv4-mapped IPv6 form, as literals and as the DNS
answer for a name (alone, or hidden among public answers).
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st

from migdash.errors import ForbiddenDestination, InvalidInput
from migdash.jobs import delivery
from migdash.jobs.delivery import check_destination, is_public
from migdash.jobs.webhooks import WebhookFields, save_webhook
from migdash.services import services_of
from migdash.store.models import Role, utcnow
from migdash.store.webhook_models import Webhook

INTERNAL = [
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "100.64.0.0/10",
        "0.0.0.0/8",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "198.18.0.0/15",
        "192.0.2.0/24",
        "::1/128",
        "::/128",
        "fe80::/10",
        "fc00::/7",
        "ff00::/8",
        "2001:db8::/32",
        "::ffff:127.0.0.0/104",
        "::ffff:10.0.0.0/104",
        "::ffff:192.168.0.0/112",
    )
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450:4001::200e"]


def addresses_in(network: Any) -> st.SearchStrategy[str]:
    return st.integers(0, network.num_addresses - 1).map(lambda i: str(network[i]))


internal_addresses = st.sampled_from(INTERNAL).flatmap(addresses_in)


def literal_url(address: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:8080/hook"


@settings(max_examples=300, deadline=None)
@given(internal_addresses)
def test_internal_literals_are_refused_unless_allowed(address: str) -> None:
    assert not is_public(address)
    with pytest.raises(ForbiddenDestination):
        check_destination(literal_url(address), allow_private=False)
    _, chosen = check_destination(literal_url(address), allow_private=True)
    assert ipaddress.ip_address(chosen) == ipaddress.ip_address(address)


@settings(max_examples=200, deadline=None)
@given(internal_addresses, st.lists(st.sampled_from(PUBLIC), max_size=3), st.randoms())
def test_a_name_resolving_to_an_internal_address_is_refused(
    address: str, public: list[str], random: Any
) -> None:
    answers = [*public, address]
    random.shuffle(answers)
    with pytest.raises(ForbiddenDestination):
        check_destination(
            "https://hooks.example.com/x", allow_private=False, resolver=lambda *_: answers
        )


@pytest.mark.parametrize("address", PUBLIC)
def test_public_receivers_pass(address: str) -> None:
    destination, chosen = check_destination(
        "https://hooks.example.com/services/x?y=1",
        allow_private=False,
        resolver=lambda *_: [address],
    )
    assert (destination.host, destination.port, destination.path) == (
        "hooks.example.com",
        443,
        "/services/x?y=1",
    )
    assert chosen == address


@pytest.mark.parametrize(
    "url", ["http://localhost:9/x", "http://127.1/x", "http://[::1]/x", "http://0/x"]
)
def test_loopback_spellings_are_refused(url: str) -> None:
    with pytest.raises(ForbiddenDestination):
        check_destination(url, allow_private=False)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://hooks.example.com/x",
        "gopher://127.0.0.1:6379/_x",
        "javascript:alert(1)",
        "hooks.example.com/x",
        "http:///nohost",
        "http://exa mple.com/",
        "http://example.com/\x00",
        "http://[::1/x",
        "http://example.com:99999/x",
    ],
)
def test_only_http_and_https_urls_are_taken(url: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_destination(url, allow_private=True, resolver=lambda *_: ["8.8.8.8"])
    assert refused.value.field == "url"


def test_saving_refuses_an_internal_receiver_and_keeps_nothing(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery, "resolve_host", lambda *_: ["10.1.2.3"])
    fields = WebhookFields(name="intranet", url="https://intranet.example/x", secret="s" * 20)
    with services_of(app).sessions() as session:
        with pytest.raises(ForbiddenDestination):
            save_webhook(session, fields, actor="admin", role=Role.ADMIN, now=utcnow())
        session.rollback()
        assert session.scalar(sa.select(sa.func.count(Webhook.id))) == 0
        allowed = WebhookFields(**{**fields.__dict__, "allow_private": True})
        save_webhook(session, allowed, actor="admin", role=Role.ADMIN, now=utcnow())
        assert session.scalar(sa.select(sa.func.count(Webhook.id))) == 1


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR, Role.APPROVER])
def test_only_an_admin_saves_a_webhook(app: Flask, role: Role) -> None:
    from migdash.errors import Forbidden

    fields = WebhookFields(name="x", url="http://127.0.0.1/x", secret="s" * 20, allow_private=True)
    with services_of(app).sessions() as session, pytest.raises(Forbidden):
        save_webhook(session, fields, actor="someone", role=role, now=utcnow())


def test_slack_text_escapes_its_control_characters() -> None:
    from migdash.jobs.delivery import render_body

    payload = {"event": "drift.detected", "summary": "column <!channel> & <http://x|y> added"}
    text = json.loads(render_body(1, payload, "slack"))["text"]
    assert "<" not in text
    assert ">" not in text
    assert "&lt;!channel&gt; &amp; &lt;http://x|y&gt;" in text
