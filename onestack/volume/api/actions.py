"""``POST /volumes/{id}/action``: extend, bootable, readonly, retype, upload to image,
image metadata, admin actions (reset-status, force-delete, force-detach) and the
legacy attach flow (reserve, attach, begin/roll detaching, detach, connections)."""

from __future__ import annotations

import sqlalchemy as sa

from onestack.common import db, errors
from onestack.common.booleans import parse_bool
from onestack.common.http import Req, empty, json_response
from onestack.common.microversion import Version
from onestack.common.timeutils import utcnow
from onestack.volume import clients, core, policies
from onestack.volume import models as m
from onestack.volume.api import mv, route, views
from onestack.volume.api.metadata import check_metadata
from onestack.volume.api.volumes import (
    check_text,
    delete_volume,
    parse_size,
)

_HANDLERS = {}


def action(name: str):
    def register(fn):
        _HANDLERS[name] = fn
        return fn
    return register


@route("/volumes/{volume_id}/action", ["POST"])
def volume_action(req: Req):
    data = req.json()
    if not isinstance(data, dict) or len(data) != 1:
        raise errors.BadRequest("Invalid request body: it must name exactly one action.")
    name, arg = next(iter(data.items()))
    fn = _HANDLERS.get(name)
    if fn is None:
        raise errors.BadRequest(f"There is no such action: {name}")
    return fn(req, req.path["volume_id"], arg if arg is not None else {})


def _arg(arg, name: str) -> dict:
    if not isinstance(arg, dict):
        raise errors.BadRequest(f"Invalid input for {name}: it must be an object.")
    return arg


# -------------------------------------------------------------------- extend, flags, retype


@action("os-extend")
def extend(req: Req, volume_id: str, arg):
    arg = _arg(arg, "os-extend")
    new_size = parse_size(arg.get("new_size"))
    with db.transaction() as s:
        v = core.get_volume(s, req.ctx, volume_id)
        policies.authorize("volume:extend", req.ctx, {"project_id": v.project_id})
        attached = v.status == core.IN_USE
        if attached and mv(req) < Version(3, 42):
            raise core.invalid_volume(v, "available")
        if v.status not in (core.AVAILABLE, core.IN_USE):
            raise core.invalid_volume(v, "available or in-use")
        if new_size <= v.size:
            raise errors.BadRequest(f"Invalid input received: New size for extend must be greater than current "
                                    f"size. (current: {v.size}, extended: {new_size}).")
        vt = s.get(m.VolumeType, v.volume_type_id) if v.volume_type_id else None
        core.check_quota(s, v.project_id, vt.name if vt else None, gigabytes=new_size - v.size)
        per = core.limits(s, v.project_id).get("per_volume_gigabytes", -1)
        if per >= 0 and new_size > per:
            raise errors.PayloadTooLarge(f"VolumeSizeExceedsLimit: Requested volume size {new_size}G is larger "
                                         f"than maximum allowed limit {per}G.")
        before = v.status
        v.status = core.EXTENDING
        core.touch(v)
        host = v.host
    core.cast_host(host, "extend_volume", volume_id=volume_id, new_size=new_size, status_after=before)
    return empty(202)


@action("os-extend_volume_completion")
def extend_completion(req: Req, volume_id: str, arg):
    with db.session() as s:
        core.get_volume(s, req.ctx, volume_id)
    return empty(202)


@action("os-set_bootable")
def set_bootable(req: Req, volume_id: str, arg):
    arg = _arg(arg, "os-set_bootable")
    if "bootable" not in arg:
        raise errors.BadRequest("Invalid input for os-set_bootable: 'bootable' is a required property.")
    bootable = parse_bool(arg["bootable"], "bootable")
    with db.transaction() as s:
        v = core.get_volume(s, req.ctx, volume_id)
        policies.authorize("volume:update", req.ctx, {"project_id": v.project_id})
        v.bootable = bootable
        core.touch(v)
    return empty(200)


@action("os-update_readonly_flag")
def readonly(req: Req, volume_id: str, arg):
    arg = _arg(arg, "os-update_readonly_flag")
    if "readonly" not in arg:
        raise errors.BadRequest("Invalid input for os-update_readonly_flag: 'readonly' is a required property.")
    flag = parse_bool(arg["readonly"], "readonly")
    with db.transaction() as s:
        v = core.get_volume(s, req.ctx, volume_id)
        policies.authorize("volume:update_readonly_flag", req.ctx, {"project_id": v.project_id})
        if v.status != core.AVAILABLE:
            raise core.invalid_volume(v, "available")
        v.admin_metadata = {**(v.admin_metadata or {}), "readonly": str(flag)}
        core.touch(v)
    return empty(202)


@action("os-retype")
def retype(req: Req, volume_id: str, arg):
    arg = _arg(arg, "os-retype")
    ref = arg.get("new_type")
    if not ref:
        raise errors.BadRequest("Invalid input for os-retype: 'new_type' is a required property.")
    policy = arg.get("migration_policy", "never")
    if policy not in ("never", "on-demand"):
        raise errors.BadRequest(f"Invalid migration_policy {policy!r}: it must be never or on-demand.")
    with db.transaction() as s:
        v = core.get_volume(s, req.ctx, volume_id)
        policies.authorize("volume:retype", req.ctx, {"project_id": v.project_id})
        if v.status not in (core.AVAILABLE, core.IN_USE):
            raise core.invalid_volume(v, "available or in-use")
        vt = core.find_type(s, req.ctx, ref)
        if vt.id == v.volume_type_id:
            raise errors.BadRequest("Invalid input received: Retype requires a different type.")
        old = s.get(m.VolumeType, v.volume_type_id) if v.volume_type_id else None
        want = (vt.extra_specs or {}).get("volume_backend_name")
        have = (old.extra_specs or {}).get("volume_backend_name") if old else None
        if want and have and want != have and policy == "never":
            raise errors.BadRequest("Invalid input received: Retype to another backend needs "
                                    "migration_policy on-demand.")
        snaps = s.scalar(sa.select(sa.func.count()).select_from(m.Snapshot).where(
            m.Snapshot.volume_id == v.id, m.Snapshot.deleted.is_(False)))
        if want and have and want != have and snaps:
            raise errors.BadRequest("Invalid volume: a volume with snapshots cannot move to another backend.")
        core.check_quota(s, v.project_id, vt.name, volumes=0, gigabytes=0)
        lim, used = core.limits(s, v.project_id), core.usage(s, v.project_id)
        for r, d in ((f"volumes_{vt.name}", 1), (f"gigabytes_{vt.name}", v.size)):
            if lim.get(r, -1) >= 0 and used.get(r, 0) + d > lim[r]:
                raise errors.PayloadTooLarge(f"Quota exceeded for resources: ['{r}'].")
        v.volume_type_id = vt.id
        core.touch(v)
    return empty(202)


# -------------------------------------------------------------------- images


@action("os-volume_upload_image")
def upload_image(req: Req, volume_id: str, arg):
    arg = _arg(arg, "os-volume_upload_image")
    image_name = arg.get("image_name")
    if not isinstance(image_name, str) or not image_name:
        raise errors.BadRequest("Invalid input for os-volume_upload_image: 'image_name' is a required property.")
    disk_format = arg.get("disk_format", "raw")
    container_format = arg.get("container_format", "bare")
    if disk_format not in ("raw", "qcow2", "vmdk", "vdi", "vhd", "vhdx"):
        raise errors.BadRequest(f"Invalid disk-format '{disk_format}' is specified. Allowed disk-formats are "
                                f"raw, qcow2, vmdk, vdi, vhd, vhdx.")
    force = parse_bool(arg.get("force", False), "force")
    visibility = arg.get("visibility", "private")
    protected = parse_bool(arg.get("protected", False), "protected")
    ctx = req.ctx
    with db.session() as s:
        v = core.get_volume(s, ctx, volume_id)
        policies.authorize("volume_extension:volume_actions:upload_image", ctx, {"project_id": v.project_id})
        if visibility == "public":
            policies.authorize("volume_extension:volume_actions:upload_public", ctx)
        if v.status not in (core.AVAILABLE,) and not (force and v.status == core.IN_USE):
            raise core.invalid_volume(v, "available or in-use (with force)")
        meta = dict(v.image_metadata or {})
    # the image is made with the user's token: it belongs to the user's project
    props = {k: val for k, val in meta.items()
             if k not in ("image_id", "image_name", "checksum", "size", "disk_format", "container_format",
                          "min_ram", "min_disk")}
    image = clients.images().post("/v2/images", json={
        "name": image_name, "disk_format": disk_format, "container_format": container_format,
        "visibility": visibility, "protected": protected, **props}, token=ctx.auth_token)
    with db.transaction() as s:
        v = core.get_volume(s, ctx, volume_id)
        before = v.status
        if before not in (core.AVAILABLE, core.IN_USE):
            clients.images().delete(f"/v2/images/{image['id']}", ok=(204, 404))
            raise core.invalid_volume(v, "available")
        v.status = core.UPLOADING
        core.touch(v)
        vt = s.get(m.VolumeType, v.volume_type_id) if v.volume_type_id else None
        view = {"id": v.id, "updated_at": views.t(v.updated_at), "status": v.status,
                "display_description": v.description, "size": v.size,
                "volume_type": views.volume_type(vt, ctx.is_admin) if vt else None,
                "image_id": image["id"], "container_format": container_format, "disk_format": disk_format,
                "image_name": image_name}
        if mv(req) >= Version(3, 1):
            view.update(visibility=visibility, protected=protected)
        host = v.host
    core.cast_host(host, "upload_to_image", volume_id=volume_id, image_id=image["id"], disk_format=disk_format,
                   status_after=before)
    return json_response({"os-volume_upload_image": view}, 202)


@action("os-set_image_metadata")
def set_image_metadata(req: Req, volume_id: str, arg):
    arg = _arg(arg, "os-set_image_metadata")
    meta = check_metadata(arg.get("metadata"))
    with db.transaction() as s:
        v = core.get_volume(s, req.ctx, volume_id)
        policies.authorize("volume_extension:volume_image_metadata:set", req.ctx, {"project_id": v.project_id})
        v.image_metadata = {**(v.image_metadata or {}), **meta}
        core.touch(v)
        return json_response({"metadata": dict(v.image_metadata)})


@action("os-unset_image_metadata")
def unset_image_metadata(req: Req, volume_id: str, arg):
    arg = _arg(arg, "os-unset_image_metadata")
    key = arg.get("key")
    with db.transaction() as s:
        v = core.get_volume(s, req.ctx, volume_id)
        policies.authorize("volume_extension:volume_image_metadata:remove", req.ctx, {"project_id": v.project_id})
        if key not in (v.image_metadata or {}):
            raise errors.NotFound(f"Glance metadata for volume {volume_id} cannot be found with key {key}.")
        v.image_metadata = {k: val for k, val in v.image_metadata.items() if k != key}
        core.touch(v)
    return empty(200)


@action("os-show_image_metadata")
def show_image_metadata(req: Req, volume_id: str, arg):
    with db.session() as s:
        v = core.get_volume(s, req.ctx, volume_id)
        policies.authorize("volume_extension:volume_image_metadata:show", req.ctx, {"project_id": v.project_id})
        return json_response({"metadata": dict(v.image_metadata or {})})


# -------------------------------------------------------------------- admin actions


@action("os-reset_status")
def reset_status(req: Req, volume_id: str, arg):
    arg = _arg(arg, "os-reset_status")
    status = arg.get("status")
    attach_status = arg.get("attach_status")
    migration_status = arg.get("migration_status")
    if status is None and attach_status is None and migration_status is None:
        raise errors.BadRequest("Must specify 'status', 'attach_status' or 'migration_status' for update.")
    if status is not None and status.lower() not in core.VOLUME_STATUSES:
        raise errors.BadRequest(f"Must specify a valid status: {status} is not one.")
    if attach_status is not None and attach_status not in ("attached", "detached"):
        raise errors.BadRequest(f"Must specify a valid attach status: {attach_status} is not one.")
    with db.transaction() as s:
        v = core.get_volume(s, req.ctx, volume_id, any_project=True)
        policies.authorize("volume_extension:volume_admin_actions:reset_status", req.ctx,
                           {"project_id": v.project_id})
        if status is not None:
            v.status = status.lower()
        if attach_status is not None:
            v.attach_status = attach_status
            if attach_status == "detached":
                s.execute(sa.update(m.Attachment).where(m.Attachment.volume_id == v.id)
                          .values(attach_status="detached", detach_time=utcnow()))
        if migration_status is not None:
            v.migration_status = None if migration_status == "none" else migration_status
        core.touch(v)
    return empty(202)


@action("os-force_delete")
def force_delete(req: Req, volume_id: str, arg):
    with db.session() as s:
        v = core.get_volume(s, req.ctx, volume_id, any_project=True)
        policies.authorize("volume_extension:volume_admin_actions:force_delete", req.ctx,
                           {"project_id": v.project_id})
    delete_volume(req.ctx, volume_id, cascade=True, force=True)
    return empty(202)


@action("os-force_detach")
def force_detach(req: Req, volume_id: str, arg):
    arg = _arg(arg, "os-force_detach")
    with db.transaction() as s:
        v = core.get_volume(s, req.ctx, volume_id, any_project=True)
        policies.authorize("volume_extension:volume_admin_actions:force_detach", req.ctx,
                           {"project_id": v.project_id})
        q = sa.select(m.Attachment).where(m.Attachment.volume_id == v.id, m.Attachment.attach_status != "detached")
        if arg.get("attachment_id"):
            q = q.where(m.Attachment.id == arg["attachment_id"])
        for a in s.scalars(q):
            a.attach_status, a.detach_time = "detached", utcnow()
        s.flush()
        _settle(s, v)
    return empty(202)


# -------------------------------------------------------------------- legacy attach flow


def _settle(s, v: m.Volume) -> None:
    """The volume's status from its attachments (in-use while one is attached)."""
    live = list(s.scalars(sa.select(m.Attachment).where(m.Attachment.volume_id == v.id,
                                                        m.Attachment.attach_status != "detached")))
    if any(a.attach_status == "attached" for a in live):
        v.status, v.attach_status = core.IN_USE, "attached"
    elif any(a.attach_status == "attaching" for a in live):
        v.status, v.attach_status = core.ATTACHING, "detached"
    elif live:
        v.status, v.attach_status = core.RESERVED, "detached"
    else:
        v.status, v.attach_status = core.AVAILABLE, "detached"
        am = dict(v.admin_metadata or {})
        am.pop("attached_mode", None)
        v.admin_metadata = am
    core.touch(v)


@action("os-reserve")
def reserve(req: Req, volume_id: str, arg):
    with db.transaction() as s:
        v = core.get_volume(s, req.ctx, volume_id)
        policies.authorize("volume:attachment_create", req.ctx, {"project_id": v.project_id})
        if v.status != core.AVAILABLE and not (v.multiattach and v.status == core.IN_USE):
            raise core.invalid_volume(v, "available")
        v.status = core.ATTACHING
        core.touch(v)
    return empty(202)


@action("os-unreserve")
def unreserve(req: Req, volume_id: str, arg):
    with db.transaction() as s:
        v = core.get_volume(s, req.ctx, volume_id)
        policies.authorize("volume:attachment_delete", req.ctx, {"project_id": v.project_id})
        if v.status == core.ATTACHING:
            _settle(s, v)
    return empty(202)


@action("os-begin_detaching")
def begin_detaching(req: Req, volume_id: str, arg):
    with db.transaction() as s:
        v = core.get_volume(s, req.ctx, volume_id)
        if v.status != core.IN_USE:
            raise core.invalid_volume(v, "in-use")
        v.status = core.DETACHING
        core.touch(v)
    return empty(202)


@action("os-roll_detaching")
def roll_detaching(req: Req, volume_id: str, arg):
    with db.transaction() as s:
        v = core.get_volume(s, req.ctx, volume_id)
        if v.status == core.DETACHING:
            _settle(s, v)
    return empty(202)


@action("os-attach")
def attach(req: Req, volume_id: str, arg):
    arg = _arg(arg, "os-attach")
    instance = arg.get("instance_uuid")
    host_name = arg.get("host_name")
    if not instance and not host_name:
        raise errors.BadRequest("Invalid request to attach volume: instance_uuid or host_name is required.")
    mode = arg.get("mode", "rw")
    if mode not in ("rw", "ro"):
        raise errors.BadRequest("Invalid request to attach volume with an invalid mode. Attaching mode should "
                                "be 'rw' or 'ro'.")
    mountpoint = check_text(arg.get("mountpoint"), "mountpoint")
    with db.transaction() as s:
        v = core.get_volume(s, req.ctx, volume_id)
        policies.authorize("volume:attachment_create", req.ctx, {"project_id": v.project_id})
        if v.status not in (core.AVAILABLE, core.ATTACHING, core.RESERVED) and not (
                v.multiattach and v.status == core.IN_USE):
            raise core.invalid_volume(v, "available or attaching")
        if (v.admin_metadata or {}).get("readonly") == "True" and mode != "ro":
            raise errors.BadRequest("Invalid volume: the volume is read-only; attach it with mode 'ro'.")
        now = utcnow()
        s.add(m.Attachment(id=core.new_id(), volume_id=v.id, instance_uuid=instance, attached_host=host_name,
                           mountpoint=mountpoint, attach_mode=mode, attach_status="attached", attach_time=now,
                           created_at=now))
        v.admin_metadata = {**(v.admin_metadata or {}), "attached_mode": mode}
        s.flush()
        _settle(s, v)
    return empty(202)


@action("os-detach")
def detach(req: Req, volume_id: str, arg):
    arg = _arg(arg, "os-detach")
    with db.transaction() as s:
        v = core.get_volume(s, req.ctx, volume_id)
        policies.authorize("volume:attachment_delete", req.ctx, {"project_id": v.project_id})
        q = sa.select(m.Attachment).where(m.Attachment.volume_id == v.id, m.Attachment.attach_status != "detached")
        live = list(s.scalars(q))
        if arg.get("attachment_id"):
            live = [a for a in live if a.id == arg["attachment_id"]]
            if not live:
                raise errors.NotFound(f"Volume attachment {arg['attachment_id']} could not be found.")
        elif len(live) > 1:
            raise errors.BadRequest("Invalid volume: the volume has several attachments; name the "
                                    "attachment_id.")
        for a in live:
            a.attach_status, a.detach_time = "detached", utcnow()
        s.flush()
        _settle(s, v)
    return empty(202)


@action("os-initialize_connection")
def initialize_connection(req: Req, volume_id: str, arg):
    arg = _arg(arg, "os-initialize_connection")
    connector = arg.get("connector")
    if not isinstance(connector, dict):
        raise errors.BadRequest("Must specify 'connector'.")
    with db.session() as s:
        v = core.get_volume(s, req.ctx, volume_id)
        host = v.host
    info = core.call_host(host, "initialize_connection", volume_id=volume_id, connector=connector)
    return json_response({"connection_info": info})


@action("os-terminate_connection")
def terminate_connection(req: Req, volume_id: str, arg):
    with db.session() as s:
        core.get_volume(s, req.ctx, volume_id)
    return empty(202)
