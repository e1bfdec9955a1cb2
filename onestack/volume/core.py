"""The volume service's logic on the API side: lookups, visibility, state checks,
quotas and the casts to the scheduler and the volume agents.

Handlers call these with a RequestContext; every function raises our own
errors (rendered as Cinder's fault bodies by the API layer). No HTTP call is
made inside a write transaction (SQLite has one writer).
"""

from __future__ import annotations

import logging
import uuid as uuidlib
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from onestack.common import bus, db, errors
from onestack.common.clients import ServiceAuth
from onestack.common.limits import Limits
from onestack.common.timeutils import iso, utcnow
from onestack.volume import models as m
from onestack.volume import settings

log = logging.getLogger(__name__)

# Cinder's statuses
CREATING, AVAILABLE, RESERVED, ATTACHING, DETACHING, IN_USE = (
    "creating", "available", "reserved", "attaching", "detaching", "in-use")
DELETING, ERROR, ERROR_DELETING, EXTENDING, ERROR_EXTENDING = (
    "deleting", "error", "error_deleting", "extending", "error_extending")
UPLOADING, DOWNLOADING, RETYPING, AWAITING_TRANSFER, MAINTENANCE = (
    "uploading", "downloading", "retyping", "awaiting-transfer", "maintenance")
BACKING_UP, RESTORING_BACKUP, ERROR_RESTORING = "backing-up", "restoring-backup", "error_restoring"

VOLUME_STATUSES = {CREATING, AVAILABLE, RESERVED, ATTACHING, DETACHING, IN_USE, DELETING, ERROR, ERROR_DELETING,
                   EXTENDING, ERROR_EXTENDING, UPLOADING, DOWNLOADING, RETYPING, AWAITING_TRANSFER, MAINTENANCE,
                   BACKING_UP, RESTORING_BACKUP, ERROR_RESTORING, "error_backing-up", "error_managing",
                   "managing"}
DELETABLE = {AVAILABLE, ERROR, ERROR_RESTORING, ERROR_EXTENDING, "error_managing"}
SNAPSHOT_STATUSES = {CREATING, AVAILABLE, DELETING, ERROR, ERROR_DELETING, "backing-up", "restoring",
                     "unmanaging"}
BACKUP_STATUSES = {CREATING, AVAILABLE, DELETING, ERROR, "restoring", "error_deleting"}


def new_id() -> str:
    return str(uuidlib.uuid4())


# -------------------------------------------------------------------- lookups


def _not_found(kind: str, ident: str) -> errors.NotFound:
    names = {"volume": "Volume", "snapshot": "Snapshot", "backup": "Backup", "transfer": "Transfer",
             "attachment": "Volume attachment", "type": "Volume type"}
    return errors.NotFound(f"{names.get(kind, kind)} {ident} could not be found.")


def can_see_all(ctx) -> bool:
    return ctx.is_admin


def get_volume(s: Session, ctx, volume_id: str, *, any_project: bool = False) -> m.Volume:
    v = s.get(m.Volume, volume_id)
    if v is None or v.deleted:
        raise _not_found("volume", volume_id)
    if not any_project and not can_see_all(ctx) and v.project_id != ctx.project_id:
        raise _not_found("volume", volume_id)
    return v


def get_snapshot(s: Session, ctx, snapshot_id: str) -> m.Snapshot:
    snap = s.get(m.Snapshot, snapshot_id)
    if snap is None or snap.deleted or (not can_see_all(ctx) and snap.project_id != ctx.project_id):
        raise _not_found("snapshot", snapshot_id)
    return snap


def dependent_backups(s: Session, backup_id: str) -> int:
    """How many live incremental backups are built on this one."""
    return s.scalar(sa.select(sa.func.count()).select_from(m.Backup)
                    .where(m.Backup.parent_id == backup_id, m.Backup.deleted.is_(False))) or 0


def get_backup(s: Session, ctx, backup_id: str) -> m.Backup:
    b = s.get(m.Backup, backup_id)
    if b is None or b.deleted or (not can_see_all(ctx) and b.project_id != ctx.project_id):
        raise _not_found("backup", backup_id)
    return b


def type_visible(s: Session, ctx, t: m.VolumeType) -> bool:
    if t.is_public or can_see_all(ctx):
        return True
    return s.get(m.VolumeTypeAccess, (t.id, ctx.project_id)) is not None


def find_type(s: Session, ctx, ref: str, *, check_access: bool = True) -> m.VolumeType:
    """A volume type by id or name (404 when none, or private and not shared)."""
    t = s.get(m.VolumeType, ref) or s.scalar(sa.select(m.VolumeType).where(m.VolumeType.name == ref))
    if t is None or (check_access and not type_visible(s, ctx, t)):
        raise errors.NotFound(f"Volume type with name or id {ref} could not be found.")
    return t


def default_type(s: Session) -> m.VolumeType | None:
    name = settings.current.default_volume_type
    return s.scalar(sa.select(m.VolumeType).where(m.VolumeType.name == name))


def ensure_default_type(s: Session) -> None:
    """The backend's type (like DevStack's lvmdriver-1), made once at first start."""
    name = settings.current.default_volume_type
    if s.scalar(sa.select(m.VolumeType).where(m.VolumeType.name == name)) is None:
        s.add(m.VolumeType(id=new_id(), name=name, description=f"Volumes on backend {settings.current.backend_name}",
                           is_public=True, extra_specs={"volume_backend_name": settings.current.backend_name},
                           created_at=utcnow()))


def type_names(s: Session) -> dict[str, m.VolumeType]:
    return {t.id: t for t in s.scalars(sa.select(m.VolumeType))}


def attachments_of(s: Session, volume_ids: list[str]) -> dict[str, list[m.Attachment]]:
    out: dict[str, list[m.Attachment]] = {}
    if not volume_ids:
        return out
    rows = s.scalars(sa.select(m.Attachment).where(m.Attachment.volume_id.in_(volume_ids),
                                                  m.Attachment.attach_status != "detached")
                     .order_by(m.Attachment.created_at))
    for a in rows:
        out.setdefault(a.volume_id, []).append(a)
    return out


def service_up(svc: m.Service) -> bool:
    """A volume service is up while its last heartbeat is younger than ``service_down_time``."""
    if svc.last_seen_up is None:
        return False
    return utcnow() - svc.last_seen_up <= timedelta(seconds=settings.current.service_down_time)


def check_backup_service(s: Session) -> None:
    """503 unless a cinder-backup service is up and enabled (as Cinder's backup API asks
    its services table before it accepts a backup or a restore)."""
    svcs = s.scalars(sa.select(m.Service).where(m.Service.binary == "cinder-backup"))
    if not any(service_up(svc) and not svc.disabled for svc in svcs):
        raise errors.ServiceUnavailable("Service cinder-backup could not be found: no backup service is up.")


def zones() -> list[str]:
    return [settings.current.availability_zone]


# -------------------------------------------------------------------- quotas

QUOTA_RESOURCES = ("volumes", "snapshots", "gigabytes", "backups", "backup_gigabytes", "per_volume_gigabytes",
                   "groups")
PER_TYPE = ("volumes", "snapshots", "gigabytes")

# The project-wide limits live in identity's unified limits (service ``block-storage``,
# under the quota names: Cinder has no unified-limit names of its own). The per-volume-type
# ones (``volumes_<type>``...) come and go with the types, so they stay in this service's
# quota tables, as do quota classes other than ``default``.
quota_limits: Limits | None = None


def configure_limits(conf) -> None:
    global quota_limits
    quota_limits = Limits(lambda: ServiceAuth.for_service(conf, "cinder"), "block-storage",
                          {r: r for r in QUOTA_RESOURCES}, settings.current.quotas)


def _local_defaults(s: Session) -> dict[str, int]:
    out = {}
    for t in s.scalars(sa.select(m.VolumeType)):
        for r in PER_TYPE:
            out[f"{r}_{t.name}"] = -1
    for row in s.scalars(sa.select(m.QuotaClass).where(m.QuotaClass.class_name == "default")):
        if row.resource not in QUOTA_RESOURCES:
            out[row.resource] = row.hard_limit
    return out


def default_limits(s: Session) -> dict[str, int]:
    return {**quota_limits.defaults(), **_local_defaults(s)}


def limits(s: Session, project_id: str, held: bool = False) -> dict[str, int]:
    """The project's limits; ``held``: those fetched last (inside a write transaction)."""
    out = {**(quota_limits.held(project_id) if held else quota_limits.limits(project_id)), **_local_defaults(s)}
    for row in s.scalars(sa.select(m.Quota).where(m.Quota.project_id == project_id)):
        if row.resource not in QUOTA_RESOURCES:
            out[row.resource] = row.hard_limit
    return out


def prefetch_limits(project_id: str | None) -> None:
    """Ask identity for the project's limits before a write transaction checks them."""
    if project_id:
        quota_limits.limits(project_id)


def set_limits(project_id: str, values: dict[str, int]) -> None:
    """The project's own limits: project-wide ones in identity, per-type ones here.
    (Identity first, and outside our write transaction: its own writes must not wait on it.)"""
    quota_limits.set(project_id, {k: v for k, v in values.items() if k in QUOTA_RESOURCES})
    with db.transaction() as s:
        for key, n in values.items():
            if key in QUOTA_RESOURCES:
                continue
            row = s.get(m.Quota, (project_id, key))
            if row is None:
                s.add(m.Quota(project_id=project_id, resource=key, hard_limit=n))
            else:
                row.hard_limit = n


def reset_limits(project_id: str) -> None:
    quota_limits.reset(project_id)
    with db.transaction() as s:
        s.execute(sa.delete(m.Quota).where(m.Quota.project_id == project_id))


def adopt_legacy_quotas() -> None:
    """Project-wide limits (and the ``default`` class's) set in this service's quota tables
    before they moved to identity: moved there (once: the rows go)."""
    with db.session() as s:
        rows = list(s.scalars(sa.select(m.Quota).where(m.Quota.resource.in_(QUOTA_RESOURCES))))
        defaults = {r.resource: r.hard_limit for r in s.scalars(sa.select(m.QuotaClass).where(
            m.QuotaClass.class_name == "default", m.QuotaClass.resource.in_(QUOTA_RESOURCES)))}
    if not rows and not defaults:
        return
    projects: dict[str, dict[str, int]] = {}
    for r in rows:
        projects.setdefault(r.project_id, {})[r.resource] = r.hard_limit
    done = quota_limits.adopt(projects, defaults)
    with db.transaction() as s:
        s.execute(sa.delete(m.Quota).where(m.Quota.project_id.in_(done), m.Quota.resource.in_(QUOTA_RESOURCES)))
        s.execute(sa.delete(m.QuotaClass).where(m.QuotaClass.class_name == "default",
                                                m.QuotaClass.resource.in_(QUOTA_RESOURCES)))


def usage(s: Session, project_id: str) -> dict[str, int]:
    vols = s.execute(sa.select(m.Volume.volume_type_id, sa.func.count(), sa.func.coalesce(sa.func.sum(m.Volume.size), 0))
                     .where(m.Volume.project_id == project_id, m.Volume.deleted.is_(False))
                     .group_by(m.Volume.volume_type_id)).all()
    snaps = s.execute(sa.select(m.Snapshot.volume_type_id, sa.func.count(),
                                sa.func.coalesce(sa.func.sum(m.Snapshot.size), 0))
                      .where(m.Snapshot.project_id == project_id, m.Snapshot.deleted.is_(False))
                      .group_by(m.Snapshot.volume_type_id)).all()
    backups = s.execute(sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(m.Backup.size), 0))
                        .where(m.Backup.project_id == project_id, m.Backup.deleted.is_(False))).one()
    types = type_names(s)
    out = {r: 0 for r in QUOTA_RESOURCES}
    for t in types.values():
        for r in PER_TYPE:
            out[f"{r}_{t.name}"] = 0
    for type_id, count, size in vols:
        out["volumes"] += count
        out["gigabytes"] += int(size)
        if type_id in types:
            out[f"volumes_{types[type_id].name}"] += count
            out[f"gigabytes_{types[type_id].name}"] += int(size)
    for type_id, count, size in snaps:
        out["snapshots"] += count
        out["gigabytes"] += int(size)
        if type_id in types:
            out[f"snapshots_{types[type_id].name}"] += count
            out[f"gigabytes_{types[type_id].name}"] += int(size)
    out["backups"], out["backup_gigabytes"] = backups[0], int(backups[1])
    return out


def check_quota(s: Session, project_id: str, type_name: str | None, **deltas: int) -> None:
    """413 (Cinder's overLimit) when adding ``deltas`` would pass a limit."""
    db.serialize(s, f"volume-quota:{project_id}")  # one count-and-create at a time per project
    lim = limits(s, project_id, held=True)
    used = usage(s, project_id)
    if "gigabytes" in deltas and "volumes" in deltas:
        per = lim.get("per_volume_gigabytes", -1)
        if per >= 0 and deltas["gigabytes"] > per:
            raise errors.PayloadTooLarge(
                f"VolumeSizeExceedsLimit: Requested volume size {deltas['gigabytes']}G is larger than maximum "
                f"allowed limit {per}G.")
    checks = dict(deltas)
    if type_name:
        for r, d in deltas.items():
            if r in PER_TYPE:
                checks[f"{r}_{type_name}"] = d
    for r, d in checks.items():
        if d <= 0:
            continue
        limit = lim.get(r, -1)
        if limit >= 0 and used.get(r, 0) + d > limit:
            if r.startswith("gigabytes"):
                raise errors.PayloadTooLarge(
                    f"VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed {r} quota. "
                    f"Requested {d}G, quota is {limit}G and {used.get(r, 0)}G has been consumed.")
            what = r.split("_")[0]
            raise errors.PayloadTooLarge(
                f"{what.rstrip('s').capitalize()}LimitExceeded: Maximum number of {what} allowed ({limit}) "
                f"exceeded for quota '{r}'.")


# -------------------------------------------------------------------- casts


def cast_scheduler(method: str, **kwargs) -> None:
    bus.get().cast_sync("volume.scheduler", method, **kwargs)


def cast_host(host: str | None, method: str, **kwargs) -> None:
    """Cast to the volume agent serving ``host`` (``host@backend#pool``)."""
    if not host:
        raise errors.BadRequest("The volume has no host: it was never scheduled.")
    bus.get().cast_sync(f"volume.{host.split('#')[0]}", method, **kwargs)


def call_host(host: str | None, method: str, timeout: float = 60, **kwargs):
    if not host:
        raise errors.BadRequest("The volume has no host: it was never scheduled.")
    return bus.get().call_sync(f"volume.{host.split('#')[0]}", method, timeout=timeout, **kwargs)


def start_restore(volume_id: str, backup_id: str) -> None:
    """Mark the backup restoring into the volume and cast the restore to the volume's host."""
    with db.transaction() as s:
        b = s.get(m.Backup, backup_id)
        v = s.get(m.Volume, volume_id)
        b.status = "restoring"
        v.status = RESTORING_BACKUP
        if not v.host:
            v.host = f"{settings.current.service_host}#{settings.current.backend_name}"
        host = v.host
    cast_host(host, "restore_backup", backup_id=backup_id, volume_id=volume_id)


# -------------------------------------------------------------------- rows gone


def destroy_volume(volume_id: str) -> None:
    """The volume is gone (its agent deleted the data, or it never had any): the row is
    marked deleted and its attachments go. The API does it for a volume never scheduled,
    the conductor when an agent reports the deletion."""
    with db.transaction() as s:
        v = s.get(m.Volume, volume_id)
        if v is None or v.deleted:
            return
        now = utcnow()
        v.deleted, v.status, v.deleted_at, v.updated_at = True, "deleted", now, now
        s.execute(sa.delete(m.Attachment).where(m.Attachment.volume_id == volume_id))
        payload = notification(s, v)
    notify("delete.end", payload)


# -------------------------------------------------------------------- notifications
# ``volume.create.end`` (available), ``volume.resize.end`` (extended) and ``volume.delete.end``,
# as Cinder notifies them (the payload reduced to what telemetry makes its volume resources of).


def notification(s: Session, v: m.Volume) -> dict:
    vtype = s.get(m.VolumeType, v.volume_type_id) if v.volume_type_id else None
    return {"volume_id": v.id, "project_id": v.project_id, "user_id": v.user_id, "display_name": v.name,
            "size": v.size, "volume_type": vtype.name if vtype is not None else None,
            "status": v.status, "created_at": iso(v.created_at)}


def notify(event: str, payload: dict) -> None:
    """Send ``volume.<event>`` (after the change is committed)."""
    try:
        bus.get().notify(f"volume.{event}", payload, publisher="volume")
    except Exception:  # noqa: BLE001 (the change is made; a lost event must not undo it)
        log.exception("volume.%s of %s was not sent", event, payload["volume_id"])


def destroy_snapshot(snapshot_id: str) -> None:
    with db.transaction() as s:
        snap = s.get(m.Snapshot, snapshot_id)
        if snap is None or snap.deleted:
            return
        now = utcnow()
        snap.deleted, snap.status, snap.deleted_at, snap.updated_at = True, "deleted", now, now


def touch(row) -> None:
    row.updated_at = utcnow()


def invalid_volume(v: m.Volume, wanted: str) -> errors.BadRequest:
    return errors.BadRequest(f"Invalid volume: Volume {v.id} status must be {wanted}, but current status is: "
                             f"{v.status}.")
