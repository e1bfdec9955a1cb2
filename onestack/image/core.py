"""Image service state and the rules every API module shares: who sees an
image, lookups that 404, quotas, and the policy enforcer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from onestack.common import bus, db, errors
from onestack.common.limits import Limits
from onestack.common.policy import Enforcer
from onestack.image import models as m
from onestack.image.policies import DEFAULTS
from onestack.image.store import FileStore


@dataclass
class Settings:
    quota_images: int = 100
    quota_bytes: int = -1
    size_cap: int = 1 << 40
    max_properties: int = 128
    max_tags: int = 128
    max_members: int = 128
    list_limit: int = 25
    max_list_limit: int = 1000
    hash_algorithm: str = "sha512"


class State:
    settings = Settings()
    store: FileStore | None = None
    enforcer: Enforcer | None = None
    limits: Limits | None = None  # the quotas, kept in identity's unified limits


def configure(settings: Settings, store_dir: Path, policy_dir: Path | None, limits: Limits | None = None) -> None:
    State.settings = settings
    State.limits = limits
    State.store = FileStore(store_dir)
    State.enforcer = Enforcer("image", DEFAULTS, policy_dir)


def authorize(rule: str, ctx, target: dict | None = None) -> None:
    State.enforcer.authorize(rule, ctx, target or {})


def allowed(rule: str, ctx, target: dict | None = None) -> bool:
    return State.enforcer.allowed(rule, ctx, target or {})


def member_status(s: Session, image_id: str, project_id: str | None) -> str | None:
    if not project_id:
        return None
    row = s.get(m.ImageMember, (image_id, project_id))
    return row.status if row else None


def visible(s: Session, ctx, image: m.Image) -> bool:
    """May the caller see this image at all? (Glance's visibility rules.)"""
    if ctx.is_admin or image.visibility in ("public", "community"):
        return True
    if image.owner is not None and image.owner == ctx.project_id:
        return True
    # shared images are visible to members in any status, as in Glance
    return image.visibility == "shared" and member_status(s, image.id, ctx.project_id) is not None


def check_uuid(image_id: str) -> str:
    try:
        uuid.UUID(image_id)
    except ValueError:
        raise errors.NotFound(f"No image found with ID {image_id}") from None
    return image_id


def get_image(s: Session, ctx, image_id: str, *, lock: bool = False) -> m.Image:
    """The image, if it exists and the caller may see it; else 404 (never 403,
    which would tell that a private image exists)."""
    query = sa.select(m.Image).where(m.Image.id == image_id)
    if lock:
        query = query.with_for_update()
    image = s.scalars(query).first()
    if image is None or not visible(s, ctx, image):
        raise errors.NotFound(f"No image found with ID {image_id}")
    return image


def target(image: m.Image) -> dict:
    return {"owner": image.owner or "", "visibility": image.visibility, "id": image.id}


def require_owner_or_admin(ctx, image: m.Image, rule: str) -> None:
    authorize(rule, ctx, target(image))


def properties(s: Session, image_id: str) -> dict[str, str]:
    rows = s.scalars(sa.select(m.ImageProperty).where(m.ImageProperty.image_id == image_id))
    return {p.name: p.value for p in rows}


def tags(s: Session, image_id: str) -> list[str]:
    rows = s.scalars(sa.select(m.ImageTag.value).where(m.ImageTag.image_id == image_id))
    return sorted(rows)


# --- quotas -----------------------------------------------------------------
# Identity's unified limits of service ``image``, as Glance names them: image_count_total
# (images a project owns) and image_size_total (MiB of image data, staged data included).
# Their registered defaults come from image.quota_images and image.quota_bytes (rounded
# up to whole MiB).

MiB = 1 << 20
LIMIT_NAMES = {"image_count_total": "image_count_total", "image_size_total": "image_size_total"}


def limit_defaults(settings: Settings) -> dict[str, int]:
    size = settings.quota_bytes if settings.quota_bytes < 0 else -(-settings.quota_bytes // MiB)
    return {"image_count_total": settings.quota_images, "image_size_total": size}


def project_limits(owner: str) -> dict[str, int]:
    """The project's image limits (ask before a write transaction: they are then at hand)."""
    return State.limits.limits(owner)


def check_image_count(s: Session, owner: str | None) -> None:
    if owner is None:
        return
    db.serialize(s, f"image-quota:{owner}")  # one count-and-create at a time per project
    limit = State.limits.held(owner)["image_count_total"]
    if limit < 0:
        return
    count = s.scalar(sa.select(sa.func.count()).select_from(m.Image).where(m.Image.owner == owner))
    if count >= limit:
        raise errors.PayloadTooLarge(
            f"Image quota exceeded: project {owner} already has {count} of its {limit} images "
            f"(image_count_total; default image.quota_images)."
        )


def bytes_used(s: Session, owner: str | None, exclude: str | None = None) -> int:
    query = sa.select(
        sa.func.coalesce(sa.func.sum(sa.func.coalesce(m.Image.size, 0) + sa.func.coalesce(m.Image.staged_size, 0)), 0)
    ).where(m.Image.owner == owner)
    if exclude:
        query = query.where(m.Image.id != exclude)
    return int(s.scalar(query) or 0)


def _quota_bytes(owner: str) -> int:
    mib = State.limits.held(owner)["image_size_total"]
    return mib * MiB if mib >= 0 else -1


def bytes_allowed(s: Session, owner: str | None, image_id: str) -> int | None:
    """How many bytes this image's data may have (quota and size cap), None: no limit."""
    limits = [State.settings.size_cap] if State.settings.size_cap >= 0 else []
    quota = _quota_bytes(owner) if owner is not None else -1
    if quota >= 0:
        limits.append(max(0, quota - bytes_used(s, owner, exclude=image_id)))
    return min(limits) if limits else None


def too_large(limit: int, owner: str | None) -> errors.PayloadTooLarge:
    s = State.settings
    quota = _quota_bytes(owner) if owner is not None else -1
    if quota >= 0 and limit < s.size_cap:
        return errors.PayloadTooLarge(
            f"Image storage quota exceeded: project {owner} may store {quota} bytes of image data in all "
            f"(image_size_total; default image.quota_bytes) and has {limit} left."
        )
    return errors.PayloadTooLarge(f"Image data is larger than the largest accepted upload, {s.size_cap} bytes.")


def notify(event: str, body: dict) -> None:
    """``image.<event>`` on the bus (create, update, delete, upload, activate, ...)."""
    bus.get().notify(f"image.{event}", body, publisher="image")
