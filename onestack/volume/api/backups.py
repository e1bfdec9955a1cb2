"""Backups: create (from a volume or one of its snapshots), list, show, update,
delete, restore (to a new or an existing volume), admin reset-status and
force-delete. The data goes to the backup store (a directory by default)."""

from __future__ import annotations

import sqlalchemy as sa

from onestack.common import db, errors
from onestack.common.booleans import parse_bool
from onestack.common.http import Req, empty, json_response
from onestack.common.microversion import Version
from onestack.common.timeutils import utcnow
from onestack.volume import core, policies
from onestack.volume import models as m
from onestack.volume.api import body_of, mv, route, views
from onestack.volume.api.metadata import check_metadata, optional_metadata
from onestack.volume.api.volumes import (
    apply_sort,
    check_text,
    check_uuid,
    paginate,
    sort_spec,
    visible_query,
)


def _list(req: Req, detail: bool):
    policies.authorize("backup:get_all", req.ctx)
    with db.session() as s:
        rows = list(s.scalars(visible_query(req.ctx, req, m.Backup)))
        for key in ("name", "status", "volume_id"):
            if req.query.get(key) is not None:
                rows = [b for b in rows if str(getattr(b, key) or "") == req.query[key]]
        rows = apply_sort(rows, sort_spec(req, {"id", "name", "status", "size", "created_at", "updated_at",
                                                "volume_id"}), lambda x, k: getattr(x, k, None))
        page, limit = paginate(req, rows)
        parents = set(s.scalars(sa.select(m.Backup.parent_id).where(  # one query for the whole page
            m.Backup.parent_id.in_([b.id for b in page]), m.Backup.deleted.is_(False)))) if detail else set()
        items = [views.backup(req, b, mv(req), detail, has_dependents=b.id in parents) for b in page]
    return json_response({"backups": items, **views.collection_links(req, "backups", items, limit, False)})


@route("/backups/detail", ["GET"])
def backups_detail(req: Req):
    return _list(req, True)


@route("/backups", ["GET"])
def backups_index(req: Req):
    return _list(req, False)


@route("/backups", ["POST"])
def backup_create(req: Req):
    ctx = req.ctx
    body = body_of(req, "backup")
    volume_id = body.get("volume_id")
    if not volume_id:
        raise errors.BadRequest("Invalid input for field/attribute backup: 'volume_id' is a required property.")
    check_uuid(volume_id, "volume_id")
    name = check_text(body.get("name"), "name")
    description = check_text(body.get("description"), "description")
    container = check_text(body.get("container"), "container")
    force = parse_bool(body.get("force", False), "force")
    incremental = parse_bool(body.get("incremental", False), "incremental")
    metadata = check_metadata(optional_metadata(body)) if mv(req) >= Version(3, 43) else {}
    snapshot_id = body.get("snapshot_id")
    with db.transaction() as s:
        core.check_backup_service(s)
        v = core.get_volume(s, ctx, volume_id)
        policies.authorize("backup:create", ctx, {"project_id": v.project_id})
        if v.status != core.AVAILABLE and not (force and v.status == core.IN_USE):
            raise core.invalid_volume(v, "available or in-use (with force)")
        if snapshot_id:
            snap = core.get_snapshot(s, ctx, snapshot_id)
            if snap.volume_id != v.id or snap.status != core.AVAILABLE:
                raise errors.BadRequest("Invalid snapshot: it must be an available snapshot of the volume.")
        core.check_quota(s, v.project_id, None, backups=1, backup_gigabytes=v.size)
        parent_id = None
        if incremental:
            # as Cinder: the parent is the volume's newest available backup
            parent = s.scalars(sa.select(m.Backup).where(
                m.Backup.volume_id == v.id, m.Backup.deleted.is_(False), m.Backup.status == core.AVAILABLE)
                .order_by(m.Backup.data_timestamp.desc(), m.Backup.created_at.desc())).first()
            if parent is None:
                raise errors.BadRequest("Invalid backup: No backups available to do an incremental backup.")
            parent_id = parent.id
        b = m.Backup(id=core.new_id(), volume_id=v.id, snapshot_id=snapshot_id, project_id=v.project_id,
                     user_id=ctx.user_id, name=name, description=description, size=v.size, status=core.CREATING,
                     availability_zone=v.availability_zone, container=container, incremental=incremental,
                     parent_id=parent_id, metadata_=metadata, deleted=False, created_at=utcnow(), host=core.settings.current.host)
        s.add(b)
        before = v.status
        v.status = core.BACKING_UP
        core.touch(v)
        s.flush()
        host = v.host
        view = views.backup(req, b, mv(req), detail=False)
    core.cast_host(host, "create_backup", backup_id=b.id, status_after=before)
    return json_response({"backup": view}, 202)


@route("/backups/{backup_id}", ["GET"])
def backup_show(req: Req):
    with db.session() as s:
        b = core.get_backup(s, req.ctx, req.path["backup_id"])
        policies.authorize("backup:get", req.ctx, {"project_id": b.project_id})
        return json_response({"backup": views.backup(req, b, mv(req))})


@route("/backups/{backup_id}", ["PUT"])
def backup_update(req: Req):
    body = body_of(req, "backup")
    with db.transaction() as s:
        b = core.get_backup(s, req.ctx, req.path["backup_id"])
        policies.authorize("backup:update", req.ctx, {"project_id": b.project_id})
        if "name" in body:
            b.name = check_text(body["name"], "name")
        if "description" in body:
            b.description = check_text(body["description"], "description")
        if "metadata" in body and mv(req) >= Version(3, 43):
            b.metadata_ = check_metadata(body["metadata"])
        b.updated_at = utcnow()
        s.flush()
        return json_response({"backup": views.backup(req, b, mv(req))})


def _delete(req: Req, force: bool) -> None:
    with db.transaction() as s:
        b = core.get_backup(s, req.ctx, req.path["backup_id"])
        policies.authorize("backup:delete", req.ctx, {"project_id": b.project_id})
        if not force and b.status not in (core.AVAILABLE, core.ERROR):
            raise errors.BadRequest(f"Invalid backup: Backup status must be available or error, not {b.status}.")
        if core.dependent_backups(s, b.id):
            raise errors.BadRequest("Invalid backup: Incremental backups exist for this backup.")
        b.status = core.DELETING
        b.updated_at = utcnow()
    core.cast_host(core.settings.current.service_host, "delete_backup", backup_id=req.path["backup_id"])


@route("/backups/{backup_id}", ["DELETE"])
def backup_delete(req: Req):
    _delete(req, False)
    return empty(202)


@route("/backups/{backup_id}/restore", ["POST"])
def backup_restore(req: Req):
    ctx = req.ctx
    body = body_of(req, "restore")
    volume_id = body.get("volume_id")
    with db.transaction() as s:
        b = core.get_backup(s, ctx, req.path["backup_id"])
        policies.authorize("backup:restore", ctx, {"project_id": b.project_id})
        if b.status != core.AVAILABLE:
            raise errors.BadRequest(f"Invalid backup: Backup status must be available, not {b.status}.")
        if volume_id:
            v = core.get_volume(s, ctx, volume_id)
            if v.status != core.AVAILABLE:
                raise core.invalid_volume(v, "available")
            if v.size < b.size:
                raise errors.BadRequest(f"Invalid volume: volume size {v.size}GB is smaller than the backup "
                                        f"({b.size}GB).")
        else:
            vt = core.default_type(s)
            core.check_quota(s, ctx.project_id, vt.name if vt else None, volumes=1, gigabytes=b.size)
            v = m.Volume(id=core.new_id(), project_id=ctx.project_id, user_id=ctx.user_id,
                         name=body.get("name") or f"restore_backup_{b.id}", description=None, size=b.size,
                         status=core.RESTORING_BACKUP, attach_status="detached",
                         availability_zone=core.zones()[0], volume_type_id=vt.id if vt else None,
                         bootable=False, multiattach=False, metadata_={}, admin_metadata={}, image_metadata={},
                         created_at=utcnow(), deleted=False)
            s.add(v)
        s.flush()
        out = {"backup_id": b.id, "volume_id": v.id, "volume_name": v.name}
    core.start_restore(out["volume_id"], out["backup_id"])
    return json_response({"restore": out}, 202)


@route("/backups/{backup_id}/action", ["POST"])
def backup_action(req: Req):
    data = req.json()
    if not isinstance(data, dict) or len(data) != 1:
        raise errors.BadRequest("Invalid request body: it must name exactly one action.")
    name, arg = next(iter(data.items()))
    if name == "os-force_delete":
        policies.authorize("volume_extension:backup_admin_actions:force_delete", req.ctx)
        _delete(req, True)
        return empty(202)
    if name == "os-reset_status":
        policies.authorize("volume_extension:backup_admin_actions:reset_status", req.ctx)
        status = (arg or {}).get("status")
        if status not in core.BACKUP_STATUSES:
            raise errors.BadRequest(f"Must specify a valid status: {status} is not one.")
        with db.transaction() as s:
            b = core.get_backup(s, req.ctx, req.path["backup_id"])
            b.status, b.updated_at = status, utcnow()
        return empty(202)
    raise errors.BadRequest(f"There is no such action: {name}")

