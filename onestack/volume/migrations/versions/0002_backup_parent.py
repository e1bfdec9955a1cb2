"""backups know their parent (incremental backups)

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
    with op.batch_alter_table("volume_backup") as batch:
        batch.add_column(sa.Column("parent_id", sa.String(length=36), nullable=True))
        batch.create_index("ix_volume_backup_parent_id", ["parent_id"])


def downgrade() -> None:
    with op.batch_alter_table("volume_backup") as batch:
        batch.drop_index("ix_volume_backup_parent_id")
        batch.drop_column("parent_id")
