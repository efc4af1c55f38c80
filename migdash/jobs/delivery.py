"""Deliver webhook events: the worker's delivery pass, the HTTP POST, and the SSRF guard.

A boundary, like the worker loop: each delivery is claimed and recorded in
short transactions of its own, and no transaction is open during a POST.
Deliveries of one webhook go out in order (only its oldest pending one is
tried), each with ``X-Migdash-Signature: sha256=<HMAC of the body>``; a
failure is retried after ``retry_seconds * 3**(attempt-1)`` until
``max_attempts``, and every attempt is logged on the delivery row.

The guard (:func:`check_destination`) refuses loopback, private, link-local,
multicast, reserved and unspecified addresses unless the webhook allows
private receivers.  It runs when a webhook is saved and again right before
each POST, which connects to the very address it checked (a DNS answer that
changed in between cannot slip through), and redirects are never followed.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from migdash.errors import ForbiddenDestination, InvalidInput, MigdashError
from migdash.store.models import utcnow
from migdash.store.session import rows_changed
from migdash.store.webhook_models import DeliveryState, Webhook, WebhookDelivery, WebhookFormat

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Migdash-Signature"
EVENT_HEADER = "X-Migdash-Event"
DELIVERY_HEADER = "X-Migdash-Delivery"
CLAIM_SECONDS = 300
"""A claimed delivery is not tried by another worker for this long (a POST is far shorter)."""
Resolver = Callable[[str, int], list[str]]


def resolve_host(host: str, port: int) -> list[str]:
    """Every address *host* resolves to (tests replace this to fake a DNS answer)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public(address: str) -> bool:
    """True for a globally routable unicast address; IPv4-mapped IPv6 is judged as IPv4."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (
        ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_loopback
    )


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str
    port: int
    path: str


def parse_destination(url: str) -> Destination:
    """An http(s) URL split for sending; anything else is refused as the ``url`` field."""
    if any(ord(ch) < 33 or ord(ch) == 127 for ch in url):
        raise InvalidInput("the URL has spaces or control characters", field="url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"the URL cannot be read: {exc}", field="url") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput("a webhook URL must start with http:// or https://", field="url")
    if not parts.hostname:
        raise InvalidInput("the webhook URL names no host", field="url")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    default = 443 if parts.scheme == "https" else 80
    return Destination(parts.scheme, parts.hostname, port or default, path)


def check_destination(
    url: str, *, allow_private: bool, resolver: Resolver | None = None
) -> tuple[Destination, str]:
    """The URL's destination and the one address to connect to, or a refusal.

    :raises ForbiddenDestination: some address of the host is not public
        (every answer is checked: one private address among public ones is
        enough to refuse).
    :raises InvalidInput: not an http(s) URL, or a host that does not resolve.
    """
    destination = parse_destination(url)
    try:
        addresses = (resolver or resolve_host)(destination.host, destination.port)
    except (OSError, UnicodeError) as exc:
        raise InvalidInput(
            f"the webhook's host cannot be resolved ({type(exc).__name__})", field="url"
        ) from None
    if not addresses:
        raise InvalidInput("the webhook's host resolves to no address", field="url")
    if not allow_private:
        for address in addresses:
            if not is_public(address):
                raise ForbiddenDestination(
                    "the webhook's host is a loopback, private or reserved address; "
                    "receivers on internal networks are refused",
                    field="url",
                )
    return destination, addresses[0]


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def render_body(delivery_id: int, payload: dict[str, Any], fmt: WebhookFormat | str) -> bytes:
    """The bytes POSTed: migdash's JSON, or Slack's ``{"text": ...}``."""
    if fmt == WebhookFormat.SLACK:
        text = str(payload.get("summary", payload["event"]))
        # Slack reads <...> as links and mentions: escape as its API asks
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        document: dict[str, Any] = {"text": f"migdash: {text}"}
    else:
        document = {"delivery": delivery_id, **payload}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address the guard checked, not to a fresh DNS answer."""

    def __init__(self, address: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, address: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = ssl.create_default_context().wrap_socket(raw, server_hostname=self.host)


def post(
    destination: Destination, address: str, body: bytes, headers: dict[str, str], timeout: float
) -> int:
    """POST *body*; the receiver's status code (redirects are answers, not followed)."""
    kind = _PinnedHTTPSConnection if destination.scheme == "https" else _PinnedHTTPConnection
    connection = kind(address, destination.host, destination.port, timeout=timeout)
    try:
        connection.request("POST", destination.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(65536)
        return int(response.status)
    finally:
        connection.close()


@dataclass(frozen=True)
class DeliverySettings:
    timeout: float = 5.0
    retry_seconds: float = 10.0
    """The first back-off; each further one is three times longer (10 s, 30 s, 90 s, ...)."""
    max_attempts: int = 5
    resolver: Resolver | None = None


@dataclass(frozen=True)
class _Claimed:
    delivery_id: int
    event: str
    url: str
    secret: str
    allow_private: bool
    body: bytes


def deliver_due(
    sessions: sessionmaker[Session], settings: DeliverySettings, *, limit: int = 100
) -> int:
    """One delivery pass: send every due delivery, oldest first per webhook; how many were tried."""
    tried = 0
    while tried < limit:
        claimed = [c for c in (_claim_or_log(sessions, d) for d in _due(sessions)) if c]
        if not claimed:
            return tried
        for item in claimed:
            _attempt(sessions, item, settings)
            tried += 1
    return tried


def _due(sessions: sessionmaker[Session]) -> list[int]:
    """Each webhook's oldest pending delivery, if it is due (later ones wait their turn)."""
    with sessions() as session:
        oldest = (
            sa.select(sa.func.min(WebhookDelivery.id))
            .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
            .where(WebhookDelivery.state == DeliveryState.PENDING, Webhook.active.is_(True))
            .group_by(WebhookDelivery.webhook_id)
        )
        return list(
            session.scalars(
                sa.select(WebhookDelivery.id)
                .where(WebhookDelivery.id.in_(oldest), WebhookDelivery.next_attempt_at <= utcnow())
                .order_by(WebhookDelivery.id)
            )
        )


def _claim_or_log(sessions: sessionmaker[Session], delivery_id: int) -> _Claimed | None:
    """Claim one delivery; one that cannot be read (a rotated-away key) must not stop the rest."""
    try:
        return _claim(sessions, delivery_id)
    except MigdashError as exc:
        log.error("webhook delivery %s cannot be prepared: %s", delivery_id, exc.message)
        return None


def _claim(sessions: sessionmaker[Session], delivery_id: int) -> _Claimed | None:
    """Take *delivery_id* for one attempt (compare-and-set: one worker sends it)."""
    with sessions() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.state != DeliveryState.PENDING:
            return None
        due = delivery.next_attempt_at
        taken = rows_changed(
            session,
            sa.update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.state == DeliveryState.PENDING,
                WebhookDelivery.next_attempt_at == due,
            )
            .values(next_attempt_at=utcnow() + timedelta(seconds=CLAIM_SECONDS)),
        )
        hook: Webhook = delivery.webhook
        claimed = _Claimed(
            delivery_id,
            delivery.event,
            hook.url,
            hook.secret,
            hook.allow_private,
            render_body(delivery_id, delivery.payload, hook.format),
        )
        session.commit()
        return claimed if taken == 1 else None


def send(item: _Claimed, settings: DeliverySettings) -> tuple[int | None, str | None]:
    """One POST of a claimed delivery: (status, None) or (None, why it was not delivered)."""
    try:
        destination, address = check_destination(
            item.url, allow_private=item.allow_private, resolver=settings.resolver
        )
    except InvalidInput as exc:
        return None, exc.message
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "migdash-webhook",
        SIGNATURE_HEADER: sign(item.secret, item.body),
        EVENT_HEADER: item.event,
        DELIVERY_HEADER: str(item.delivery_id),
    }
    try:
        return post(destination, address, item.body, headers, settings.timeout), None
    except (OSError, http.client.HTTPException) as exc:
        # the exception's text may quote the URL; its type and errno say enough
        errno = getattr(exc, "errno", None)
        return None, f"{type(exc).__name__}" + (f" (errno {errno})" if errno else "")


def _attempt(sessions: sessionmaker[Session], item: _Claimed, settings: DeliverySettings) -> None:
    started = time.monotonic()
    status, error = send(item, settings)
    elapsed = int((time.monotonic() - started) * 1000)
    if status is not None and not 200 <= status < 300:
        error = f"the receiver answered {status}"
    with sessions() as session:
        record_attempt(session, item.delivery_id, status, error, elapsed, utcnow(), settings)
        session.commit()
    if error:
        log.warning("webhook delivery %s (%s) failed: %s", item.delivery_id, item.event, error)


def record_attempt(
    session: Session,
    delivery_id: int,
    status: int | None,
    error: str | None,
    elapsed_ms: int,
    now: datetime,
    settings: DeliverySettings,
) -> WebhookDelivery | None:
    """Log one attempt; delivered, retried after a back-off, or given up after the last."""
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:  # its webhook was removed meanwhile
        return None
    delivery.attempt_count += 1
    entry = {"at": now.isoformat() + "Z", "status": status, "error": error, "ms": elapsed_ms}
    delivery.attempts = [*delivery.attempts, entry]
    delivery.last_status, delivery.last_error = status, (error or None) and error[:500]
    if error is None:
        delivery.state, delivery.delivered_at, delivery.next_attempt_at = (
            DeliveryState.DELIVERED,
            now,
            None,
        )
    elif delivery.attempt_count >= settings.max_attempts:
        delivery.state, delivery.next_attempt_at = DeliveryState.FAILED, None
    else:
        wait = settings.retry_seconds * 3 ** (delivery.attempt_count - 1)
        delivery.next_attempt_at = now + timedelta(seconds=wait)
    session.flush()
    return delivery


def delivery_settings(settings: dict[str, Any]) -> DeliverySettings:
    """The delivery pass's settings from the app's (``MIGDASH_WEBHOOK_*``)."""
    return DeliverySettings(
        timeout=settings["MIGDASH_WEBHOOK_TIMEOUT"],
        retry_seconds=settings["MIGDASH_WEBHOOK_RETRY_SECONDS"],
        max_attempts=settings["MIGDASH_WEBHOOK_MAX_ATTEMPTS"],
    )


def start_delivery(
    sessions: sessionmaker[Session],
    settings: DeliverySettings,
    stop: threading.Event,
    interval: float = 2.0,
) -> threading.Thread:
    """The worker's delivery thread: a pass every *interval* seconds until *stop* is set.

    A thread of its own, so a slow receiver never delays the reaper.
    """

    def run() -> None:
        while not stop.wait(interval):
            try:
                deliver_due(sessions, settings)
            except Exception:  # noqa: BLE001 - the pass must outlive a bad moment of the DB
                log.exception("webhook delivery pass failed; trying again")

    thread = threading.Thread(target=run, name="webhooks", daemon=True)
    thread.start()
    return thread
