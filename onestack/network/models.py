"""Tables of the network service (and only of it).

Every Neutron resource (network, subnet, port, router, ...) is one row of
``network_resource``: its kind, owner and the resource's attributes as a JSON
document, so new attributes and extensions need no schema change. What must be
unique under concurrency is a table of its own with a primary key that says so:
IP allocations (one address per network), MAC addresses and quotas.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from onestack.common.db import make_base

Base = make_base()


class Resource(Base):
    __tablename__ = "network_resource"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(32), index=True)
    project_id: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    data: Mapped[dict] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, index=True)


class IpAllocation(Base):
    """An address in use on a network: the primary key makes a double allocation fail."""

    __tablename__ = "network_ip_allocation"
    network_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    ip_address: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    subnet_id: Mapped[str] = mapped_column(sa.String(36), index=True)
    port_id: Mapped[str] = mapped_column(sa.String(36), index=True)


class MacAddress(Base):
    __tablename__ = "network_mac_address"
    network_id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    mac_address: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    port_id: Mapped[str] = mapped_column(sa.String(36), index=True)


class Quota(Base):
    __tablename__ = "network_quota"
    project_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    resource: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    hard_limit: Mapped[int] = mapped_column(sa.Integer)
