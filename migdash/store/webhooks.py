"""Named reads of webhooks, and :func:`emit`: an event becomes one delivery row per receiver.

Emitting only adds rows, in the caller's transaction: the event exists if
and only if what caused it commits, and nothing is sent until the worker's
delivery pass (``migdash.jobs.delivery``) finds the row.  Flushes at most.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from migdash.errors import NotFound
from migdash.store.models import utcnow
from migdash.store.webhook_models import DeliveryState, Webhook, WebhookDelivery


def subscribers(
    session: Session, event: str, *, project_id: int | None, environment_id: int | None
) -> list[Webhook]:
    """Active webhooks that want *event* about this project and environment.

    A webhook scoped to a project hears only that project's events; one
    scoped to an environment hears that environment's events and the events
    that belong to no environment (a project's heads).
    """
    query = sa.select(Webhook).where(Webhook.active.is_(True)).order_by(Webhook.id)
    query = query.where(
        sa.or_(Webhook.project_id.is_(None), Webhook.project_id == project_id),
    )
    if environment_id is not None:
        query = query.where(
            sa.or_(Webhook.environment_id.is_(None), Webhook.environment_id == environment_id)
        )
    return [hook for hook in session.scalars(query) if not hook.events or event in hook.events]


def emit(
    session: Session,
    event: str,
    payload: dict[str, Any],
    *,
    project_id: int | None,
    environment_id: int | None,
    now: datetime | None = None,
    dedupe_key: str | None = None,
) -> list[WebhookDelivery]:
    """Queue *event* for every subscribed webhook (once per *dedupe_key*, when given)."""
    now = now or utcnow()
    added = []
    for hook in subscribers(session, event, project_id=project_id, environment_id=environment_id):
        if dedupe_key is not None and session.scalar(
            sa.select(WebhookDelivery.id).where(
                WebhookDelivery.webhook_id == hook.id, WebhookDelivery.dedupe_key == dedupe_key
            )
        ):
            continue
        delivery = WebhookDelivery(
            webhook_id=hook.id,
            event=event,
            payload={"event": event, "at": now.isoformat() + "Z", **payload},
            dedupe_key=dedupe_key,
            state=DeliveryState.PENDING,
            attempt_count=0,
            next_attempt_at=now,
            attempts=[],
            created_at=now,
        )
        session.add(delivery)
        added.append(delivery)
    if added:
        session.flush()
    return added


def get_webhook(session: Session, name: str) -> Webhook:
    hook = session.scalar(sa.select(Webhook).where(Webhook.name == name))
    if hook is None:
        raise NotFound(f"no webhook {name!r}", hint="`migdash webhook list` names them.")
    return hook


def all_webhooks(session: Session) -> Sequence[Webhook]:
    return session.scalars(sa.select(Webhook).order_by(Webhook.name)).all()


def deliveries_of(session: Session, webhook_id: int, limit: int = 100) -> Sequence[WebhookDelivery]:
    """A webhook's deliveries, newest first."""
    return session.scalars(
        sa.select(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == webhook_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    ).all()
