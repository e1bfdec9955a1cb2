"""indexes for the server list's default order

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_compute_instance_project_list", "compute_instance",
                    ["project_id", "deleted", "created_at", "uuid"])
    op.create_index("ix_compute_instance_list", "compute_instance", ["deleted", "created_at", "uuid"])


def downgrade() -> None:
    op.drop_index("ix_compute_instance_list", table_name="compute_instance")
    op.drop_index("ix_compute_instance_project_list", table_name="compute_instance")
