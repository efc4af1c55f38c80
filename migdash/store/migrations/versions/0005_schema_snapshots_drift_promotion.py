"""schema snapshots, applied revision files, reference schemas, drift checks, promotion rule

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27

"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schema_snapshot",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("taken_at", sa.DateTime(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("revisions", sa.JSON(), nullable=False),
        sa.Column("dialect", sa.String(length=30), nullable=False),
        sa.Column("server_major", sa.Integer(), nullable=True),
        sa.Column("normaliser_version", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("schema", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name=op.f("fk_schema_snapshot_job_id_job"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["target.id"],
            name=op.f("fk_schema_snapshot_target_id_target"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schema_snapshot")),
    )
    op.create_index("ix_schema_snapshot_target_taken", "schema_snapshot", ["target_id", "taken_at"])
    op.create_table(
        "applied_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.String(length=100), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("applied_at", sa.DateTime(), nullable=False),
        sa.Column("path", sa.String(length=1000), nullable=False),
        sa.Column("raw_hash", sa.String(length=64), nullable=False),
        sa.Column("ast_hash", sa.String(length=64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name=op.f("fk_applied_revision_job_id_job"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["target.id"],
            name=op.f("fk_applied_revision_target_id_target"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_applied_revision")),
    )
    op.create_index(
        "ix_applied_revision_target_revision",
        "applied_revision",
        ["target_id", "revision", "applied_at"],
    )
    op.create_table(
        "reference_schema",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("revisions", sa.JSON(), nullable=False),
        sa.Column("dialect", sa.String(length=30), nullable=False),
        sa.Column("server_major", sa.Integer(), nullable=True),
        sa.Column("normaliser_version", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("schema", sa.JSON(), nullable=False),
        sa.Column("built_at", sa.DateTime(), nullable=False),
        sa.Column("build_seconds", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
            name=op.f("fk_reference_schema_project_id_project"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_reference_schema")),
    )
    op.create_table(
        "drift_check",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("checked_at", sa.DateTime(), nullable=False),
        sa.Column("outcome", sa.String(length=30), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.CheckConstraint("kind IN ('models', 'history')", name=op.f("ck_drift_check_kind")),
        sa.CheckConstraint(
            "outcome IN ('none', 'drift', 'stamped_not_applied', 'error', 'not_applicable')",
            name=op.f("ck_drift_check_outcome"),
        ),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["target.id"],
            name=op.f("fk_drift_check_target_id_target"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drift_check")),
    )
    op.create_index(
        "ix_drift_check_target_kind", "drift_check", ["target_id", "kind", "checked_at"]
    )
    with op.batch_alter_table("environment", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("promotion_rule", sa.String(length=10), server_default="warn", nullable=False)
        )
        batch_op.create_check_constraint(
            op.f("ck_environment_promotion_rule"), "promotion_rule IN ('warn', 'refuse')"
        )


def downgrade() -> None:
    with op.batch_alter_table("environment", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_environment_promotion_rule"), type_="check")
        batch_op.drop_column("promotion_rule")
    op.drop_index("ix_drift_check_target_kind", table_name="drift_check")
    op.drop_table("drift_check")
    op.drop_table("reference_schema")
    op.drop_index("ix_applied_revision_target_revision", table_name="applied_revision")
    op.drop_table("applied_revision")
    op.drop_index("ix_schema_snapshot_target_taken", table_name="schema_snapshot")
    op.drop_table("schema_snapshot")
