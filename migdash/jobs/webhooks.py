"""Add, edit, remove and test webhooks (admin only); web and CLI call these same functions.

The receiver's URL passes the SSRF guard (:func:`migdash.jobs.delivery.check_destination`)
when it is saved, and again before every delivery.  Only an admin may save a
webhook at all, and so only an admin can allow a private receiver.  Every
change is audited without its URL or secret.  Functions flush; the boundary commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.orm import Session

from migdash.errors import Conflict, InvalidInput
from migdash.jobs.delivery import Resolver, check_destination
from migdash.permissions import Permission, require
from migdash.store import audit
from migdash.store.models import Environment, Project, Role
from migdash.store.registry import check_name
from migdash.store.webhook_models import (
    EVENTS,
    DeliveryState,
    Webhook,
    WebhookDelivery,
    WebhookFormat,
)

MIN_SECRET = 16
MAX_SECRET = 200
MAX_URL = 2000


@dataclass(frozen=True)
class WebhookFields:
    """What a person sets on a webhook; ``url``/``secret`` None on an edit keep the stored ones."""

    name: str
    url: str | None
    secret: str | None
    project: str | None = None
    environment: str | None = None
    format: str = "json"
    events: tuple[str, ...] = ()
    active: bool = True
    allow_private: bool = False


def mask_webhook_url(url: str) -> str:
    """Scheme and host only: a receiver's path and query are often its credential (Slack's are)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "***"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{port}/***"


def check_events(events: Iterable[str]) -> list[str]:
    chosen = [e.strip() for e in events if e.strip()]
    unknown = [e for e in chosen if e not in EVENTS]
    if unknown:
        raise InvalidInput(
            f"unknown event {unknown[0]!r}", hint=f"One of {', '.join(EVENTS)}", field="events"
        )
    return list(dict.fromkeys(chosen))


def _check_secret(secret: str) -> str:
    if not MIN_SECRET <= len(secret) <= MAX_SECRET or any(ord(c) < 32 for c in secret):
        raise InvalidInput(
            f"the signing secret must be {MIN_SECRET} to {MAX_SECRET} printable characters",
            hint="e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'",
            field="secret",
        )
    return secret


def _scope(session: Session, model: Any, name: str | None, field: str) -> int | None:
    if not name:
        return None
    found = session.scalar(sa.select(model.id).where(model.name == name))
    if found is None:
        raise InvalidInput(f"no {field} named {name!r}", field=field)
    return int(found)


def save_webhook(
    session: Session,
    fields: WebhookFields,
    *,
    existing: Webhook | None = None,
    actor: str,
    role: Role | str,
    now: datetime,
    resolver: Resolver | None = None,
) -> Webhook:
    """Add a webhook (or edit *existing*) after checking every field and the receiver's address.

    :raises ForbiddenDestination: the URL's host is loopback, private or
        reserved and ``allow_private`` is not set.
    """
    require(role, Permission.ADMIN, actor=actor)
    name = check_name("webhook", fields.name)
    clash = session.scalar(sa.select(Webhook.id).where(Webhook.name == name))
    if clash is not None and (existing is None or clash != existing.id):
        raise Conflict(f"a webhook named {name!r} already exists")
    if fields.format not in {f.value for f in WebhookFormat}:
        raise InvalidInput("format must be json or slack", field="format")
    url = fields.url or None
    if url is None and existing is None:
        raise InvalidInput("a new webhook needs a receiver URL", field="url")
    if url is not None and len(url) > MAX_URL:
        raise InvalidInput(f"the URL is longer than {MAX_URL} characters", field="url")
    secret = _check_secret(fields.secret or "") if fields.secret or existing is None else None
    hook = existing or Webhook(created_by=actor, created_at=now)
    hook.name = name
    hook.project_id = _scope(session, Project, fields.project, "project")
    hook.environment_id = _scope(session, Environment, fields.environment, "environment")
    hook.format = WebhookFormat(fields.format)
    hook.events = check_events(fields.events)
    hook.active, hook.allow_private = fields.active, fields.allow_private
    check_destination(url or hook.url, allow_private=fields.allow_private, resolver=resolver)
    hook.set_secrets(session, url=url, secret=secret)
    if existing is None:
        session.add(hook)
    session.flush()
    session.expire(hook, ["project", "environment"])
    _audit(session, actor, "webhook.add" if existing is None else "webhook.edit", hook, now)
    return hook


def remove_webhook(
    session: Session, hook: Webhook, *, actor: str, role: Role | str, now: datetime
) -> None:
    """Remove a webhook and its delivery log."""
    require(role, Permission.ADMIN, actor=actor)
    _audit(session, actor, "webhook.remove", hook, now)
    session.execute(sa.delete(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id))
    session.delete(hook)
    session.flush()


def send_test(
    session: Session, hook: Webhook, *, actor: str, role: Role | str, now: datetime
) -> WebhookDelivery:
    """Queue a ``webhook.test`` event for *hook* alone; the worker sends it like any other."""
    require(role, Permission.ADMIN, actor=actor)
    delivery = WebhookDelivery(
        webhook_id=hook.id,
        event="webhook.test",
        payload={
            "event": "webhook.test",
            "at": now.isoformat() + "Z",
            "webhook": hook.name,
            "summary": f"test event for webhook {hook.name}, sent by {actor}",
        },
        state=DeliveryState.PENDING,
        attempt_count=0,
        next_attempt_at=now,
        attempts=[],
        created_at=now,
    )
    session.add(delivery)
    session.flush()
    return delivery


def webhook_json(hook: Webhook) -> dict[str, Any]:
    """A webhook as plain data: the URL masked, the secret absent."""
    return {
        "name": hook.name,
        "url": mask_webhook_url(hook.url),
        "project": hook.project.name if hook.project else None,
        "environment": hook.environment.name if hook.environment else None,
        "format": hook.format.value if hook.format else None,
        "events": hook.events or ["*"],
        "active": hook.active,
        "allow_private": hook.allow_private,
    }


def delivery_json(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event": delivery.event,
        "state": delivery.state.value if delivery.state else None,
        "attempt_count": delivery.attempt_count,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "created_at": delivery.created_at.isoformat() + "Z",
        "next_attempt_at": (
            delivery.next_attempt_at.isoformat() + "Z" if delivery.next_attempt_at else None
        ),
        "attempts": delivery.attempts,
    }


def _audit(session: Session, actor: str, action: str, hook: Webhook, now: datetime) -> None:
    audit.record(
        session,
        actor,
        action,
        project=hook.project.name if hook.project else None,
        environment=hook.environment.name if hook.environment else None,
        detail={
            "webhook": hook.name,
            "host": mask_webhook_url(hook.url),
            "format": hook.format.value,
            "events": hook.events,
            "allow_private": hook.allow_private,
        },
        now=now,
    )
