"""Webhooks and their deliveries: who is told about what, and what was sent when.

Kept beside :mod:`migdash.store.models` (same ``Base``).  A webhook's URL
and HMAC secret are secrets like target URLs: Fernet-encrypted at rest with
the session's cipher, read only by the delivery pass.  One delivery row per
event per webhook is written in the transaction that caused the event, so an
event exists if and only if its cause committed.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column, object_session, relationship

from migdash.store.models import Base, Environment, Project, enum_column, utcnow


class WebhookFormat(StrEnum):
    JSON = "json"
    SLACK = "slack"
    """``{"text": ...}``: what Slack (and Mattermost, Rocket.Chat) incoming webhooks take."""


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    """Given up after the last attempt."""


EVENTS = (
    "job.requested",
    "job.awaiting_approval",
    "job.approved",
    "job.started",
    "job.succeeded",
    "job.failed",
    "job.interrupted",
    "job.refused",
    "job.rejected",
    "job.cancelled",
    "drift.detected",
    "project.multiple_heads",
    "target.unreachable",
)
"""Every event a webhook may subscribe to (``webhook.test`` is sent only on request)."""


class Webhook(Base):
    """An HTTP receiver of events of one project and/or environment, or of all."""

    __tablename__ = "webhook"
    __table_args__ = (sa.CheckConstraint("format IN ('json', 'slack')", name="format"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    url_encrypted: Mapped[str] = mapped_column(sa.Text)
    """The receiver's URL, Fernet-encrypted (its path often holds a token, as Slack's does)."""
    secret_encrypted: Mapped[str] = mapped_column(sa.Text)
    """The HMAC-SHA256 key of ``X-Migdash-Signature``, Fernet-encrypted."""
    project_id: Mapped[int | None] = mapped_column(sa.ForeignKey("project.id", ondelete="CASCADE"))
    environment_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("environment.id", ondelete="CASCADE")
    )
    format: Mapped[WebhookFormat] = mapped_column(enum_column(WebhookFormat, 10))
    events: Mapped[list[str]] = mapped_column(default=list)
    """Subscribed event names; empty means every event."""
    active: Mapped[bool] = mapped_column(default=True)
    allow_private: Mapped[bool] = mapped_column(default=False)
    """Set by an admin only: the receiver may sit on a loopback or private address."""
    created_by: Mapped[str] = mapped_column(sa.String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    project: Mapped[Project | None] = relationship()
    environment: Mapped[Environment | None] = relationship()

    def _cipher_session(self) -> Session:
        session = object_session(self)
        if session is None:
            raise RuntimeError("a webhook's secrets can only be read while it is in a session")
        return session

    @property
    def url(self) -> str:
        from migdash.store.crypto import session_cipher

        return session_cipher(self._cipher_session()).decrypt(self.url_encrypted)

    @property
    def secret(self) -> str:
        from migdash.store.crypto import session_cipher

        return session_cipher(self._cipher_session()).decrypt(self.secret_encrypted)

    def set_secrets(self, session: Session, *, url: str | None, secret: str | None) -> None:
        from migdash.store.crypto import session_cipher

        cipher = session_cipher(session)
        if url is not None:
            self.url_encrypted = cipher.encrypt(url)
        if secret is not None:
            self.secret_encrypted = cipher.encrypt(secret)


class WebhookDelivery(Base):
    """One event for one webhook, and every attempt to deliver it."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        sa.CheckConstraint("state IN ('pending', 'delivered', 'failed')", name="state"),
        sa.Index("ix_webhook_delivery_state_due", "state", "next_attempt_at"),
        sa.Index("ix_webhook_delivery_webhook", "webhook_id", "id"),
        sa.Index("ix_webhook_delivery_dedupe", "webhook_id", "dedupe_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    webhook_id: Mapped[int] = mapped_column(sa.ForeignKey("webhook.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(sa.String(50))
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    dedupe_key: Mapped[str | None] = mapped_column(sa.String(200))
    """Set for events announced once per fact (a project's set of heads)."""
    state: Mapped[DeliveryState] = mapped_column(
        enum_column(DeliveryState), default=DeliveryState.PENDING
    )
    attempt_count: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    last_status: Mapped[int | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    attempts: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    """One entry per attempt: ``{"at", "status", "error", "ms"}``, oldest first."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column()

    webhook: Mapped[Webhook] = relationship()
