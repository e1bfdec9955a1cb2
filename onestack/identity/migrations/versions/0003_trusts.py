"""trusts (OS-TRUST): the trust and the roles it delegates

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_trust",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("trustor_user_id", sa.String(length=64), nullable=False),
        sa.Column("trustee_user_id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=True),
        sa.Column("impersonation", sa.Boolean(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("remaining_uses", sa.Integer(), nullable=True),
        sa.Column("redelegated_trust_id", sa.String(length=64), nullable=True),
        sa.Column("redelegation_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("identity_trust", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identity_trust_project_id"), ["project_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_identity_trust_redelegated_trust_id"), ["redelegated_trust_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_identity_trust_trustee_user_id"), ["trustee_user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_identity_trust_trustor_user_id"), ["trustor_user_id"], unique=False)

    op.create_table(
        "identity_trust_role",
        sa.Column("trust_id", sa.String(length=64), nullable=False),
        sa.Column("role_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["trust_id"], ["identity_trust.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("trust_id", "role_id"),
    )


def downgrade() -> None:
    op.drop_table("identity_trust_role")
    with op.batch_alter_table("identity_trust", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_trust_trustor_user_id"))
        batch_op.drop_index(batch_op.f("ix_identity_trust_trustee_user_id"))
        batch_op.drop_index(batch_op.f("ix_identity_trust_redelegated_trust_id"))
        batch_op.drop_index(batch_op.f("ix_identity_trust_project_id"))
    op.drop_table("identity_trust")
