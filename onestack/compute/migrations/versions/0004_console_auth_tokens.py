"""console auth tokens in the database (any API process's proxy checks them)

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
        "compute_console_auth_token",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("instance_uuid", sa.String(length=36), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("console_type", sa.String(length=32), nullable=False),
        sa.Column("target", sa.JSON(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("compute_console_auth_token", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_compute_console_auth_token_instance_uuid"), ["instance_uuid"])
        batch_op.create_index(batch_op.f("ix_compute_console_auth_token_expires_at"), ["expires_at"])


def downgrade() -> None:
    op.drop_table("compute_console_auth_token")
