"""Tables of the compute service (and only of it).

Instances keep what Nova keeps in its instance, instance_extra and
instance_info_cache rows; the parts that are documents (flavor snapshot,
network info, block device mappings, metadata, tags) are JSON columns, so
views read one row per server.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from onestack.common.db import make_base

Base = make_base()


class Flavor(Base):
    __tablename__ = "compute_flavor"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    flavorid: Mapped[str] = mapped_column(sa.String(255), unique=True)
    name: Mapped[str] = mapped_column(sa.String(255), unique=True)
    memory_mb: Mapped[int] = mapped_column(sa.Integer)
    vcpus: Mapped[int] = mapped_column(sa.Integer)
    root_gb: Mapped[int] = mapped_column(sa.Integer)
    ephemeral_gb: Mapped[int] = mapped_column(sa.Integer, default=0)
    swap: Mapped[int] = mapped_column(sa.Integer, default=0)
    rxtx_factor: Mapped[float] = mapped_column(sa.Float, default=1.0)
    is_public: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    disabled: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    description: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    extra_specs: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime)
    updated_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)


class FlavorAccess(Base):
    __tablename__ = "compute_flavor_access"
    flavor_id: Mapped[int] = mapped_column(sa.ForeignKey("compute_flavor.id", ondelete="CASCADE"),
                                           primary_key=True)
    project_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)


class KeyPair(Base):
    __tablename__ = "compute_keypair"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(sa.String(255), index=True)
    name: Mapped[str] = mapped_column(sa.String(255))
    type: Mapped[str] = mapped_column(sa.String(16), default="ssh")
    fingerprint: Mapped[str] = mapped_column(sa.String(255))
    public_key: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime)
    __table_args__ = (sa.UniqueConstraint("user_id", "name"),)


class Instance(Base):
    __tablename__ = "compute_instance"
    # the server list's default order (newest first, uuid breaking ties) walks these, one
    # project's or every project's, instead of sorting the table for each page
    __table_args__ = (sa.Index("ix_compute_instance_project_list", "project_id", "deleted", "created_at", "uuid"),
                      sa.Index("ix_compute_instance_list", "deleted", "created_at", "uuid"))
    uuid: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(sa.String(255), index=True)
    user_id: Mapped[str] = mapped_column(sa.String(255))
    name: Mapped[str] = mapped_column(sa.String(255), index=True)
    hostname: Mapped[str] = mapped_column(sa.String(255), default="")
    description: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    image_ref: Mapped[str] = mapped_column(sa.String(255), default="")
    flavor: Mapped[dict] = mapped_column(sa.JSON)  # snapshot of the flavor (+ "old"/"new" while resizing)
    vm_state: Mapped[str] = mapped_column(sa.String(32), index=True)
    task_state: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    power_state: Mapped[int] = mapped_column(sa.Integer, default=0)
    host: Mapped[str | None] = mapped_column(sa.String(255), nullable=True, index=True)
    node: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    availability_zone: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    key_name: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    key_data: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    user_data: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    config_drive: Mapped[str] = mapped_column(sa.String(16), default="")
    metadata_: Mapped[dict] = mapped_column("metadata", sa.JSON, default=dict)
    system_metadata: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    tags: Mapped[list] = mapped_column(sa.JSON, default=list)
    security_groups: Mapped[list] = mapped_column(sa.JSON, default=list)  # names
    requested_networks: Mapped[list | str] = mapped_column(sa.JSON, default=list)
    network_info: Mapped[list] = mapped_column(sa.JSON, default=list)  # the VIFs, as Nova's info cache
    block_device_mapping: Mapped[list] = mapped_column(sa.JSON, default=list)
    locked: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    locked_by: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)  # owner | admin
    locked_reason: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    fault: Mapped[dict | None] = mapped_column(sa.JSON, nullable=True)
    access_ip_v4: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    access_ip_v6: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    reservation_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    launch_index: Mapped[int] = mapped_column(sa.Integer, default=0)
    progress: Mapped[int] = mapped_column(sa.Integer, default=0)
    server_group: Mapped[str | None] = mapped_column(sa.String(36), nullable=True)
    launched_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    terminated_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime, index=True)
    deleted: Mapped[bool] = mapped_column(sa.Boolean, default=False, index=True)
    deleted_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)


class InstanceAction(Base):
    __tablename__ = "compute_instance_action"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    instance_uuid: Mapped[str] = mapped_column(sa.String(36), index=True)
    request_id: Mapped[str] = mapped_column(sa.String(255), index=True)
    action: Mapped[str] = mapped_column(sa.String(255))
    project_id: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    user_id: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    message: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    start_time: Mapped[datetime] = mapped_column(sa.DateTime)
    finish_time: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime)


class InstanceActionEvent(Base):
    __tablename__ = "compute_instance_action_event"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    action_id: Mapped[int] = mapped_column(
        sa.ForeignKey("compute_instance_action.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(sa.String(255))
    result: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    traceback: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    details: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    host: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    start_time: Mapped[datetime] = mapped_column(sa.DateTime)
    finish_time: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)


class Service(Base):
    """A compute agent (or the scheduler/conductor), alive while it heartbeats."""

    __tablename__ = "compute_service"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(sa.String(36), unique=True)
    host: Mapped[str] = mapped_column(sa.String(255))
    binary: Mapped[str] = mapped_column(sa.String(255))
    topic: Mapped[str] = mapped_column(sa.String(255))
    zone: Mapped[str] = mapped_column(sa.String(255), default="nova")
    disabled: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    disabled_reason: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    forced_down: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    last_seen_up: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime)
    updated_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    __table_args__ = (sa.UniqueConstraint("host", "binary"),)


class ComputeNode(Base):
    """A hypervisor: what one compute host offers."""

    __tablename__ = "compute_node"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(sa.String(36), unique=True)
    service_id: Mapped[int] = mapped_column(sa.ForeignKey("compute_service.id", ondelete="CASCADE"), index=True)
    host: Mapped[str] = mapped_column(sa.String(255), index=True)
    hypervisor_hostname: Mapped[str] = mapped_column(sa.String(255), unique=True)
    hypervisor_type: Mapped[str] = mapped_column(sa.String(64))
    hypervisor_version: Mapped[int] = mapped_column(sa.Integer, default=0)
    host_ip: Mapped[str] = mapped_column(sa.String(64), default="127.0.0.1")
    vcpus: Mapped[int] = mapped_column(sa.Integer)
    memory_mb: Mapped[int] = mapped_column(sa.Integer)
    local_gb: Mapped[int] = mapped_column(sa.Integer)
    cpu_info: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime)
    updated_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)


class Quota(Base):
    __tablename__ = "compute_quota"
    project_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    resource: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    hard_limit: Mapped[int] = mapped_column(sa.Integer)


class ServerGroup(Base):
    __tablename__ = "compute_server_group"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(sa.String(36), unique=True)
    name: Mapped[str] = mapped_column(sa.String(255))
    project_id: Mapped[str] = mapped_column(sa.String(255), index=True)
    user_id: Mapped[str] = mapped_column(sa.String(255))
    policy: Mapped[str] = mapped_column(sa.String(64))
    rules: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    members: Mapped[list] = mapped_column(sa.JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime)


class Aggregate(Base):
    """A host aggregate; its "availability_zone" metadata key makes it an AZ (as in Nova)."""

    __tablename__ = "compute_aggregate"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(sa.String(36), unique=True)
    name: Mapped[str] = mapped_column(sa.String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime)
    updated_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)


class AggregateHost(Base):
    __tablename__ = "compute_aggregate_host"
    aggregate_id: Mapped[int] = mapped_column(
        sa.ForeignKey("compute_aggregate.id", ondelete="CASCADE"), primary_key=True)
    host: Mapped[str] = mapped_column(sa.String(255), primary_key=True, index=True)


class AggregateMetadata(Base):
    __tablename__ = "compute_aggregate_metadata"
    aggregate_id: Mapped[int] = mapped_column(
        sa.ForeignKey("compute_aggregate.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(255), primary_key=True, index=True)
    value: Mapped[str] = mapped_column(sa.String(255))


class Migration(Base):
    """A move of a server between hosts (Nova's migrations row): a cold migration, a resize,
    a live migration or an evacuation, with its status as the move goes on. Its uuid is
    also a Placement consumer: it holds the source host's room while a move is unconfirmed."""

    __tablename__ = "compute_migration"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(sa.String(36), unique=True)
    instance_uuid: Mapped[str] = mapped_column(sa.String(36), index=True)
    migration_type: Mapped[str] = mapped_column(sa.String(32))  # migration | resize | live-migration | evacuation
    status: Mapped[str] = mapped_column(sa.String(32), index=True)
    source_compute: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    source_node: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    dest_compute: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    dest_node: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    dest_host: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)  # the destination's address
    old_instance_type_id: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    new_instance_type_id: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    hidden: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    memory_total: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    memory_processed: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    memory_remaining: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    disk_total: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    disk_processed: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    disk_remaining: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    project_id: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    user_id: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, index=True)
    updated_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)


class ConsoleAuthToken(Base):
    """A remote console's token (Nova's console_auth_tokens). Only its SHA-256 is kept;
    the proxy of whichever API process the browser reaches checks it there."""

    __tablename__ = "compute_console_auth_token"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    instance_uuid: Mapped[str] = mapped_column(sa.String(36), index=True)
    host: Mapped[str] = mapped_column(sa.String(255))
    console_type: Mapped[str] = mapped_column(sa.String(32))
    target: Mapped[list] = mapped_column(sa.JSON)  # ["tcp", address, port] | ["pty", path]
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime, index=True)
