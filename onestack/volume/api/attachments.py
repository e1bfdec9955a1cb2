"""Attachments (v3, microversion 3.27+): what compute uses to attach a volume.

create (reserves the volume; with a connector also connects) -> update with the
host's connector (returns the connection info from the volume agent) ->
``os-complete`` (the volume is ``in-use``) -> delete (``available`` when no
attachment is left). A volume is attached to one server at a time unless it is
multiattach.
"""

from __future__ import annotations

import sqlalchemy as sa

from onestack.common import db, errors
from onestack.common.http import Req, empty, json_response
from onestack.common.microversion import Version
from onestack.common.timeutils import utcnow
from onestack.volume import core, policies
from onestack.volume import models as m
from onestack.volume.api import body_of, mv, route, views
from onestack.volume.api.actions import _settle
from onestack.volume.api.volumes import check_uuid, paginate

MIN = Version(3, 27)


def _need(req: Req) -> None:
    if mv(req) < MIN:
        raise errors.NotFound("The attachments API needs microversion 3.27 or later.")


def _get(s, req: Req, attachment_id: str) -> tuple[m.Attachment, m.Volume]:
    a = s.get(m.Attachment, attachment_id)
    if a is None:
        raise errors.NotFound(f"Volume attachment {attachment_id} could not be found.")
    v = s.get(m.Volume, a.volume_id)
    if v is None or v.deleted or (not req.ctx.is_admin and v.project_id != req.ctx.project_id):
        raise errors.NotFound(f"Volume attachment {attachment_id} could not be found.")
    return a, v


def _list(req: Req, detail: bool):
    _need(req)
    ctx = req.ctx
    with db.session() as s:
        q = sa.select(m.Attachment, m.Volume).join(m.Volume, m.Volume.id == m.Attachment.volume_id).where(
            m.Volume.deleted.is_(False), m.Attachment.attach_status != "detached")
        if not (ctx.is_admin and req.query.get("all_tenants")):
            q = q.where(m.Volume.project_id == ctx.project_id)
        if req.query.get("volume_id"):
            q = q.where(m.Attachment.volume_id == req.query["volume_id"])
        if req.query.get("instance_id"):
            q = q.where(m.Attachment.instance_uuid == req.query["instance_id"])
        if req.query.get("status"):
            q = q.where(m.Attachment.attach_status == req.query["status"])
        rows = [a for a, _ in s.execute(q.order_by(m.Attachment.created_at.desc(), m.Attachment.id))]
    page, limit = paginate(req, rows)
    items = [views.attachment(a, detail) for a in page]
    return json_response({"attachments": items, **views.collection_links(req, "attachments", items, limit, False)})


@route("/attachments/detail", ["GET"])
def attachments_detail(req: Req):
    return _list(req, True)


@route("/attachments", ["GET"])
def attachments_index(req: Req):
    return _list(req, False)


@route("/attachments/{attachment_id}", ["GET"])
def attachment_show(req: Req):
    _need(req)
    with db.session() as s:
        a, _ = _get(s, req, req.path["attachment_id"])
        return json_response({"attachment": views.attachment(a)})


def _connect(host: str, volume_id: str, connector: dict) -> dict:
    return core.call_host(host, "initialize_connection", volume_id=volume_id, connector=connector)


@route("/attachments", ["POST"])
def attachment_create(req: Req):
    _need(req)
    ctx = req.ctx
    body = body_of(req, "attachment")
    volume_id = body.get("volume_uuid")
    if not volume_id:
        raise errors.BadRequest("Invalid input for field/attribute attachment: 'volume_uuid' is a required "
                                "property.")
    check_uuid(volume_id, "volume_uuid")
    instance = body.get("instance_uuid")
    if instance is not None:
        check_uuid(instance, "instance_uuid")
    connector = body.get("connector")
    if connector is not None and not isinstance(connector, dict):
        raise errors.BadRequest("Invalid input for field/attribute connector: it must be an object.")
    mode = body.get("mode", "rw") if mv(req) >= Version(3, 54) else "rw"
    if mode not in ("rw", "ro"):
        raise errors.BadRequest(f"Invalid attach mode {mode!r}: it must be rw or ro.")
    now = utcnow()
    with db.transaction() as s:
        v = core.get_volume(s, ctx, volume_id)
        policies.authorize("volume:attachment_create", ctx, {"project_id": v.project_id})
        live = list(s.scalars(sa.select(m.Attachment).where(m.Attachment.volume_id == v.id,
                                                            m.Attachment.attach_status != "detached")))
        if live and not v.multiattach:
            raise errors.BadRequest(f"Invalid volume: Volume {v.id} status must be available or downloading to "
                                    f"reserve, but the current status is {v.status}.")
        if v.status not in (core.AVAILABLE, core.DOWNLOADING) and not (
                v.multiattach and v.status in (core.IN_USE, core.RESERVED, core.ATTACHING)):
            raise errors.BadRequest(f"Invalid volume: Volume {v.id} status must be available or downloading to "
                                    f"reserve, but the current status is {v.status}.")
        if instance and any(a.instance_uuid == instance for a in live):
            raise errors.BadRequest(f"Invalid volume: Volume {v.id} is already attached to server {instance}.")
        if (v.admin_metadata or {}).get("readonly") == "True":
            mode = "ro"
        a = m.Attachment(id=core.new_id(), volume_id=v.id, instance_uuid=instance, attach_mode=mode,
                         attach_status="reserved", created_at=now)
        s.add(a)
        if v.status == core.AVAILABLE:
            v.status = core.RESERVED
        core.touch(v)
        host, aid = v.host, a.id
    if connector:
        try:
            info = _connect(host, volume_id, connector)
        except errors.ApiError:
            with db.transaction() as s:
                row = s.get(m.Attachment, aid)
                if row is not None:
                    s.delete(row)
                    s.flush()
                    _settle(s, s.get(m.Volume, volume_id))
            raise
        with db.transaction() as s:
            a = s.get(m.Attachment, aid)
            a.connector, a.connection_info = connector, info
            a.attached_host, a.mountpoint = connector.get("host"), connector.get("mountpoint")
            a.attach_status = "attaching"
            v = s.get(m.Volume, volume_id)
            if v.status == core.RESERVED:
                v.status = core.ATTACHING
    with db.session() as s:
        return json_response({"attachment": views.attachment(s.get(m.Attachment, aid))})


@route("/attachments/{attachment_id}", ["PUT"])
def attachment_update(req: Req):
    _need(req)
    body = body_of(req, "attachment")
    connector = body.get("connector")
    if not isinstance(connector, dict):
        raise errors.BadRequest("Invalid input for field/attribute attachment: 'connector' is a required "
                                "property.")
    with db.session() as s:
        a, v = _get(s, req, req.path["attachment_id"])
        policies.authorize("volume:attachment_update", req.ctx, {"project_id": v.project_id})
        if a.attach_status == "detached":
            raise errors.BadRequest("Invalid attachment: the attachment was deleted.")
        host, volume_id, aid = v.host, v.id, a.id
    info = _connect(host, volume_id, connector)
    with db.transaction() as s:
        a = s.get(m.Attachment, aid)
        a.connector, a.connection_info = connector, info
        a.attached_host = connector.get("host")
        a.mountpoint = connector.get("mountpoint") or a.mountpoint
        if a.attach_status == "reserved":
            a.attach_status = "attaching"
        a.updated_at = utcnow()
        v = s.get(m.Volume, volume_id)
        if v.status == core.RESERVED:
            v.status = core.ATTACHING
            core.touch(v)
        s.flush()
        return json_response({"attachment": views.attachment(a)})


@route("/attachments/{attachment_id}/action", ["POST"])
def attachment_action(req: Req):
    _need(req)
    data = req.json()
    if not isinstance(data, dict) or "os-complete" not in data:
        raise errors.BadRequest("Invalid request body: the only attachment action is os-complete.")
    if mv(req) < Version(3, 44):
        raise errors.NotFound("os-complete needs microversion 3.44 or later.")
    with db.transaction() as s:
        a, v = _get(s, req, req.path["attachment_id"])
        policies.authorize("volume:attachment_complete", req.ctx, {"project_id": v.project_id})
        if a.attach_status == "detached":
            raise errors.BadRequest("Invalid attachment: the attachment was deleted.")
        a.attach_status, a.attach_time, a.updated_at = "attached", utcnow(), utcnow()
        v.admin_metadata = {**(v.admin_metadata or {}), "attached_mode": a.attach_mode}
        s.flush()
        _settle(s, v)
    return empty(204)


@route("/attachments/{attachment_id}", ["DELETE"])
def attachment_delete(req: Req):
    _need(req)
    with db.transaction() as s:
        a, v = _get(s, req, req.path["attachment_id"])
        policies.authorize("volume:attachment_delete", req.ctx, {"project_id": v.project_id})
        s.delete(a)
        s.flush()
        _settle(s, v)
        rest = list(s.scalars(sa.select(m.Attachment).where(m.Attachment.volume_id == v.id)))
        body = {"attachments": [views.attachment(x, detail=False) for x in rest]}
        host, volume_id, connector = v.host, v.id, a.connector
    if connector and host:
        try:
            core.call_host(host, "terminate_connection", volume_id=volume_id, connector=connector)
        except errors.ApiError:
            pass
    return json_response(body)
