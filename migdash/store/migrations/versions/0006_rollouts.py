"""fleet rollouts: rollout, rollout_member, rollout_approval

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27

"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ROLLOUT_STATES = (
    "'awaiting_approval', 'running', 'paused', 'halted', 'cancelled', 'succeeded', 'failed'"
)
MEMBER_STATES = "'waiting', 'running', 'succeeded', 'failed', 'interrupted', 'cancelled'"


def upgrade() -> None:
    op.create_table(
        "rollout",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("project_name", sa.String(length=100), nullable=False),
        sa.Column("destination", sa.String(length=200), nullable=False),
        sa.Column("environments", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("canary_size", sa.Integer(), nullable=False),
        sa.Column("wave_size", sa.Integer(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("on_failure", sa.String(length=10), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("required_approvals", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("plans", sa.JSON(), nullable=False),
        sa.Column("requested_by", sa.String(length=100), nullable=False),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "on_failure IN ('halt', 'continue')", name=op.f("ck_rollout_on_failure")
        ),
        sa.CheckConstraint(f"state IN ({ROLLOUT_STATES})", name=op.f("ck_rollout_state")),
        sa.CheckConstraint(
            "canary_size >= 0 AND wave_size >= 1 AND concurrency >= 1",
            name=op.f("ck_rollout_sizes"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
            name=op.f("fk_rollout_project_id_project"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollout")),
    )
    op.create_table(
        "rollout_approval",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=10), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.CheckConstraint("decided_by <> ''", name=op.f("ck_rollout_approval_decider")),
        sa.CheckConstraint(
            "decision IN ('approved', 'rejected')", name=op.f("ck_rollout_approval_decision")
        ),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["rollout.id"],
            name=op.f("fk_rollout_approval_rollout_id_rollout"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollout_approval")),
        sa.UniqueConstraint("rollout_id", "decided_by", name="uq_rollout_approval_decider"),
    )
    op.create_table(
        "rollout_member",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rollout_id", sa.Integer(), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=True),
        sa.Column("target_name", sa.String(length=100), nullable=False),
        sa.Column("environment", sa.String(length=100), nullable=False),
        sa.Column("wave", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("plan_hash", sa.String(length=64), nullable=True),
        sa.Column("plan_shape", sa.String(length=64), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("jobs", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint(f"state IN ({MEMBER_STATES})", name=op.f("ck_rollout_member_state")),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name=op.f("fk_rollout_member_job_id_job"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["rollout.id"],
            name=op.f("fk_rollout_member_rollout_id_rollout"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["target.id"],
            name=op.f("fk_rollout_member_target_id_target"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollout_member")),
        sa.UniqueConstraint("rollout_id", "target_id", name="uq_rollout_member_target"),
    )
    op.create_index("ix_rollout_member_wave", "rollout_member", ["rollout_id", "wave", "position"])


def downgrade() -> None:
    op.drop_index("ix_rollout_member_wave", table_name="rollout_member")
    op.drop_table("rollout_member")
    op.drop_table("rollout_approval")
    op.drop_table("rollout")
