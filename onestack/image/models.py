"""Tables of the image service (and only of it)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from onestack.common.db import make_base

Base = make_base()

ID = sa.String(64)


class Image(Base):
    __tablename__ = "image_image"
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    name: Mapped[str | None] = mapped_column(sa.String(255))
    status: Mapped[str] = mapped_column(sa.String(20), index=True)
    visibility: Mapped[str] = mapped_column(sa.String(20), index=True)
    owner: Mapped[str | None] = mapped_column(ID, index=True)
    protected: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    os_hidden: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    disk_format: Mapped[str | None] = mapped_column(sa.String(20))
    container_format: Mapped[str | None] = mapped_column(sa.String(20))
    min_disk: Mapped[int] = mapped_column(sa.Integer, default=0)
    min_ram: Mapped[int] = mapped_column(sa.Integer, default=0)
    size: Mapped[int | None] = mapped_column(sa.BigInteger)
    virtual_size: Mapped[int | None] = mapped_column(sa.BigInteger)
    checksum: Mapped[str | None] = mapped_column(sa.String(32))
    os_hash_algo: Mapped[str | None] = mapped_column(sa.String(64))
    os_hash_value: Mapped[str | None] = mapped_column(sa.String(128))
    # where the data is, in the store's own terms; never shown to clients
    location: Mapped[str | None] = mapped_column(sa.Text)
    # bytes held in staging by glance-direct import, counted against the quota
    staged_size: Mapped[int | None] = mapped_column(sa.BigInteger)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime)


class ImageProperty(Base):
    """An extra property (``hw_*``, ``os_type``, ...): a string value by name."""

    __tablename__ = "image_property"
    image_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("image_image.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    value: Mapped[str] = mapped_column(sa.Text)


class ImageTag(Base):
    __tablename__ = "image_tag"
    image_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("image_image.id", ondelete="CASCADE"), primary_key=True
    )
    value: Mapped[str] = mapped_column(sa.String(255), primary_key=True)


class ImageMember(Base):
    """A project an image is shared with, and what that project said of it."""

    __tablename__ = "image_member"
    image_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("image_image.id", ondelete="CASCADE"), primary_key=True
    )
    member: Mapped[str] = mapped_column(ID, primary_key=True, index=True)
    status: Mapped[str] = mapped_column(sa.String(20), default="pending")
    created_at: Mapped[datetime] = mapped_column(sa.DateTime)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime)
