"""Tables of the volume service (and only of it).

Volumes, snapshots, attachments, types, transfers, backups, quota overrides
and the volume services' heartbeats. Metadata (user, admin, image) are JSON
documents on their row, so a view reads one row per volume.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from onestack.common.db import make_base

Base = make_base()

_NULL_STR = {"nullable": True}


class VolumeType(Base):
    __tablename__ = "volume_type"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255), unique=True)
    description: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    is_public: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    extra_specs: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    qos_specs_id: Mapped[str | None] = mapped_column(sa.String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime)
    updated_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)


class VolumeTypeAccess(Base):
    __tablename__ = "volume_type_access"
    volume_type_id: Mapped[str] = mapped_column(sa.ForeignKey("volume_type.id", ondelete="CASCADE"),
                                                primary_key=True)
    project_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)


class Volume(Base):
    __tablename__ = "volume_volume"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(sa.String(255), index=True)
    user_id: Mapped[str] = mapped_column(sa.String(255))
    name: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    description: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    size: Mapped[int] = mapped_column(sa.Integer)
    status: Mapped[str] = mapped_column(sa.String(32))
    attach_status: Mapped[str] = mapped_column(sa.String(32), default="detached")
    migration_status: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    availability_zone: Mapped[str] = mapped_column(sa.String(255))
    host: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)  # host@backend#pool
    volume_type_id: Mapped[str | None] = mapped_column(sa.String(36), nullable=True)
    snapshot_id: Mapped[str | None] = mapped_column(sa.String(36), nullable=True)
    source_volid: Mapped[str | None] = mapped_column(sa.String(36), nullable=True)
    image_id: Mapped[str | None] = mapped_column(sa.String(36), nullable=True)
    bootable: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    multiattach: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    metadata_: Mapped[dict] = mapped_column("metadata", sa.JSON, default=dict)
    admin_metadata: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    image_metadata: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    provider_location: Mapped[str | None] = mapped_column(sa.String(1024), nullable=True)
    disk_format: Mapped[str] = mapped_column(sa.String(16), default="raw")
    task: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)  # what the agent is doing
    deleted: Mapped[bool] = mapped_column(sa.Boolean, default=False, index=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime)
    updated_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)


class Attachment(Base):
    __tablename__ = "volume_attachment"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    volume_id: Mapped[str] = mapped_column(sa.ForeignKey("volume_volume.id", ondelete="CASCADE"), index=True)
    instance_uuid: Mapped[str | None] = mapped_column(sa.String(36), nullable=True)
    attached_host: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    mountpoint: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    attach_mode: Mapped[str] = mapped_column(sa.String(8), default="rw")
    attach_status: Mapped[str] = mapped_column(sa.String(32))  # reserved, attaching, attached, detached
    connector: Mapped[dict | None] = mapped_column(sa.JSON, nullable=True)
    connection_info: Mapped[dict | None] = mapped_column(sa.JSON, nullable=True)
    attach_time: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    detach_time: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime)
    updated_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)


class Snapshot(Base):
    __tablename__ = "volume_snapshot"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    volume_id: Mapped[str] = mapped_column(sa.String(36), index=True)
    project_id: Mapped[str] = mapped_column(sa.String(255), index=True)
    user_id: Mapped[str] = mapped_column(sa.String(255))
    name: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    description: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    size: Mapped[int] = mapped_column(sa.Integer)
    status: Mapped[str] = mapped_column(sa.String(32))
    progress: Mapped[str] = mapped_column(sa.String(8), default="0%")
    volume_type_id: Mapped[str | None] = mapped_column(sa.String(36), nullable=True)
    metadata_: Mapped[dict] = mapped_column("metadata", sa.JSON, default=dict)
    provider_location: Mapped[str | None] = mapped_column(sa.String(1024), nullable=True)
    deleted: Mapped[bool] = mapped_column(sa.Boolean, default=False, index=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime)
    updated_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)


class Backup(Base):
    __tablename__ = "volume_backup"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    volume_id: Mapped[str] = mapped_column(sa.String(36), index=True)
    snapshot_id: Mapped[str | None] = mapped_column(sa.String(36), nullable=True)
    project_id: Mapped[str] = mapped_column(sa.String(255), index=True)
    user_id: Mapped[str] = mapped_column(sa.String(255))
    name: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    description: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    size: Mapped[int] = mapped_column(sa.Integer)
    object_count: Mapped[int] = mapped_column(sa.Integer, default=0)
    status: Mapped[str] = mapped_column(sa.String(32))
    fail_reason: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    availability_zone: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    container: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    host: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    incremental: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    parent_id: Mapped[str | None] = mapped_column(sa.String(36), nullable=True, index=True)
    metadata_: Mapped[dict] = mapped_column("metadata", sa.JSON, default=dict)
    deleted: Mapped[bool] = mapped_column(sa.Boolean, default=False, index=True)
    data_timestamp: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime)
    updated_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)


class Transfer(Base):
    __tablename__ = "volume_transfer"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    volume_id: Mapped[str] = mapped_column(sa.String(36), index=True)
    name: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    salt: Mapped[str] = mapped_column(sa.String(64))
    crypt_hash: Mapped[str] = mapped_column(sa.String(255))
    source_project_id: Mapped[str] = mapped_column(sa.String(255))
    destination_project_id: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    no_snapshots: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    accepted: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    deleted: Mapped[bool] = mapped_column(sa.Boolean, default=False, index=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime)
    updated_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)


class Quota(Base):
    """A project's limit for one resource, where it differs from the default."""

    __tablename__ = "volume_quota"
    project_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    resource: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    hard_limit: Mapped[int] = mapped_column(sa.Integer)


class QuotaClass(Base):
    __tablename__ = "volume_quota_class"
    class_name: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    resource: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    hard_limit: Mapped[int] = mapped_column(sa.Integer)


class Service(Base):
    """cinder-scheduler, cinder-volume (host@backend), cinder-backup: heartbeats and capacity."""

    __tablename__ = "volume_service"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(sa.String(36), unique=True)
    host: Mapped[str] = mapped_column(sa.String(255))
    binary: Mapped[str] = mapped_column(sa.String(64))
    zone: Mapped[str] = mapped_column(sa.String(255))
    disabled: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    disabled_reason: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    frozen: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    capabilities: Mapped[dict] = mapped_column(sa.JSON, default=dict)  # capacity reports of volume services
    last_seen_up: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime)
    updated_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    __table_args__ = (sa.UniqueConstraint("host", "binary"),)
