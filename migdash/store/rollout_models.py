"""Fleet rollouts: one destination revision brought to many targets in waves.

A rollout owns its members (one per selected target, each in a wave: the
canary is wave 0) and, on protected environments, the approvals given for
the whole rollout.  Each member reaches its target through an ordinary job
(``job_id``), so locks, the gate, logs and the audit trail are the jobs'
own; these rows only say which wave a target is in and how it ended.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from migdash.store.models import Base, Project, Target, enum_column, utcnow


class RolloutState(StrEnum):
    """A rollout's life: (awaiting_approval ->) running -> paused/halted -> ... -> terminal."""

    AWAITING_APPROVAL = "awaiting_approval"
    RUNNING = "running"
    PAUSED = "paused"
    """Stopped by a person, or because a member's worker died (its job was interrupted)."""
    HALTED = "halted"
    """A wave ended with a failure and ``on_failure`` is ``halt``: no further wave starts."""
    CANCELLED = "cancelled"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    """Every wave ran (``on_failure=continue``) and at least one member failed."""

    @property
    def terminal(self) -> bool:
        return self in (RolloutState.CANCELLED, RolloutState.SUCCEEDED)


class MemberState(StrEnum):
    WAITING = "waiting"
    RUNNING = "running"
    """Its job exists and is not finished (awaiting approval, queued or running)."""
    SUCCEEDED = "succeeded"
    """Its job succeeded, or the target was found at the destination (no job needed)."""
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    """Its job's worker died; on resume the target is probed again before anything runs."""
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (MemberState.SUCCEEDED, MemberState.FAILED, MemberState.CANCELLED)


ON_FAILURE = ("halt", "continue")


def _values(enum: type[StrEnum]) -> str:
    return ", ".join(f"'{member.value}'" for member in enum)


class Rollout(Base):
    """One upgrade of a selection of targets to *destination*, wave after wave."""

    __tablename__ = "rollout"
    __table_args__ = (
        sa.CheckConstraint(f"state IN ({_values(RolloutState)})", name="state"),
        sa.CheckConstraint("on_failure IN ('halt', 'continue')", name="on_failure"),
        sa.CheckConstraint(
            "canary_size >= 0 AND wave_size >= 1 AND concurrency >= 1", name="sizes"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int | None] = mapped_column(sa.ForeignKey("project.id", ondelete="SET NULL"))
    project_name: Mapped[str] = mapped_column(sa.String(100))
    destination: Mapped[str] = mapped_column(sa.String(200))
    environments: Mapped[list[str]] = mapped_column(default=list)
    tags: Mapped[list[str]] = mapped_column(default=list)
    """Only targets carrying every one of these tags were selected."""
    canary_size: Mapped[int] = mapped_column()
    wave_size: Mapped[int] = mapped_column()
    concurrency: Mapped[int] = mapped_column()
    """At most this many member jobs unfinished at once."""
    on_failure: Mapped[str] = mapped_column(sa.String(10), default="halt")
    state: Mapped[RolloutState] = mapped_column(enum_column(RolloutState))
    note: Mapped[str | None] = mapped_column(sa.String(500))
    """Why it is paused or halted, for the page."""
    required_approvals: Mapped[int] = mapped_column(default=0)
    """Distinct approvers the whole rollout needs (0: no environment is protected)."""
    fingerprint: Mapped[str] = mapped_column(sa.String(64))
    """SHA-256 of every member's plan hash: what an approver saw (``jobs.rollouts``)."""
    plans: Mapped[list[Any]] = mapped_column(sa.JSON, default=list)
    """The distinct plans (members grouped by what would run), as shown for approval."""
    requested_by: Mapped[str] = mapped_column(sa.String(100))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    project: Mapped[Project | None] = relationship()
    members: Mapped[list[RolloutMember]] = relationship(
        back_populates="rollout",
        order_by="(RolloutMember.wave, RolloutMember.position)",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class RolloutMember(Base):
    """One target of a rollout: its wave, its approved plan and the job that moved it."""

    __tablename__ = "rollout_member"
    __table_args__ = (
        sa.CheckConstraint(f"state IN ({_values(MemberState)})", name="state"),
        sa.UniqueConstraint("rollout_id", "target_id", name="uq_rollout_member_target"),
        sa.Index("ix_rollout_member_wave", "rollout_id", "wave", "position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rollout_id: Mapped[int] = mapped_column(sa.ForeignKey("rollout.id", ondelete="CASCADE"))
    target_id: Mapped[int | None] = mapped_column(sa.ForeignKey("target.id", ondelete="SET NULL"))
    target_name: Mapped[str] = mapped_column(sa.String(100))
    environment: Mapped[str] = mapped_column(sa.String(100))
    wave: Mapped[int] = mapped_column()
    """0 is the canary; waves run in order, one at a time."""
    position: Mapped[int] = mapped_column()
    state: Mapped[MemberState] = mapped_column(
        enum_column(MemberState), default=MemberState.WAITING
    )
    plan_hash: Mapped[str | None] = mapped_column(sa.String(64))
    """The plan approved with the rollout; a member job with another plan needs its own approval."""
    plan_shape: Mapped[str | None] = mapped_column(sa.String(64))
    """What runs, target aside: members sharing it share one plan on the approval page."""
    job_id: Mapped[int | None] = mapped_column(sa.ForeignKey("job.id", ondelete="SET NULL"))
    jobs: Mapped[int] = mapped_column(default=0)
    """How many jobs this member requested (a resume after a failure requests another)."""
    error: Mapped[str | None] = mapped_column(sa.Text)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()

    rollout: Mapped[Rollout] = relationship(back_populates="members")
    target: Mapped[Target | None] = relationship()


class RolloutApproval(Base):
    """One approver's decision on a whole rollout, for the fingerprint they read."""

    __tablename__ = "rollout_approval"
    __table_args__ = (
        sa.CheckConstraint("decision IN ('approved', 'rejected')", name="decision"),
        sa.CheckConstraint("decided_by <> ''", name="decider"),
        sa.UniqueConstraint("rollout_id", "decided_by", name="uq_rollout_approval_decider"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rollout_id: Mapped[int] = mapped_column(sa.ForeignKey("rollout.id", ondelete="CASCADE"))
    decision: Mapped[str] = mapped_column(sa.String(10))
    decided_by: Mapped[str] = mapped_column(sa.String(100))
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)
    comment: Mapped[str] = mapped_column(sa.Text, default="")
    fingerprint: Mapped[str] = mapped_column(sa.String(64))
