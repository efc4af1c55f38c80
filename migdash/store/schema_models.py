"""What migdash keeps about targets' live schemas: snapshots, applied files, references, drift.

Kept beside :mod:`migdash.store.models` (same ``Base``, same naming
convention) so that module stays about the registry, jobs and people.
Schemas are stored as canonical JSON (see ``migdash.engine.schema``) with a
SHA-256 fingerprint that records the normaliser version, dialect and server
major version, so a change of the normaliser never makes every target look
drifted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from migdash.store.models import Base, utcnow


class SchemaSnapshot(Base):
    """A target's live schema as reflected once (after a job, or on demand)."""

    __tablename__ = "schema_snapshot"
    __table_args__ = (sa.Index("ix_schema_snapshot_target_taken", "target_id", "taken_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    target_id: Mapped[int] = mapped_column(sa.ForeignKey("target.id", ondelete="CASCADE"))
    taken_at: Mapped[datetime] = mapped_column(default=utcnow)
    job_id: Mapped[int | None] = mapped_column(sa.ForeignKey("job.id", ondelete="SET NULL"))
    """The job after which it was taken; None when taken on demand."""
    revisions: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    """The version table's rows at the time (what the schema claims to be)."""
    dialect: Mapped[str] = mapped_column(sa.String(30))
    server_major: Mapped[int | None] = mapped_column()
    normaliser_version: Mapped[int] = mapped_column()
    fingerprint: Mapped[str] = mapped_column(sa.String(64))
    schema: Mapped[dict[str, Any]] = mapped_column(sa.JSON)


class AppliedRevision(Base):
    """A revision file as it was when migdash applied it to a target (for "edited after apply")."""

    __tablename__ = "applied_revision"
    __table_args__ = (
        sa.Index("ix_applied_revision_target_revision", "target_id", "revision", "applied_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    target_id: Mapped[int] = mapped_column(sa.ForeignKey("target.id", ondelete="CASCADE"))
    revision: Mapped[str] = mapped_column(sa.String(100))
    job_id: Mapped[int | None] = mapped_column(sa.ForeignKey("job.id", ondelete="SET NULL"))
    applied_at: Mapped[datetime] = mapped_column(default=utcnow)
    path: Mapped[str] = mapped_column(sa.String(1000))
    raw_hash: Mapped[str] = mapped_column(sa.String(64))
    ast_hash: Mapped[str] = mapped_column(sa.String(64))
    """SHA-256 of the file's syntax tree: line endings, whitespace and comments don't count."""
    content: Mapped[str] = mapped_column(sa.Text)


class ReferenceSchema(Base):
    """The schema revision R should have, built by upgrading a scratch database (cached)."""

    __tablename__ = "reference_schema"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    """SHA-256 of (the revision chain's file hashes, dialect, server major, normaliser version)."""
    project_id: Mapped[int | None] = mapped_column(sa.ForeignKey("project.id", ondelete="CASCADE"))
    revisions: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    dialect: Mapped[str] = mapped_column(sa.String(30))
    server_major: Mapped[int | None] = mapped_column()
    normaliser_version: Mapped[int] = mapped_column()
    fingerprint: Mapped[str] = mapped_column(sa.String(64))
    schema: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    built_at: Mapped[datetime] = mapped_column(default=utcnow)
    build_seconds: Mapped[float] = mapped_column(sa.Float, default=0.0)


class DriftCheck(Base):
    """One drift check of a target: against its models, or against its history."""

    __tablename__ = "drift_check"
    __table_args__ = (
        sa.Index("ix_drift_check_target_kind", "target_id", "kind", "checked_at"),
        sa.CheckConstraint("kind IN ('models', 'history')", name="kind"),
        sa.CheckConstraint(
            "outcome IN ('none', 'drift', 'stamped_not_applied', 'error', 'not_applicable')",
            name="outcome",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    target_id: Mapped[int] = mapped_column(sa.ForeignKey("target.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(sa.String(20))
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)
    outcome: Mapped[str] = mapped_column(sa.String(30))
    summary: Mapped[str] = mapped_column(sa.Text, default="")
    """One line a person reads ("2 differences: column orders.note added, index ix_a dropped")."""
    detail: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    """The structured diff, or the operations Alembic would generate."""
