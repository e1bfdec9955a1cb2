"""the dashboard session's region and the catalog's endpoints by region

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
    with op.batch_alter_table("dashboard_session", schema=None) as batch_op:
        batch_op.add_column(sa.Column("region", sa.String(length=255), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("endpoints", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dashboard_session", schema=None) as batch_op:
        batch_op.drop_column("endpoints")
        batch_op.drop_column("region")
