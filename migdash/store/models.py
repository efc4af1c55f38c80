"""SQLAlchemy 2.0 models of the metadata database.

Names follow Alembic's and migdash's vocabulary (project, environment,
target, snapshot).  Constraints that protect the data live in the schema, not
only in code: unique names, ordered environments, a CHECK on roles.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    object_session,
    relationship,
)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    metadata = sa.MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {dict[str, Any]: sa.JSON, list[str]: sa.JSON}


def enum_column(enum: type[StrEnum], length: int = 20) -> sa.Enum:
    """A StrEnum column stored as its values in a VARCHAR (the CHECKs live in the schema)."""
    return sa.Enum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=False,
    )


class Role(StrEnum):
    """What a user may do; each role includes the ones before it."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    APPROVER = "approver"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)


class Project(Base):
    """An Alembic project: one script directory, applied to many targets."""

    __tablename__ = "project"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    script_location: Mapped[str] = mapped_column(sa.String(1000))
    version_table: Mapped[str] = mapped_column(sa.String(100), default="alembic_version")
    version_table_schema: Mapped[str | None] = mapped_column(sa.String(100))
    track: Mapped[str] = mapped_column(sa.String(200), default="heads")
    """The head(s) targets should reach: ``heads``, a revision, or ``label@head``."""
    url_mode: Mapped[str] = mapped_column(sa.String(20), default="config")
    """How a target's URL reaches env.py: ``config`` (sqlalchemy.url), ``connection``
    (config.attributes["connection"]) or ``env`` (the variable in ``url_env_var``)."""
    url_env_var: Mapped[str | None] = mapped_column(sa.String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    targets: Mapped[list[Target]] = relationship(
        back_populates="project",
        order_by="Target.name",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class Environment(Base):
    """An ordered stage (dev, staging, prod) or grouping (tenant, region) of targets."""

    __tablename__ = "environment"
    __table_args__ = (
        sa.CheckConstraint("promotion_rule IN ('warn', 'refuse')", name="promotion_rule"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    position: Mapped[int] = mapped_column(default=0)
    protected: Mapped[bool] = mapped_column(default=False)
    required_approvals: Mapped[int] = mapped_column(default=1, server_default="1")
    """Distinct approvers a job here needs when the environment is protected."""
    promotion_rule: Mapped[str] = mapped_column(
        sa.String(10), default="warn", server_default="warn"
    )
    """Promoting here a revision the environment before this one lacks: 'warn' or 'refuse'."""
    windows: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    """Rollout windows (``jobs.windows`` syntax) in which jobs here may start; '' is always."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    targets: Mapped[list[Target]] = relationship(back_populates="environment")


class Target(Base):
    """One database a project is applied to."""

    __tablename__ = "target"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    project_id: Mapped[int] = mapped_column(sa.ForeignKey("project.id", ondelete="CASCADE"))
    environment_id: Mapped[int] = mapped_column(sa.ForeignKey("environment.id"))
    url_encrypted: Mapped[str] = mapped_column(sa.Text)
    """The database URL, Fernet-encrypted; read it through :attr:`url`."""
    tags: Mapped[list[str]] = mapped_column(default=list)
    version_table: Mapped[str | None] = mapped_column(sa.String(100))
    """Overrides the project's version table for this target only."""
    version_table_schema: Mapped[str | None] = mapped_column(sa.String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    project: Mapped[Project] = relationship(back_populates="targets")
    environment: Mapped[Environment] = relationship(back_populates="targets")

    @property
    def url(self) -> str:
        """The plaintext URL, decrypted with the session's cipher (never stored)."""
        from migdash.store.crypto import session_cipher

        session = object_session(self)
        if session is None:
            raise RuntimeError("a target's URL can only be read while it is in a session")
        return session_cipher(session).decrypt(self.url_encrypted)

    def set_url(self, session: Session, url: str) -> None:
        from migdash.store.crypto import session_cipher

        self.url_encrypted = session_cipher(session).encrypt(url)


class User(Base):
    """A person who signs in; the password is stored only as a hash."""

    __tablename__ = "user"
    __table_args__ = (
        sa.CheckConstraint("role IN ('viewer', 'operator', 'approver', 'admin')", name="role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(300))
    role: Mapped[Role] = mapped_column(enum_column(Role), default=Role.VIEWER)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Snapshot(Base):
    """A target's state as one probe saw it; the latest per target drives the overview."""

    __tablename__ = "snapshot"
    __table_args__ = (sa.Index("ix_snapshot_target_taken", "target_id", "taken_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    target_id: Mapped[int] = mapped_column(sa.ForeignKey("target.id", ondelete="CASCADE"))
    taken_at: Mapped[datetime] = mapped_column(default=utcnow)
    """When this state was first seen."""
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)
    """When a probe last confirmed it (an unchanged state does not add a row)."""
    state: Mapped[str] = mapped_column(sa.String(30))
    current: Mapped[list[str]] = mapped_column(default=list)
    heads: Mapped[list[str]] = mapped_column(default=list)
    pending: Mapped[list[str]] = mapped_column(default=list)
    error: Mapped[str | None] = mapped_column(sa.Text)
    elapsed_ms: Mapped[int] = mapped_column(default=0)


class JobState(StrEnum):
    """A job's life: queued -> running -> one of the terminal states."""

    AWAITING_APPROVAL = "awaiting_approval"
    QUEUED = "queued"
    SCHEDULED = "scheduled"
    """Approved (or unprotected) but waiting for its environment's window or its not_before."""
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    REJECTED = "rejected"
    REFUSED = "refused"
    """The gate said no right before running (approvals missing, plan changed); nothing ran."""

    @property
    def terminal(self) -> bool:
        return self not in (
            JobState.AWAITING_APPROVAL,
            JobState.QUEUED,
            JobState.SCHEDULED,
            JobState.RUNNING,
        )


JOB_STATES_SQL = ", ".join(f"'{s.value}'" for s in JobState)
NOT_STARTED_SQL = "'awaiting_approval', 'queued', 'scheduled', 'cancelled', 'rejected', 'refused'"
PENDING_TARGET_JOB_SQL = (
    "state IN ('awaiting_approval', 'queued', 'scheduled', 'running') "
    "AND kind IN ('upgrade', 'downgrade', 'stamp') AND target_id IS NOT NULL"
)


class ApprovalDecision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


class Job(Base):
    """One requested action; this row, not the queue, is the source of truth."""

    __tablename__ = "job"
    __table_args__ = (
        sa.CheckConstraint(f"state IN ({JOB_STATES_SQL})", name="state"),
        sa.CheckConstraint(
            f"state IN ({NOT_STARTED_SQL}) OR started_at IS NOT NULL", name="started"
        ),
        sa.Index(
            "uq_job_one_pending_per_target",
            "target_id",
            unique=True,
            sqlite_where=sa.text(PENDING_TARGET_JOB_SQL),
            postgresql_where=sa.text(PENDING_TARGET_JOB_SQL),
        ),
        sa.Index("ix_job_state", "state"),
        sa.Index("ix_job_target", "target_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(20))
    project_id: Mapped[int | None] = mapped_column(sa.ForeignKey("project.id", ondelete="SET NULL"))
    target_id: Mapped[int | None] = mapped_column(sa.ForeignKey("target.id", ondelete="SET NULL"))
    project_name: Mapped[str] = mapped_column(sa.String(100))
    """Copied at request time so history survives the project's removal."""
    target_name: Mapped[str | None] = mapped_column(sa.String(100))
    arguments: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[JobState] = mapped_column(enum_column(JobState), default=JobState.QUEUED)
    note: Mapped[str | None] = mapped_column(sa.String(500))
    """Why a queued job has not started (e.g. waiting for another job's lock)."""
    requested_by: Mapped[str] = mapped_column(sa.String(100))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    queued_at: Mapped[datetime | None] = mapped_column()
    """When the job entered the queue: at request, or when its last approval came in."""
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    worker: Mapped[str | None] = mapped_column(sa.String(200))
    from_revisions: Mapped[list[str]] = mapped_column(default=list)
    result_revisions: Mapped[list[str] | None] = mapped_column(sa.JSON)
    failed_step: Mapped[str | None] = mapped_column(sa.String(500))
    error: Mapped[str | None] = mapped_column(sa.Text)
    output: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    """What the action produced: new file, detected operations, step timings."""
    plan_hash: Mapped[str | None] = mapped_column(sa.String(64))
    """SHA-256 of the plan approvers saw (``jobs.plans.plan_hash``); renewed if the target moves."""
    not_before: Mapped[datetime | None] = mapped_column()
    """Asked for at request: the job does not start before this (UTC)."""
    scheduled_for: Mapped[datetime | None] = mapped_column()
    """While ``scheduled``: when it will start (its window's opening, or not_before)."""
    plan: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    """The planned steps, their files' digests and where they start (``ActionPlan.to_json``)."""

    project: Mapped[Project | None] = relationship()
    target: Mapped[Target | None] = relationship()


class JobLogLine(Base):
    """One line of a job's output, in order; the job page streams these."""

    __tablename__ = "job_log_line"
    __table_args__ = (sa.Index("ix_job_log_line_job", "job_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(sa.ForeignKey("job.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    line: Mapped[str] = mapped_column(sa.Text)


class TargetLease(Base):
    """Who may change a target right now: at most one row per target, kept alive by heartbeat."""

    __tablename__ = "target_lease"

    target_id: Mapped[int] = mapped_column(
        sa.ForeignKey("target.id", ondelete="CASCADE"), primary_key=True
    )
    job_id: Mapped[int] = mapped_column(sa.ForeignKey("job.id", ondelete="CASCADE"))
    worker: Mapped[str] = mapped_column(sa.String(200))
    acquired_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)


class Approval(Base):
    """One person's decision on a job awaiting approval."""

    __tablename__ = "approval"
    __table_args__ = (
        sa.CheckConstraint("decision IN ('approved', 'rejected')", name="decision"),
        sa.CheckConstraint("decided_by <> ''", name="decider"),
        sa.UniqueConstraint("job_id", "decided_by", name="uq_approval_job_decider"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(sa.ForeignKey("job.id", ondelete="CASCADE"))
    decision: Mapped[ApprovalDecision] = mapped_column(enum_column(ApprovalDecision))
    decided_by: Mapped[str] = mapped_column(sa.String(100))
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)
    comment: Mapped[str] = mapped_column(sa.Text, default="")
    plan_hash: Mapped[str | None] = mapped_column(sa.String(64))
    """The plan the decider saw, so an approval cannot outlive the plan it approved."""


class AuditEvent(Base):
    """An append-only record of one thing someone did (see ``store/audit.py``)."""

    __tablename__ = "audit_event"
    __table_args__ = (sa.Index("ix_audit_event_at", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(sa.String(100))
    action: Mapped[str] = mapped_column(sa.String(50))
    project: Mapped[str | None] = mapped_column(sa.String(100))
    environment: Mapped[str | None] = mapped_column(sa.String(100))
    target: Mapped[str | None] = mapped_column(sa.String(100))
    job_id: Mapped[int | None] = mapped_column()
    from_revisions: Mapped[list[str] | None] = mapped_column(sa.JSON)
    to_revision: Mapped[str | None] = mapped_column(sa.String(200))
    sql_hash: Mapped[str | None] = mapped_column(sa.String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ip: Mapped[str | None] = mapped_column(sa.String(64))


class ApiToken(Base):
    """A personal API token; only its SHA-256 is stored."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String(100))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    prefix: Mapped[str] = mapped_column(sa.String(12))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()

    user: Mapped[User] = relationship()
