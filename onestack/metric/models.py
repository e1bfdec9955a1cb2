"""Tables of the metric service (and only of it): the index.

The time series themselves live in the storage driver (onestack/metric/storage.py);
these rows say which metrics exist, on which resources, kept by which archive policy.
Type-specific resource attributes are one JSON document per resource; each change of
a resource leaves its former revision in ``metric_resource_history``.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from onestack.common.db import make_base

Base = make_base()


class ArchivePolicy(Base):
    __tablename__ = "metric_archive_policy"
    name: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    back_window: Mapped[int] = mapped_column(sa.Integer, default=0)
    # [{"granularity": seconds (float), "points": int}]
    definition: Mapped[list] = mapped_column(sa.JSON)
    aggregation_methods: Mapped[list] = mapped_column(sa.JSON)


class ArchivePolicyRule(Base):
    __tablename__ = "metric_archive_policy_rule"
    name: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    metric_pattern: Mapped[str] = mapped_column(sa.String(255))
    archive_policy_name: Mapped[str] = mapped_column(sa.ForeignKey("metric_archive_policy.name"))


class ResourceType(Base):
    __tablename__ = "metric_resource_type"
    name: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    attributes: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    state: Mapped[str] = mapped_column(sa.String(32), default="active")


class Resource(Base):
    __tablename__ = "metric_resource"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    type: Mapped[str] = mapped_column(sa.ForeignKey("metric_resource_type.name"), index=True)
    original_resource_id: Mapped[str] = mapped_column(sa.String(255))
    project_id: Mapped[str | None] = mapped_column(sa.String(255), nullable=True, index=True)
    user_id: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    created_by_user_id: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    created_by_project_id: Mapped[str | None] = mapped_column(sa.String(255), nullable=True, index=True)
    started_at: Mapped[datetime] = mapped_column(sa.DateTime)
    ended_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    revision_start: Mapped[datetime] = mapped_column(sa.DateTime)
    attributes: Mapped[dict] = mapped_column(sa.JSON, default=dict)


class ResourceHistory(Base):
    """A former revision of a resource: its whole document as it was."""

    __tablename__ = "metric_resource_history"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    resource_id: Mapped[str] = mapped_column(sa.ForeignKey("metric_resource.id", ondelete="CASCADE"),
                                             index=True)
    revision_start: Mapped[datetime] = mapped_column(sa.DateTime)
    revision_end: Mapped[datetime] = mapped_column(sa.DateTime)
    document: Mapped[dict] = mapped_column(sa.JSON)


class Metric(Base):
    __tablename__ = "metric_metric"
    __table_args__ = (sa.UniqueConstraint("resource_id", "name", name="uniq_metric_resource_name"),)
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    archive_policy_name: Mapped[str] = mapped_column(sa.ForeignKey("metric_archive_policy.name"), index=True)
    name: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    unit: Mapped[str | None] = mapped_column(sa.String(31), nullable=True)
    resource_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("metric_resource.id", ondelete="CASCADE"), nullable=True, index=True)
    created_by_user_id: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    created_by_project_id: Mapped[str | None] = mapped_column(sa.String(255), nullable=True, index=True)
