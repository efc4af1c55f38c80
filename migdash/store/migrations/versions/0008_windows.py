"""rollout windows: environment.windows, job.not_before and scheduled_for, the scheduled state

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27

"""

from typing import Literal

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

OLD_STATES = (
    "'awaiting_approval', 'queued', 'running', 'succeeded', 'failed', 'cancelled', "
    "'interrupted', 'rejected', 'refused'"
)
STATES = (
    "'awaiting_approval', 'queued', 'scheduled', 'running', 'succeeded', 'failed', "
    "'cancelled', 'interrupted', 'rejected', 'refused'"
)
OLD_NOT_STARTED = "'awaiting_approval', 'queued', 'cancelled', 'rejected', 'refused'"
NOT_STARTED = "'awaiting_approval', 'queued', 'scheduled', 'cancelled', 'rejected', 'refused'"
OLD_PENDING = (
    "state IN ('awaiting_approval', 'queued', 'running') "
    "AND kind IN ('upgrade', 'downgrade', 'stamp') AND target_id IS NOT NULL"
)
PENDING = (
    "state IN ('awaiting_approval', 'queued', 'scheduled', 'running') "
    "AND kind IN ('upgrade', 'downgrade', 'stamp') AND target_id IS NOT NULL"
)


def upgrade() -> None:
    with op.batch_alter_table("environment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("windows", sa.Text(), server_default="", nullable=False))
    _rebuild_job(STATES, NOT_STARTED, OLD_PENDING, PENDING, add=True)


def downgrade() -> None:
    op.execute("UPDATE job SET state = 'queued' WHERE state = 'scheduled'")
    _rebuild_job(OLD_STATES, OLD_NOT_STARTED, PENDING, OLD_PENDING, add=False)
    with op.batch_alter_table("environment", schema=None) as batch_op:
        batch_op.drop_column("windows")


def _rebuild_job(
    states: str, not_started: str, old_index: str, new_index: str, *, add: bool
) -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_job_one_pending_per_target",
            sqlite_where=sa.text(old_index),
            postgresql_where=sa.text(old_index),
        )
    with op.batch_alter_table("job", schema=None, recreate=_recreate()) as batch_op:
        if add:
            batch_op.add_column(sa.Column("not_before", sa.DateTime(), nullable=True))
            batch_op.add_column(sa.Column("scheduled_for", sa.DateTime(), nullable=True))
        else:
            batch_op.drop_column("not_before")
            batch_op.drop_column("scheduled_for")
        batch_op.drop_constraint(op.f("ck_job_state"), type_="check")
        batch_op.drop_constraint(op.f("ck_job_started"), type_="check")
        batch_op.create_check_constraint(op.f("ck_job_state"), f"state IN ({states})")
        batch_op.create_check_constraint(
            op.f("ck_job_started"), f"state IN ({not_started}) OR started_at IS NOT NULL"
        )
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.create_index(
            "uq_job_one_pending_per_target",
            ["target_id"],
            unique=True,
            sqlite_where=sa.text(new_index),
            postgresql_where=sa.text(new_index),
        )


def _recreate() -> Literal["always", "auto"]:
    return "always" if op.get_bind().dialect.name == "sqlite" else "auto"
