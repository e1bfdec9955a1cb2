"""unified limits: registered limits and their per-project (or per-domain) overrides

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_registered_limit",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("region_id", sa.String(length=64), nullable=True),
        sa.Column("resource_name", sa.String(length=255), nullable=False),
        sa.Column("default_limit", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("identity_registered_limit", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_identity_registered_limit_service_id"), ["service_id"], unique=False
        )

    op.create_table(
        "identity_limit",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("registered_limit_id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=True),
        sa.Column("domain_id", sa.String(length=64), nullable=True),
        sa.Column("resource_limit", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["registered_limit_id"], ["identity_registered_limit.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("identity_limit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identity_limit_domain_id"), ["domain_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_identity_limit_project_id"), ["project_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_identity_limit_registered_limit_id"), ["registered_limit_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("identity_limit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_limit_registered_limit_id"))
        batch_op.drop_index(batch_op.f("ix_identity_limit_project_id"))
        batch_op.drop_index(batch_op.f("ix_identity_limit_domain_id"))
    op.drop_table("identity_limit")
    with op.batch_alter_table("identity_registered_limit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_registered_limit_service_id"))
    op.drop_table("identity_registered_limit")
