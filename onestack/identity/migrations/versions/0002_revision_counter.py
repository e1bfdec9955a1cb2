"""identity revision counter (caches of every API process key on it); revocation
events of deleted application credentials

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "identity_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(table, [{"id": 1, "value": 0}])
    with op.batch_alter_table("identity_revocation_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("app_cred_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("identity_revocation_event", schema=None) as batch_op:
        batch_op.drop_column("app_cred_id")
    op.drop_table("identity_revision")
