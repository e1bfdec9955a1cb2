"""Volumes: create (empty, from an image, a snapshot or another volume), list with
filters and pagination, show, update, delete (cascade), metadata, summary."""

from __future__ import annotations

import ast
import json
import uuid

import sqlalchemy as sa

from onestack.common import booleans, db, errors, pagination, validation
from onestack.common.booleans import parse_bool
from onestack.common.http import Req, empty, json_response
from onestack.common.microversion import Version
from onestack.common.timeutils import utcnow
from onestack.volume import clients, core, policies
from onestack.volume import models as m
from onestack.volume.api import metadata, mv, route, schemas, views

MAX_LIMIT = 1000


def check_text(value, field: str, nullable: bool = True) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise errors.BadRequest(f"Invalid input for field/attribute {field}: it must be a string.")
    if len(value) > 255:
        raise errors.BadRequest(f"Invalid input for field/attribute {field}: it is longer than 255 characters.")
    return value


def parse_size(value, required: bool = True) -> int | None:
    if value is None:
        if required:
            raise errors.BadRequest("Invalid input for field/attribute size: 'size' is a required property.")
        return None
    if isinstance(value, bool):
        raise errors.BadRequest(f"Invalid input for field/attribute size. Value: {value}. it is not an integer.")
    try:
        size = int(value)
        if isinstance(value, float) and size != value:
            raise ValueError
    except (TypeError, ValueError):
        raise errors.BadRequest(f"Invalid input for field/attribute size. Value: {value}. "
                                f"'{value}' is not an integer.") from None
    if size < 1:
        raise errors.BadRequest(f"Invalid input for field/attribute size. Value: {size}. {size} is less than "
                                f"the minimum of 1.")
    if size > 2**31 - 1:
        raise errors.BadRequest(f"Invalid input for field/attribute size. Value: {size}. it is too large.")
    return size


def check_uuid(value, field: str) -> str:
    try:
        uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        raise errors.BadRequest(f"Invalid input for field/attribute {field}. Value: {value}. "
                                f"'{value}' is not a 'uuid'.") from None
    return str(value)


# -------------------------------------------------------------------- listing

_SORT_KEYS = {"id", "name", "status", "size", "created_at", "updated_at", "availability_zone", "bootable",
              "display_name", "project_id", "user_id", "volume_type"}


def sort_spec(req: Req, allowed: set[str]) -> list[tuple[str, bool]]:
    """``sort=k1:asc,k2`` or ``sort_key``/``sort_dir``: [(key, descending)]; default created_at desc."""
    q = req.query
    out: list[tuple[str, bool]] = []
    if q.get("sort"):
        if q.get("sort_key") or q.get("sort_dir"):
            raise errors.BadRequest("The 'sort_key' and 'sort_dir' parameters are deprecated and cannot be used "
                                    "with the 'sort' parameter.")
        for part in q["sort"].split(","):
            key, _, direction = part.strip().partition(":")
            out.append((key, (direction or "desc").lower()))
    elif q.get("sort_key") or q.get("sort_dir"):
        out.append((q.get("sort_key") or "created_at", (q.get("sort_dir") or "desc").lower()))
    result = []
    for key, direction in out:
        key = {"display_name": "name"}.get(key, key)
        if key not in allowed:
            raise errors.BadRequest(f"Invalid sort key {key}.")
        if direction not in ("asc", "desc"):
            raise errors.BadRequest(f"Invalid sort direction {direction}: it must be asc or desc.")
        result.append((key, direction == "desc"))
    return result or [("created_at", True)]


def apply_sort(items: list, spec: list[tuple[str, bool]], getter) -> list:
    items = list(items)
    items.sort(key=lambda x: (getter(x, "created_at") is None, str(getter(x, "id"))))
    for key, desc in reversed(spec + [("id", spec[0][1])]):
        items.sort(key=lambda x, k=key: (getter(x, k) is None, getter(x, k) if getter(x, k) is not None else ""),
                   reverse=desc)
    return items


def marker_not_found(marker: str) -> errors.NotFound:
    return errors.NotFound(f"Marker {marker} could not be found.")


def paginate(req: Req, items: list, key=lambda x: x.id) -> tuple[list, int | None]:
    """A page of ``items`` (``offset``, ``marker``, ``limit``; at most MAX_LIMIT) and the limit
    its ``next`` link is for (None: the page is all there is)."""
    limit = pagination.parse_limit(req.query.get("limit"))
    items = items[pagination.parse_offset(req.query.get("offset")):]
    cap = min(limit, MAX_LIMIT) if limit is not None else MAX_LIMIT
    page, more = pagination.page(items, cap, req.query.get("marker"), key, missing=marker_not_found)
    return page, cap if (limit is not None or more) else None


def parse_metadata_filter(raw: str) -> dict:
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(raw)
        except (ValueError, SyntaxError):
            continue
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
    raise errors.BadRequest(f"Invalid metadata filter {raw!r}: it must be a dictionary.")


def visible_query(ctx, req: Req, model):
    q = sa.select(model).where(model.deleted.is_(False))
    all_tenants = req.query.get("all_tenants")
    if ctx.is_admin and all_tenants is not None and parse_bool(all_tenants, "all_tenants"):
        if req.query.get("project_id"):
            q = q.where(model.project_id == req.query["project_id"])
    elif ctx.is_admin and req.query.get("project_id"):
        q = q.where(model.project_id == req.query["project_id"])
    else:
        q = q.where(model.project_id == ctx.project_id)
    return q


def _volume_value(v: m.Volume, key: str, types: dict):
    if key == "volume_type":
        vt = types.get(v.volume_type_id)
        return vt.name if vt else None
    if key == "bootable":
        return v.bootable
    return getattr(v, key, None)


def list_volumes(req: Req, detail: bool):
    ctx = req.ctx
    policies.authorize("volume:get_all", ctx)
    q = req.query
    if q.get("all_tenants") is not None and not ctx.is_admin:
        pass  # Cinder ignores all_tenants for non-admins
    with db.session() as s:
        types = core.type_names(s)
        rows = list(s.scalars(visible_query(ctx, req, m.Volume)))
        filters = {}
        for key in ("name", "display_name", "status", "availability_zone", "bootable", "volume_type", "size",
                    "user_id", "snapshot_id", "source_volid", "image_id", "multiattach", "group_id",
                    "consumes_quota"):
            if q.get(key) is not None:
                filters[{"display_name": "name"}.get(key, key)] = q[key]
        meta = parse_metadata_filter(q["metadata"]) if q.get("metadata") else None
        image_meta = parse_metadata_filter(q["glance_metadata"]) if q.get("glance_metadata") else None
        out = []
        for v in rows:
            ok = True
            for key, want in filters.items():
                if key == "bootable":
                    ok = v.bootable == parse_bool(want, "bootable")
                elif key == "multiattach":
                    ok = v.multiattach == parse_bool(want, "multiattach")
                elif key == "consumes_quota":
                    ok = parse_bool(want, "consumes_quota")
                elif key == "volume_type":
                    vt = types.get(v.volume_type_id)
                    ok = vt is not None and want in (vt.name, vt.id)
                elif key == "size":
                    ok = str(v.size) == str(want)
                elif key == "group_id":
                    ok = False
                else:
                    ok = str(getattr(v, key)) == want if getattr(v, key) is not None else False
                if not ok:
                    break
            if ok and meta:
                ok = all((v.metadata_ or {}).get(k) == val for k, val in meta.items())
            if ok and image_meta:
                ok = all((v.image_metadata or {}).get(k) == val for k, val in image_meta.items())
            if ok:
                out.append(v)
        out = apply_sort(out, sort_spec(req, _SORT_KEYS), lambda v, k: _volume_value(v, k, types))
        total = len(out)
        page, limit = paginate(req, out)
        atts = core.attachments_of(s, [v.id for v in page]) if detail else {}
        version = mv(req)
        if detail:
            items = [views.volume(req, v, version, types=types, attachments=atts.get(v.id, []),
                                  admin=ctx.is_admin) for v in page]
        else:
            items = [views.volume_brief(req, v) for v in page]
    body = {"volumes": items, **views.collection_links(req, "volumes", items, limit, False)}
    if version >= Version(3, 45) and q.get("with_count") is not None and parse_bool(q["with_count"], "with_count"):
        body["count"] = total
    return json_response(body)


@route("/volumes/detail", ["GET"])
def volumes_detail(req: Req):
    return list_volumes(req, True)


@route("/volumes/summary", ["GET"])
def volumes_summary(req: Req):
    ctx = req.ctx
    policies.authorize("volume:get_all", ctx)
    with db.session() as s:
        rows = list(s.scalars(visible_query(ctx, req, m.Volume)))
    body = {"total_size": sum(v.size for v in rows), "total_count": len(rows)}
    if mv(req) >= Version(3, 36):
        meta: dict[str, list] = {}
        for v in rows:
            for k, val in (v.metadata_ or {}).items():
                meta.setdefault(k, [])
                if val not in meta[k]:
                    meta[k].append(val)
        body["metadata"] = meta
    return json_response({"volume-summary": body})


@route("/volumes", ["GET"])
def volumes_index(req: Req):
    return list_volumes(req, False)


# -------------------------------------------------------------------- create


def _image(ctx, image_ref: str) -> dict:
    images = clients.images()
    if images is None:
        raise errors.BadRequest("There is no image service to create a volume from.")
    try:
        return images.get(f"/v2/images/{image_ref}", token=ctx.auth_token)
    except errors.NotFound:
        raise errors.BadRequest(f"Invalid image identifier or unable to access requested image "
                                f"{image_ref}.") from None


@route("/volumes", ["POST"])
def volume_create(req: Req):
    ctx = req.ctx
    body = validation.validate(validation.variant(schemas.CREATE, mv(req)), req.json(),
                               style=validation.NOVA)["volume"]
    policies.authorize("volume:create", ctx)
    name = body.get("name", body.get("display_name"))
    description = body.get("description", body.get("display_description"))
    metadata = body.get("metadata") or {}
    snapshot_id = body.get("snapshot_id")
    source_volid = body.get("source_volid")
    image_ref = body.get("imageRef") or body.get("image_id")
    backup_id = body.get("backup_id")
    sources = [x for x in (snapshot_id, source_volid, image_ref, backup_id) if x]
    if len(sources) > 1:
        raise errors.BadRequest("Invalid input received: only one of snapshot_id, source_volid, imageRef and "
                                "backup_id may be given.")
    if body.get("size") is None and not (snapshot_id or source_volid or backup_id):
        raise errors.BadRequest("Invalid input for field/attribute size: 'size' is a required property.")
    size = int(body["size"]) if body.get("size") is not None else None
    multiattach = booleans.to_bool(body.get("multiattach") or False)
    zone = body.get("availability_zone")
    if zone is not None and zone not in core.zones():
        raise errors.BadRequest(f"Invalid input received: Availability zone '{zone}' is invalid.")
    image = _image(ctx, image_ref) if image_ref else None  # (HTTP before the write transaction)
    if image is not None:
        if image.get("status") != "active":
            raise errors.BadRequest(f"Invalid input received: Image {image_ref} is not active.")
        gib = 1024**3
        need = max(-(-(image.get("virtual_size") or image.get("size") or 0) // gib), image.get("min_disk") or 0)
        if size is not None and size < need:
            raise errors.BadRequest(f"Invalid input received: Size of specified image {need}GB is larger than "
                                    f"volume size {size}GB.")
        policies.authorize("volume:create_from_image", ctx)
    now = utcnow()
    core.prefetch_limits(ctx.project_id)  # (identity is asked before the write transaction)
    with db.transaction() as s:
        vt = None
        ref = body.get("volume_type")
        if ref:
            vt = core.find_type(s, ctx, ref)
        src_zone = None
        if snapshot_id:
            snap = s.get(m.Snapshot, snapshot_id)
            if snap is None or snap.deleted or (not ctx.is_admin and snap.project_id != ctx.project_id):
                raise errors.NotFound(f"Snapshot {snapshot_id} could not be found.")
            if snap.status != core.AVAILABLE:
                raise errors.BadRequest(f"Invalid snapshot: Originating snapshot status must be one of "
                                        f"'available' values (it is {snap.status}).")
            size = size or snap.size
            if size < snap.size:
                raise errors.BadRequest(f"Invalid input received: Volume size '{size}'GB cannot be smaller than "
                                        f"the snapshot size {snap.size}GB. They must be >= original snapshot "
                                        f"size.")
            src_vol = s.get(m.Volume, snap.volume_id)
            if vt is None and src_vol is not None:
                vt = s.get(m.VolumeType, src_vol.volume_type_id) if src_vol.volume_type_id else None
            src_zone = src_vol.availability_zone if src_vol else None
        if source_volid:
            src = s.get(m.Volume, source_volid)
            if src is None or src.deleted or (not ctx.is_admin and src.project_id != ctx.project_id):
                raise errors.NotFound(f"Volume {source_volid} could not be found.")
            if src.status not in (core.AVAILABLE, core.IN_USE):
                raise errors.BadRequest(f"Invalid volume: Source volume status must be available or in-use, "
                                        f"but current status is: {src.status}.")
            size = size or src.size
            if size < src.size:
                raise errors.BadRequest("Invalid input received: Clones currently must be >= original volume "
                                        "size.")
            if vt is None and src.volume_type_id:
                vt = s.get(m.VolumeType, src.volume_type_id)
            src_zone = src.availability_zone
        if backup_id:
            b = core.get_backup(s, ctx, backup_id)
            if b.status != core.AVAILABLE:
                raise errors.BadRequest(f"Invalid backup: Backup status must be available, not {b.status}.")
            size = size or b.size
        if vt is None:
            vt = core.default_type(s)
        if vt is not None and (vt.extra_specs or {}).get("multiattach", "").lower() in ("<is> true", "true"):
            multiattach = True
        if zone is None:
            zone = src_zone or core.zones()[0]
        elif src_zone and zone != src_zone:
            raise errors.BadRequest("Invalid input received: Availability zone must match the source's.")
        core.check_quota(s, ctx.project_id, vt.name if vt else None, volumes=1, gigabytes=size)
        v = m.Volume(id=core.new_id(), project_id=ctx.project_id, user_id=ctx.user_id, name=name,
                     description=description, size=size, status=core.CREATING, attach_status="detached",
                     availability_zone=zone, volume_type_id=vt.id if vt else None, snapshot_id=snapshot_id,
                     source_volid=source_volid, image_id=image["id"] if image else None,
                     bootable=False, multiattach=multiattach, metadata_=metadata, admin_metadata={},
                     image_metadata={}, created_at=now, deleted=False)
        if backup_id:
            v.status = core.RESTORING_BACKUP
        s.add(v)
        s.flush()
        view = views.volume(req, v, mv(req), types=core.type_names(s), attachments=[], admin=ctx.is_admin,
                            detail=False)
    if backup_id:
        core.start_restore(v.id, backup_id)
    else:
        core.cast_scheduler("create_volume", volume_id=v.id)
    return json_response({"volume": view}, 202)


# -------------------------------------------------------------------- one volume


def show_view(req: Req, s, v: m.Volume, detail: bool = True) -> dict:
    atts = core.attachments_of(s, [v.id]).get(v.id, [])
    return views.volume(req, v, mv(req), types=core.type_names(s), attachments=atts, admin=req.ctx.is_admin,
                        detail=detail)


@route("/volumes/{volume_id}", ["GET"])
def volume_show(req: Req):
    with db.session() as s:
        v = core.get_volume(s, req.ctx, req.path["volume_id"])
        policies.authorize("volume:get", req.ctx, {"project_id": v.project_id})
        return json_response({"volume": show_view(req, s, v)})


@route("/volumes/{volume_id}", ["PUT"])
def volume_update(req: Req):
    body = validation.validate(validation.variant(schemas.UPDATE, mv(req)), req.json(),
                               style=validation.NOVA)["volume"]
    with db.transaction() as s:
        v = core.get_volume(s, req.ctx, req.path["volume_id"])
        policies.authorize("volume:update", req.ctx, {"project_id": v.project_id})
        if "name" in body or "display_name" in body:
            v.name = body.get("name", body.get("display_name"))
        if "description" in body or "display_description" in body:
            v.description = body.get("description", body.get("display_description"))
        if "metadata" in body:
            v.metadata_ = body["metadata"]
        core.touch(v)
        s.flush()
        return json_response({"volume": show_view(req, s, v, detail=False)})


@route("/volumes/{volume_id}", ["DELETE"])
def volume_delete(req: Req):
    cascade = parse_bool(req.query.get("cascade", "false"), "cascade")
    force = parse_bool(req.query.get("force", "false"), "force")
    delete_volume(req.ctx, req.path["volume_id"], cascade=cascade, force=force)
    return empty(202)


def delete_volume(ctx, volume_id: str, cascade: bool = False, force: bool = False) -> None:
    with db.transaction() as s:
        v = core.get_volume(s, ctx, volume_id)
        policies.authorize("volume:delete", ctx, {"project_id": v.project_id})
        if force:
            policies.authorize("volume:force_delete", ctx, {"project_id": v.project_id})
        attached = s.scalar(sa.select(sa.func.count()).select_from(m.Attachment).where(
            m.Attachment.volume_id == v.id, m.Attachment.attach_status != "detached"))
        if attached and not force:
            raise errors.BadRequest(f"Invalid volume: Volume {v.id} status must be available or error or "
                                    f"error_restoring or error_extending or error_managing and must not be "
                                    f"migrating, attached, belong to a group, have snapshots, awaiting a "
                                    f"transfer, or be disassociated from snapshots after volume transfer.")
        if not force and v.status not in core.DELETABLE:
            raise core.invalid_volume(v, "available or error or error_restoring or error_extending or "
                                         "error_managing")
        snaps = list(s.scalars(sa.select(m.Snapshot).where(m.Snapshot.volume_id == v.id,
                                                           m.Snapshot.deleted.is_(False))))
        if snaps and not cascade:
            raise errors.BadRequest(f"Invalid volume: Volume {v.id} still has {len(snaps)} dependent "
                                    f"snapshots.")
        if cascade and any(sn.status not in (core.AVAILABLE, core.ERROR) for sn in snaps):
            raise errors.BadRequest("Invalid volume: Snapshots of the volume must be available or error to "
                                    "delete it with cascade.")
        s.execute(sa.update(m.Transfer).where(m.Transfer.volume_id == v.id).values(deleted=True))
        for sn in snaps:
            sn.status = core.DELETING
        v.status = core.DELETING
        core.touch(v)
        host, vid, snap_ids = v.host, v.id, [sn.id for sn in snaps]
        if attached:
            s.execute(sa.update(m.Attachment).where(m.Attachment.volume_id == v.id)
                      .values(attach_status="detached", detach_time=utcnow()))
    if not host:  # never scheduled (e.g. no backend): nothing on disk
        for sid in snap_ids:
            core.destroy_snapshot(sid)
        core.destroy_volume(vid)
        return
    core.cast_host(host, "delete_volume_cascade", volume_id=vid, snapshot_ids=snap_ids)


# -------------------------------------------------------------------- metadata


def _not_in_maintenance(v: m.Volume) -> None:
    if v.status == core.MAINTENANCE:
        raise core.invalid_volume(v, "not maintenance")


def _register_metadata() -> None:
    metadata.register("/volumes/{volume_id}", "volume_id", core.get_volume,
                      {"get": "volume:get_volume_metadata", "update": "volume:update_volume_metadata",
                       "delete": "volume:delete_volume_metadata"}, writable=_not_in_maintenance)


_register_metadata()
