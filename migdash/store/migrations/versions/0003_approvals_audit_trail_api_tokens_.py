"""approvals, audit trail, API tokens, encrypted target URLs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

"""

from typing import Literal

import sqlalchemy as sa
from alembic import context, op

JOB_STATES = (
    "'awaiting_approval', 'queued', 'running', 'succeeded', 'failed', 'cancelled', "
    "'interrupted', 'rejected'"
)
OLD_JOB_STATES = "'queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted'"
APPEND_ONLY = "audit events are append-only"


revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=50), nullable=False),
        sa.Column("project", sa.String(length=100), nullable=True),
        sa.Column("environment", sa.String(length=100), nullable=True),
        sa.Column("target", sa.String(length=100), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("from_revisions", sa.JSON(), nullable=True),
        sa.Column("to_revision", sa.String(length=200), nullable=True),
        sa.Column("sql_hash", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_event")),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index("ix_audit_event_at", ["at"], unique=False)
    _forbid_audit_changes()

    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name=op.f("fk_api_token_user_id_user"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_token_token_hash")),
    )
    op.create_table(
        "approval",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=20), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("plan_hash", sa.String(length=64), nullable=True),
        sa.CheckConstraint("decided_by <> ''", name=op.f("ck_approval_decider")),
        sa.CheckConstraint(
            "decision IN ('approved', 'rejected')", name=op.f("ck_approval_decision")
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name=op.f("fk_approval_job_id_job"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval")),
        sa.UniqueConstraint("job_id", "decided_by", name="uq_approval_job_decider"),
    )
    with op.batch_alter_table("environment", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("required_approvals", sa.Integer(), server_default="1", nullable=False)
        )

    with op.batch_alter_table("job", schema=None, recreate=_recreate()) as batch_op:
        batch_op.add_column(sa.Column("plan_hash", sa.String(length=64), nullable=True))
        batch_op.drop_constraint(op.f("ck_job_state"), type_="check")
        batch_op.drop_constraint(op.f("ck_job_started"), type_="check")
        batch_op.create_check_constraint(op.f("ck_job_state"), f"state IN ({JOB_STATES})")
        batch_op.create_check_constraint(
            op.f("ck_job_started"),
            "state IN ('awaiting_approval', 'queued', 'cancelled', 'rejected') "
            "OR started_at IS NOT NULL",
        )
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.create_index(
            "uq_job_one_pending_approval",
            ["target_id", "kind"],
            unique=True,
            sqlite_where=sa.text("state = 'awaiting_approval'"),
            postgresql_where=sa.text("state = 'awaiting_approval'"),
        )

    with op.batch_alter_table("target", schema=None) as batch_op:
        batch_op.add_column(sa.Column("url_encrypted", sa.Text(), nullable=True))
    _encrypt_urls()
    with op.batch_alter_table("target", schema=None) as batch_op:
        batch_op.alter_column("url_encrypted", existing_type=sa.Text(), nullable=False)
        batch_op.drop_column("url")


def _recreate() -> Literal["always", "auto"]:
    """SQLite must copy the table to change a CHECK; PostgreSQL alters it in place."""
    return "always" if op.get_bind().dialect.name == "sqlite" else "auto"


def _encrypt_urls() -> None:
    """Encrypt every stored URL with the cipher the caller passed in ``attributes``."""
    if context.is_offline_mode():
        raise RuntimeError("0003 encrypts stored URLs and cannot run in offline (--sql) mode")
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, url FROM target")).all()
    if not rows:
        return
    cipher = context.config.attributes.get("cipher")
    if cipher is None:
        raise RuntimeError("0003 needs the encryption key: run it through `migdash db upgrade`")
    for target_id, url in rows:
        bind.execute(
            sa.text("UPDATE target SET url_encrypted = :token WHERE id = :id"),
            {"token": cipher.encrypt(url), "id": target_id},
        )


def _forbid_audit_changes() -> None:
    """Database triggers so that not even hand-written SQL changes an audit row."""
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_event_no_{verb.lower()} BEFORE {verb} ON audit_event "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
            )
    elif dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION migdash_audit_append_only() RETURNS trigger LANGUAGE plpgsql "
            f"AS $$ BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON "
            "audit_event FOR EACH ROW EXECUTE FUNCTION migdash_audit_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event "
            "FOR EACH STATEMENT EXECUTE FUNCTION migdash_audit_append_only()"
        )


def downgrade() -> None:
    with op.batch_alter_table("target", schema=None) as batch_op:
        batch_op.add_column(sa.Column("url", sa.VARCHAR(length=2000), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, url_encrypted FROM target")).all()
    if rows:
        cipher = context.config.attributes.get("cipher")
        if cipher is None:
            raise RuntimeError("downgrading 0003 needs the encryption key to decrypt URLs")
        for target_id, token in rows:
            bind.execute(
                sa.text("UPDATE target SET url = :url WHERE id = :id"),
                {"url": cipher.decrypt(token), "id": target_id},
            )
    with op.batch_alter_table("target", schema=None) as batch_op:
        batch_op.alter_column("url", existing_type=sa.VARCHAR(length=2000), nullable=False)
        batch_op.drop_column("url_encrypted")

    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_job_one_pending_approval",
            sqlite_where=sa.text("state = 'awaiting_approval'"),
            postgresql_where=sa.text("state = 'awaiting_approval'"),
        )
    with op.batch_alter_table("job", schema=None, recreate=_recreate()) as batch_op:
        batch_op.drop_column("plan_hash")
        batch_op.drop_constraint(op.f("ck_job_state"), type_="check")
        batch_op.drop_constraint(op.f("ck_job_started"), type_="check")
        batch_op.create_check_constraint(op.f("ck_job_state"), f"state IN ({OLD_JOB_STATES})")
        batch_op.create_check_constraint(
            op.f("ck_job_started"), "state IN ('queued', 'cancelled') OR started_at IS NOT NULL"
        )

    with op.batch_alter_table("environment", schema=None) as batch_op:
        batch_op.drop_column("required_approvals")

    op.drop_table("approval")
    op.drop_table("api_token")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_event_at")

    op.drop_table("audit_event")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS migdash_audit_append_only()")
