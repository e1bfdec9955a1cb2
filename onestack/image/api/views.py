"""Wire format of images and members, as Glance v2 writes them."""

from __future__ import annotations

from sqlalchemy.orm import Session

from onestack.common.timeutils import iso
from onestack.image import core
from onestack.image import models as m


def image(img: m.Image, props: dict[str, str], tags: list[str]) -> dict:
    body = dict(props)  # extra properties sit beside the core ones
    body.update(
        id=img.id,
        name=img.name,
        status=img.status,
        visibility=img.visibility,
        protected=img.protected,
        os_hidden=img.os_hidden,
        checksum=img.checksum,
        os_hash_algo=img.os_hash_algo,
        os_hash_value=img.os_hash_value,
        owner=img.owner,
        size=img.size,
        virtual_size=img.virtual_size,
        min_ram=img.min_ram,
        min_disk=img.min_disk,
        disk_format=img.disk_format,
        container_format=img.container_format,
        tags=tags,
        created_at=iso(img.created_at),
        updated_at=iso(img.updated_at),
        self=f"/v2/images/{img.id}",
        file=f"/v2/images/{img.id}/file",
        schema="/v2/schemas/image",
    )
    return body


def load(s: Session, img: m.Image) -> dict:
    return image(img, core.properties(s, img.id), core.tags(s, img.id))


def member(row: m.ImageMember) -> dict:
    return {
        "image_id": row.image_id,
        "member_id": row.member,
        "status": row.status,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "schema": "/v2/schemas/member",
    }
