"""Tables of the orchestration service (and only of it).

A stack keeps what it was made from (template, environment, files, user parameters)
as JSON documents, and its previous ones during an update (for rollback). Each resource
row is the engine's record of one resource: its physical id, state, resolved
properties and the data its type keeps between steps. Events are append-only.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from onestack.common.db import make_base

Base = make_base()


class Stack(Base):
    __tablename__ = "orchestration_stack"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255), index=True)
    project_id: Mapped[str] = mapped_column(sa.String(255), index=True)
    user_id: Mapped[str] = mapped_column(sa.String(255))
    username: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    action: Mapped[str] = mapped_column(sa.String(32))
    status: Mapped[str] = mapped_column(sa.String(32))
    status_reason: Mapped[str] = mapped_column(sa.Text, default="")
    template: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    environment: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    files: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    parameters: Mapped[dict] = mapped_column(sa.JSON, default=dict)  # the user's values
    # an update in progress: what the stack was before (rollback goes back to it)
    previous: Mapped[dict | None] = mapped_column(sa.JSON, nullable=True)
    tags: Mapped[list | None] = mapped_column(sa.JSON, nullable=True)
    timeout_mins: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    disable_rollback: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    parent_id: Mapped[str | None] = mapped_column(sa.String(36), nullable=True, index=True)
    parent_resource: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    nested_depth: Mapped[int] = mapped_column(sa.Integer, default=0)
    trust_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    secret: Mapped[str] = mapped_column(sa.String(64), default="")  # keys the signal URLs
    outputs: Mapped[dict] = mapped_column(sa.JSON, default=dict)  # resolved at the end of each action
    # a stop asked of the running action: "rollback" (cancel_update, a delete) or "no_rollback"
    cancel_requested: Mapped[str | None] = mapped_column(sa.String(16), nullable=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime)
    updated_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True, index=True)


class Resource(Base):
    __tablename__ = "orchestration_resource"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    stack_id: Mapped[str] = mapped_column(sa.ForeignKey("orchestration_stack.id", ondelete="CASCADE"),
                                          index=True)
    name: Mapped[str] = mapped_column(sa.String(255))
    type: Mapped[str] = mapped_column(sa.String(255))
    physical_id: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    action: Mapped[str] = mapped_column(sa.String(32), default="INIT")
    status: Mapped[str] = mapped_column(sa.String(32), default="COMPLETE")
    status_reason: Mapped[str] = mapped_column(sa.Text, default="")
    properties: Mapped[dict] = mapped_column(sa.JSON, default=dict)  # resolved
    attributes: Mapped[dict] = mapped_column(sa.JSON, default=dict)  # cache of what was read
    metadata_: Mapped[dict] = mapped_column("metadata", sa.JSON, default=dict)
    data: Mapped[dict] = mapped_column(sa.JSON, default=dict)  # the type's own, between steps
    requires: Mapped[list] = mapped_column(sa.JSON, default=list)
    # a replaced resource lives on (under the same name) until its replacement is made
    replaced_by: Mapped[str | None] = mapped_column(sa.String(36), nullable=True)
    current: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime)
    updated_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)


class Event(Base):
    __tablename__ = "orchestration_event"
    seq: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(sa.String(36), unique=True)
    stack_id: Mapped[str] = mapped_column(sa.ForeignKey("orchestration_stack.id", ondelete="CASCADE"),
                                          index=True)
    resource_name: Mapped[str] = mapped_column(sa.String(255))
    resource_type: Mapped[str] = mapped_column(sa.String(255))
    physical_id: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    action: Mapped[str] = mapped_column(sa.String(32))
    status: Mapped[str] = mapped_column(sa.String(32))
    status_reason: Mapped[str] = mapped_column(sa.Text, default="")
    properties: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime)


class Snapshot(Base):
    __tablename__ = "orchestration_snapshot"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    stack_id: Mapped[str] = mapped_column(sa.ForeignKey("orchestration_stack.id", ondelete="CASCADE"),
                                          index=True)
    project_id: Mapped[str] = mapped_column(sa.String(255))
    name: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    status: Mapped[str] = mapped_column(sa.String(32))
    status_reason: Mapped[str] = mapped_column(sa.Text, default="")
    data: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime)


class SoftwareConfig(Base):
    __tablename__ = "orchestration_software_config"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(sa.String(255), index=True)
    name: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    group: Mapped[str] = mapped_column(sa.String(255), default="Heat::Ungrouped")
    config: Mapped[dict] = mapped_column(sa.JSON, default=dict)  # config, inputs, outputs, options
    created_at: Mapped[datetime] = mapped_column(sa.DateTime)


class SoftwareDeployment(Base):
    __tablename__ = "orchestration_software_deployment"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(sa.String(255), index=True)
    config_id: Mapped[str] = mapped_column(sa.String(36))
    server_id: Mapped[str] = mapped_column(sa.String(255), index=True)
    action: Mapped[str] = mapped_column(sa.String(255), default="INIT")
    status: Mapped[str] = mapped_column(sa.String(255), default="COMPLETE")
    status_reason: Mapped[str] = mapped_column(sa.Text, default="")
    input_values: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    output_values: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime)
    updated_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
