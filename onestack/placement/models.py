"""Tables of the placement service (and only of it).

Providers form trees (``parent_provider_id``; every provider knows its tree's
root). Resource classes and traits are rows keyed by a small integer, the
standard ones synced from os-resource-classes and os-traits at every start (a
standard class keeps its index in that list as its id; custom classes start at
10000, as Placement numbers them). A consumer exists while it has allocations.

Concurrency rests on the provider row: every write that changes a provider's
inventory, traits, aggregates or allocations first bumps its ``generation``
with an UPDATE (compare-and-swap where the client sent a generation), which
also locks the row until the transaction ends, so capacity checks made after
it see every committed write and no concurrent one.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from onestack.common.db import make_base

Base = make_base()


class ResourceProvider(Base):
    __tablename__ = "placement_resource_provider"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(sa.String(36), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    generation: Mapped[int] = mapped_column(sa.Integer, default=0)
    parent_provider_id: Mapped[int | None] = mapped_column(
        sa.Integer, sa.ForeignKey("placement_resource_provider.id"), index=True, nullable=True)
    root_provider_id: Mapped[int | None] = mapped_column(sa.Integer, index=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime)


class ResourceClass(Base):
    __tablename__ = "placement_resource_class"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(sa.String(255), unique=True)


class Trait(Base):
    __tablename__ = "placement_trait"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(255), unique=True)


class ProviderTrait(Base):
    __tablename__ = "placement_provider_trait"
    resource_provider_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("placement_resource_provider.id"), primary_key=True)
    trait_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("placement_trait.id"), primary_key=True, index=True)


class ProviderAggregate(Base):
    __tablename__ = "placement_provider_aggregate"
    resource_provider_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("placement_resource_provider.id"), primary_key=True)
    aggregate_uuid: Mapped[str] = mapped_column(sa.String(36), primary_key=True, index=True)


class Inventory(Base):
    __tablename__ = "placement_inventory"
    resource_provider_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("placement_resource_provider.id"), primary_key=True)
    resource_class_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("placement_resource_class.id"), primary_key=True, index=True)
    total: Mapped[int] = mapped_column(sa.Integer)
    reserved: Mapped[int] = mapped_column(sa.Integer)
    min_unit: Mapped[int] = mapped_column(sa.Integer)
    max_unit: Mapped[int] = mapped_column(sa.Integer)
    step_size: Mapped[int] = mapped_column(sa.Integer)
    allocation_ratio: Mapped[float] = mapped_column(sa.Float)


class Consumer(Base):
    __tablename__ = "placement_consumer"
    uuid: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(sa.String(255), index=True)
    user_id: Mapped[str] = mapped_column(sa.String(255), index=True)
    consumer_type: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    generation: Mapped[int] = mapped_column(sa.Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime)


class Allocation(Base):
    __tablename__ = "placement_allocation"
    __table_args__ = (
        sa.UniqueConstraint("resource_provider_id", "consumer_uuid", "resource_class_id",
                            name="uq_placement_allocation"),
        sa.Index("ix_placement_allocation_rc_rp", "resource_class_id", "resource_provider_id", "used"),
    )
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    resource_provider_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("placement_resource_provider.id"))
    consumer_uuid: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("placement_consumer.uuid"), index=True)
    resource_class_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("placement_resource_class.id"))
    used: Mapped[int] = mapped_column(sa.Integer)
