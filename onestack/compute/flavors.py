"""Flavors: the default set made at first start, and lookups shared by the API."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from onestack.common import errors
from onestack.common.timeutils import utcnow
from onestack.compute import models as m

# DevStack's flavors: (flavorid, name, vcpus, ram MiB, disk GiB)
DEFAULTS = [
    ("1", "m1.tiny", 1, 512, 1),
    ("2", "m1.small", 1, 2048, 20),
    ("3", "m1.medium", 2, 4096, 40),
    ("4", "m1.large", 4, 8192, 80),
    ("5", "m1.xlarge", 8, 16384, 160),
    ("42", "m1.nano", 1, 128, 1),
    ("84", "m1.micro", 1, 192, 1),
    ("c1", "cirros256", 1, 256, 1),
    ("d1", "ds512M", 1, 512, 5),
    ("d2", "ds1G", 1, 1024, 10),
    ("d3", "ds2G", 2, 2048, 10),
    ("d4", "ds4G", 4, 4096, 20),
]


def ensure_defaults(s: Session) -> None:
    """Create the default flavors once (an operator's later deletions are respected)."""
    if s.scalar(sa.select(sa.func.count()).select_from(m.Flavor)):
        return
    for flavorid, name, vcpus, ram, disk in DEFAULTS:
        s.add(m.Flavor(flavorid=flavorid, name=name, vcpus=vcpus, memory_mb=ram, root_gb=disk,
                       ephemeral_gb=0, swap=0, rxtx_factor=1.0, is_public=True, disabled=False,
                       description=None, extra_specs={}, created_at=utcnow()))


def snapshot(f: m.Flavor) -> dict:
    """What a server keeps of its flavor (it outlives the flavor's deletion)."""
    return {"id": f.flavorid, "name": f.name, "vcpus": f.vcpus, "memory_mb": f.memory_mb,
            "root_gb": f.root_gb, "ephemeral_gb": f.ephemeral_gb, "swap": f.swap,
            "rxtx_factor": f.rxtx_factor, "is_public": f.is_public, "description": f.description,
            "extra_specs": dict(f.extra_specs or {})}


def usable(s: Session, flavorid: str, ctx) -> m.Flavor:
    """The flavor a caller may boot with, or 400 as Nova answers a bad flavorRef."""
    f = s.scalar(sa.select(m.Flavor).where(m.Flavor.flavorid == str(flavorid)))
    if f is not None and not f.is_public and not ctx.is_admin:
        if s.get(m.FlavorAccess, (f.id, ctx.project_id)) is None:
            f = None
    if f is None or f.disabled:
        raise errors.BadRequest(f"Flavor {flavorid} could not be found.")
    return f
