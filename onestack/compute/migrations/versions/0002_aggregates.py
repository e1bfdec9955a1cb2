"""host aggregates (their hosts and metadata; availability zones)

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
    op.create_table(
        "compute_aggregate",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("uuid"),
    )
    op.create_table(
        "compute_aggregate_host",
        sa.Column("aggregate_id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(["aggregate_id"], ["compute_aggregate.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("aggregate_id", "host"),
    )
    with op.batch_alter_table("compute_aggregate_host") as batch:
        batch.create_index("ix_compute_aggregate_host_host", ["host"], unique=False)
    op.create_table(
        "compute_aggregate_metadata",
        sa.Column("aggregate_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(["aggregate_id"], ["compute_aggregate.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("aggregate_id", "key"),
    )
    with op.batch_alter_table("compute_aggregate_metadata") as batch:
        batch.create_index("ix_compute_aggregate_metadata_key", ["key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("compute_aggregate_metadata") as batch:
        batch.drop_index("ix_compute_aggregate_metadata_key")
    op.drop_table("compute_aggregate_metadata")
    with op.batch_alter_table("compute_aggregate_host") as batch:
        batch.drop_index("ix_compute_aggregate_host_host")
    op.drop_table("compute_aggregate_host")
    op.drop_table("compute_aggregate")
