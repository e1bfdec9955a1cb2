"""Snapshots: create, list (with filters, pagination), show, update, delete,
metadata, and the admin actions (reset-status, force-delete)."""

from __future__ import annotations

import sqlalchemy as sa

from onestack.common import db, errors
from onestack.common.booleans import parse_bool
from onestack.common.http import Req, empty, json_response
from onestack.common.microversion import Version
from onestack.common.timeutils import utcnow
from onestack.volume import core, policies
from onestack.volume import models as m
from onestack.volume.api import body_of, metadata, mv, route, views
from onestack.volume.api.metadata import check_metadata, optional_metadata
from onestack.volume.api.volumes import (
    apply_sort,
    check_text,
    check_uuid,
    paginate,
    parse_metadata_filter,
    sort_spec,
    visible_query,
)

_SORT = {"id", "name", "status", "size", "created_at", "updated_at", "volume_id", "project_id"}


def list_snapshots(req: Req, detail: bool):
    ctx = req.ctx
    policies.authorize("volume:get_all_snapshots", ctx)
    q = req.query
    with db.session() as s:
        rows = list(s.scalars(visible_query(ctx, req, m.Snapshot)))
    filters = {k: q[k] for k in ("name", "status", "volume_id", "display_name") if q.get(k) is not None}
    meta = parse_metadata_filter(q["metadata"]) if q.get("metadata") else None
    out = []
    for snap in rows:
        ok = all(str(getattr(snap, {"display_name": "name"}.get(k, k)) or "") == want for k, want in filters.items())
        if ok and meta:
            ok = all((snap.metadata_ or {}).get(k) == val for k, val in meta.items())
        if ok:
            out.append(snap)
    out = apply_sort(out, sort_spec(req, _SORT), lambda x, k: getattr(x, k, None))
    total = len(out)
    page, limit = paginate(req, out)
    version = mv(req)
    items = [views.snapshot(snap, version, detail=detail) for snap in page]
    body = {"snapshots": items, **views.collection_links(req, "snapshots", items, limit, False)}
    if version >= Version(3, 45) and q.get("with_count") is not None and parse_bool(q["with_count"], "with_count"):
        body["count"] = total
    return json_response(body)


@route("/snapshots/detail", ["GET"])
def snapshots_detail(req: Req):
    return list_snapshots(req, True)


@route("/snapshots", ["GET"])
def snapshots_index(req: Req):
    return list_snapshots(req, False)


@route("/snapshots", ["POST"])
def snapshot_create(req: Req):
    ctx = req.ctx
    body = body_of(req, "snapshot")
    volume_id = body.get("volume_id")
    if volume_id is None:
        # Cinder looks the volume up first: no volume id is a volume not found
        raise errors.NotFound("Volume None could not be found.")
    check_uuid(volume_id, "volume_id")
    name = check_text(body.get("name", body.get("display_name")), "name")
    description = check_text(body.get("description", body.get("display_description")), "description")
    metadata = check_metadata(optional_metadata(body))
    force = parse_bool(body.get("force", False), "force")
    policies.authorize("volume:create_snapshot", ctx)
    core.prefetch_limits(ctx.project_id)  # (identity is asked before the write transaction)
    with db.transaction() as s:
        v = core.get_volume(s, ctx, volume_id)
        policies.authorize("volume:create_snapshot", ctx, {"project_id": v.project_id})
        in_use_ok = force or mv(req) >= Version(3, 66)
        if v.status != core.AVAILABLE and not (in_use_ok and v.status == core.IN_USE):
            raise core.invalid_volume(v, "available" + (" or in-use" if in_use_ok else ""))
        vt = s.get(m.VolumeType, v.volume_type_id) if v.volume_type_id else None
        core.check_quota(s, v.project_id, vt.name if vt else None, snapshots=1, gigabytes=v.size)
        snap = m.Snapshot(id=core.new_id(), volume_id=v.id, project_id=v.project_id, user_id=ctx.user_id,
                          name=name, description=description, size=v.size, status=core.CREATING, progress="0%",
                          volume_type_id=v.volume_type_id, metadata_=metadata, deleted=False, created_at=utcnow())
        s.add(snap)
        s.flush()
        view = views.snapshot(snap, mv(req), detail=False)
        host = v.host
    core.cast_host(host, "create_snapshot", snapshot_id=snap.id)
    return json_response({"snapshot": view}, 202)


@route("/snapshots/{snapshot_id}", ["GET"])
def snapshot_show(req: Req):
    with db.session() as s:
        snap = core.get_snapshot(s, req.ctx, req.path["snapshot_id"])
        policies.authorize("volume:get_snapshot", req.ctx, {"project_id": snap.project_id})
        return json_response({"snapshot": views.snapshot(snap, mv(req))})


@route("/snapshots/{snapshot_id}", ["PUT"])
def snapshot_update(req: Req):
    body = body_of(req, "snapshot")
    if not set(body) & {"name", "description", "display_name", "display_description"}:
        raise errors.BadRequest("Invalid input received: the snapshot update must name name or description.")
    with db.transaction() as s:
        snap = core.get_snapshot(s, req.ctx, req.path["snapshot_id"])
        policies.authorize("volume:update_snapshot", req.ctx, {"project_id": snap.project_id})
        if "name" in body or "display_name" in body:
            snap.name = check_text(body.get("name", body.get("display_name")), "name")
        if "description" in body or "display_description" in body:
            snap.description = check_text(body.get("description", body.get("display_description")),
                                          "description")
        core.touch(snap)
        return json_response({"snapshot": views.snapshot(snap, mv(req), detail=False)})


def _delete(req: Req, snapshot_id: str, force: bool) -> None:
    with db.transaction() as s:
        snap = core.get_snapshot(s, req.ctx, snapshot_id)
        policies.authorize("volume:delete_snapshot", req.ctx, {"project_id": snap.project_id})
        if not force and snap.status not in (core.AVAILABLE, core.ERROR):
            raise errors.BadRequest(f"Invalid snapshot: Volume Snapshot status must be available or error, but "
                                    f"current status is: {snap.status}.")
        dependents = s.scalar(sa.select(sa.func.count()).select_from(m.Volume).where(
            m.Volume.snapshot_id == snap.id, m.Volume.deleted.is_(False), m.Volume.status == core.CREATING))
        if dependents:
            raise errors.BadRequest("Invalid snapshot: a volume is being created from it.")
        snap.status = core.DELETING
        core.touch(snap)
        v = s.get(m.Volume, snap.volume_id)
        host = v.host if v else None
    if host:
        core.cast_host(host, "delete_snapshot", snapshot_id=snapshot_id)
    else:
        core.destroy_snapshot(snapshot_id)


@route("/snapshots/{snapshot_id}", ["DELETE"])
def snapshot_delete(req: Req):
    _delete(req, req.path["snapshot_id"], force=False)
    return empty(202)


@route("/snapshots/{snapshot_id}/action", ["POST"])
def snapshot_action(req: Req):
    data = req.json()
    if not isinstance(data, dict) or len(data) != 1:
        raise errors.BadRequest("Invalid request body: it must name exactly one action.")
    name, arg = next(iter(data.items()))
    sid = req.path["snapshot_id"]
    if name == "os-force_delete":
        with db.session() as s:
            snap = core.get_snapshot(s, req.ctx, sid)
            policies.authorize("volume_extension:snapshot_admin_actions:force_delete", req.ctx,
                               {"project_id": snap.project_id})
        _delete(req, sid, force=True)
        return empty(202)
    if name in ("os-reset_status", "os-update_snapshot_status"):
        status = (arg or {}).get("status")
        if status not in core.SNAPSHOT_STATUSES:
            raise errors.BadRequest(f"Must specify a valid status: {status} is not one.")
        with db.transaction() as s:
            snap = core.get_snapshot(s, req.ctx, sid)
            policies.authorize("volume_extension:snapshot_admin_actions:reset_status", req.ctx,
                               {"project_id": snap.project_id})
            snap.status = status
            if (arg or {}).get("progress"):
                snap.progress = str(arg["progress"])
            core.touch(snap)
        return empty(202)
    raise errors.BadRequest(f"There is no such action: {name}")


# -------------------------------------------------------------------- metadata

metadata.register("/snapshots/{snapshot_id}", "snapshot_id", core.get_snapshot,
                  {"get": "volume:get_snapshot_metadata", "update": "volume:update_snapshot_metadata",
                   "delete": "volume:delete_snapshot_metadata"})
