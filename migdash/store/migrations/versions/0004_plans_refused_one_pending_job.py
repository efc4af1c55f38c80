"""plans on jobs, the refused state, one pending job per target

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

"""

from typing import Literal

import sqlalchemy as sa
from alembic import op

STATES = (
    "'awaiting_approval', 'queued', 'running', 'succeeded', 'failed', 'cancelled', "
    "'interrupted', 'rejected', 'refused'"
)
OLD_STATES = (
    "'awaiting_approval', 'queued', 'running', 'succeeded', 'failed', 'cancelled', "
    "'interrupted', 'rejected'"
)
PENDING = (
    "state IN ('awaiting_approval', 'queued', 'running') "
    "AND kind IN ('upgrade', 'downgrade', 'stamp') AND target_id IS NOT NULL"
)

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _cancel_extra_pending_jobs()
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_job_one_pending_approval",
            sqlite_where=sa.text("state = 'awaiting_approval'"),
            postgresql_where=sa.text("state = 'awaiting_approval'"),
        )
    with op.batch_alter_table("job", schema=None, recreate=_recreate()) as batch_op:
        batch_op.add_column(sa.Column("plan", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("queued_at", sa.DateTime(), nullable=True))
        batch_op.drop_constraint(op.f("ck_job_state"), type_="check")
        batch_op.drop_constraint(op.f("ck_job_started"), type_="check")
        batch_op.create_check_constraint(op.f("ck_job_state"), f"state IN ({STATES})")
        batch_op.create_check_constraint(
            op.f("ck_job_started"),
            "state IN ('awaiting_approval', 'queued', 'cancelled', 'rejected', 'refused') "
            "OR started_at IS NOT NULL",
        )
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.create_index(
            "uq_job_one_pending_per_target",
            ["target_id"],
            unique=True,
            sqlite_where=sa.text(PENDING),
            postgresql_where=sa.text(PENDING),
        )


def _cancel_extra_pending_jobs() -> None:
    """Before the index: keep the oldest pending target job per target, cancel the others.

    They were requested against a plan the first one will change; running them
    later would act on a stale plan.  Each gets a log line saying why.
    """
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(f"SELECT id, target_id FROM job WHERE {PENDING} ORDER BY target_id, id")  # noqa: S608
    ).all()
    seen: set[int] = set()
    for job_id, target_id in rows:
        if target_id not in seen:
            seen.add(target_id)
            continue
        bind.execute(
            sa.text(
                "UPDATE job SET state = 'cancelled', finished_at = CURRENT_TIMESTAMP "
                "WHERE id = :id AND state IN ('awaiting_approval', 'queued')"
            ),
            {"id": job_id},
        )
        bind.execute(
            sa.text(
                "INSERT INTO job_log_line (job_id, at, line) VALUES (:id, CURRENT_TIMESTAMP, "
                "'cancelled by the 0004 upgrade: another job was already pending for this "
                "target; request it again if it is still wanted')"
            ),
            {"id": job_id},
        )


def _recreate() -> Literal["always", "auto"]:
    return "always" if op.get_bind().dialect.name == "sqlite" else "auto"


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_job_one_pending_per_target",
            sqlite_where=sa.text(PENDING),
            postgresql_where=sa.text(PENDING),
        )
    op.execute("UPDATE job SET state = 'cancelled' WHERE state = 'refused'")
    with op.batch_alter_table("job", schema=None, recreate=_recreate()) as batch_op:
        batch_op.drop_column("plan")
        batch_op.drop_column("queued_at")
        batch_op.drop_constraint(op.f("ck_job_state"), type_="check")
        batch_op.drop_constraint(op.f("ck_job_started"), type_="check")
        batch_op.create_check_constraint(op.f("ck_job_state"), f"state IN ({OLD_STATES})")
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
