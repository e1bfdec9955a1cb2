"""security compliance: user options, last activity day, self-service flag of the
current password, and the password history

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("identity_user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("options", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("last_active_at", sa.Date(), nullable=True))
        batch_op.add_column(
            sa.Column("password_self_service", sa.Boolean(), nullable=False,
                      server_default=sa.false())
        )
    op.create_table(
        "identity_password_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["identity_user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("identity_password_history", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_identity_password_history_user_id"), ["user_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("identity_password_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_password_history_user_id"))
    op.drop_table("identity_password_history")
    with op.batch_alter_table("identity_user", schema=None) as batch_op:
        batch_op.drop_column("password_self_service")
        batch_op.drop_column("last_active_at")
        batch_op.drop_column("options")
