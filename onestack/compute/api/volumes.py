"""``/servers/{id}/os-volume_attachments``: attach, list, show and detach volumes.

The volume service is reached over its REST API (Cinder's v3 attachments):
the API checks the volume with the user's token and reserves it by creating an
attachment, records the block device mapping on the server, and casts the
attach to the server's compute agent, which connects (attachment update with
the host's connector), hot-plugs the disk and completes the attachment. A
detach marks the volume ``detaching`` (begin_detaching) and is cast the same way; the
agent unplugs and deletes the attachment, or rolls the volume back to ``in-use`` if the
guest never lets go.
"""

from __future__ import annotations

import re

from onestack.common import db, errors
from onestack.common.http import Req, empty, json_response
from onestack.common.microversion import Version
from onestack.common.timeutils import utcnow
from onestack.compute import clients, instances, states
from onestack.compute.api import api, body_of, mv
from onestack.compute.api.helpers import authorize, offset_limit

_DEVICE = re.compile(r"^(/dev/)?[a-z]+[a-z]$")
_ATTACHABLE = (states.ACTIVE, states.PAUSED, states.STOPPED, states.SUSPENDED, states.RESIZED)


def view(inst_uuid: str, bdm: dict, v: Version, with_server: bool = True) -> dict:
    out = {"id": bdm["volume_id"], "volumeId": bdm["volume_id"], "serverId": inst_uuid,
           "device": bdm.get("device")}
    if v >= Version(2, 70):
        out["tag"] = bdm.get("tag")
    if v >= Version(2, 79):
        out["delete_on_termination"] = bool(bdm.get("delete_on_termination"))
    return out


def volumes_of(inst) -> list[dict]:
    return [b for b in (inst.block_device_mapping or [])
            if b.get("destination_type") == "volume" and b.get("volume_id")]


@api.route("/v2.1/servers/{server_id}/os-volume_attachments", ["GET"])
def attachments_index(req: Req):
    with db.session() as s:
        inst = instances.get(s, req.ctx, req.path["server_id"])
        authorize("os-volumes-attachments:index", req.ctx, {"project_id": inst.project_id},
                  fallback="os_compute_api:servers:show")
        items = [view(inst.uuid, b, mv(req)) for b in volumes_of(inst)]
    offset, limit = offset_limit(req)
    items = items[offset:offset + limit]
    return json_response({"volumeAttachments": items})


@api.route("/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}", ["GET"])
def attachment_show(req: Req):
    with db.session() as s:
        inst = instances.get(s, req.ctx, req.path["server_id"])
        authorize("os-volumes-attachments:show", req.ctx, {"project_id": inst.project_id},
                  fallback="os_compute_api:servers:show")
        for b in volumes_of(inst):
            if b["volume_id"] == req.path["volume_id"]:
                return json_response({"volumeAttachment": view(inst.uuid, b, mv(req))})
    raise errors.NotFound(f"volume_id not found: {req.path['volume_id']}")


@api.route("/v2.1/servers/{server_id}/os-volume_attachments", ["POST"])
def attachment_create(req: Req):
    ctx = req.ctx
    body = body_of(req, "volumeAttachment")
    volume_id = body.get("volumeId")
    if not instances.is_uuid(volume_id):
        raise errors.BadRequest(f"Invalid input for field/attribute volumeId. Value: {volume_id}. "
                                f"'{volume_id}' is not a 'uuid'")
    device = body.get("device")
    if device is not None and (not isinstance(device, str) or not _DEVICE.match(device)):
        raise errors.BadRequest(f"Invalid input for field/attribute device. Value: {device}. The device name "
                                f"must look like /dev/vdb.")
    tag = body.get("tag") if mv(req) >= Version(2, 49) else None
    delete_on_termination = bool(body.get("delete_on_termination", False)) if mv(req) >= Version(2, 79) else False
    uuid = req.path["server_id"]
    with db.session() as s:
        inst = instances.get(s, ctx, uuid)
        authorize("os-volumes-attachments:create", ctx, {"project_id": inst.project_id},
                  fallback="os_compute_api:servers:action")
        if inst.locked and not ctx.is_admin:
            raise errors.Conflict(f"Instance {inst.uuid} is locked")
        if inst.vm_state not in _ATTACHABLE or inst.task_state is not None:
            raise errors.Conflict(f"Cannot 'attach_volume' instance {inst.uuid} while it is in vm_state "
                                  f"{inst.vm_state}" + (f", task_state {inst.task_state}" if inst.task_state else ""))
        if not inst.host:
            raise errors.Conflict(f"Cannot 'attach_volume' instance {inst.uuid}: it is not on any host")
        if any(b["volume_id"] == volume_id for b in volumes_of(inst)):
            raise errors.BadRequest(f"Invalid volume: volume {volume_id} is already attached to this server.")
    vc = clients.get().volume
    try:
        volume = vc.get(f"/volumes/{volume_id}", token=ctx.auth_token)["volume"]
    except errors.NotFound:
        raise errors.NotFound(f"Volume {volume_id} could not be found.") from None
    if volume["status"] not in ("available", "in-use", "reserved") or (
            volume["status"] != "available" and not volume.get("multiattach")):
        raise errors.BadRequest(f"Invalid volume: volume {volume_id} status must be 'available'; it is "
                                f"'{volume['status']}'.")
    # reserve: the volume API refuses a second server unless the volume is multiattach
    attachment = vc.post("/attachments", json={"attachment": {"volume_uuid": volume_id, "instance_uuid": uuid}},
                         token=ctx.auth_token)["attachment"]
    try:
        with db.transaction() as s:
            inst = instances.get(s, ctx, uuid, for_update=True)  # the conductor edits mappings too
            used = {"vda"} | {str(b.get("device") or "").removeprefix("/dev/") for b in volumes_of(inst)}
            dev = device if device and device.removeprefix("/dev/") not in used else instances.next_device(used)
            if not dev.startswith("/dev/"):
                dev = "/dev/" + dev
            bdm = {"source_type": "volume", "destination_type": "volume", "volume_id": volume_id,
                   "device": dev, "delete_on_termination": delete_on_termination, "tag": tag,
                   "attachment_id": attachment["id"], "boot_index": None, "created_at": utcnow().isoformat()}
            inst.block_device_mapping = [*(inst.block_device_mapping or []), bdm]
            inst.updated_at = utcnow()
            instances.record_action(s, inst, ctx, "attach_volume", req.request_id)
            host = inst.host
        instances.cast_to(host, "attach_volume", instance_uuid=uuid, volume_id=volume_id, request_id=req.request_id)
    except Exception:
        vc.delete(f"/attachments/{attachment['id']}", ok=(200, 204, 404))
        raise
    return json_response({"volumeAttachment": view(uuid, bdm, mv(req))})


@api.route("/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}", ["DELETE"])
def attachment_delete(req: Req):
    ctx = req.ctx
    uuid, volume_id = req.path["server_id"], req.path["volume_id"]
    with db.session() as s:
        inst = instances.get(s, ctx, uuid)
        authorize("os-volumes-attachments:delete", ctx, {"project_id": inst.project_id},
                  fallback="os_compute_api:servers:action")
        if inst.locked and not ctx.is_admin:
            raise errors.Conflict(f"Instance {inst.uuid} is locked")
        bdm = next((b for b in volumes_of(inst) if b["volume_id"] == volume_id), None)
        if bdm is None:
            raise errors.NotFound(f"volume_id not found: {volume_id}")
        if bdm.get("boot_index") == 0:
            raise errors.BadRequest("Can't detach root device volume")
        if inst.task_state is not None:
            raise errors.Conflict(f"Cannot 'detach_volume' instance {inst.uuid} while it is in task_state "
                                  f"{inst.task_state}")
        host = inst.host
    vc = clients.get().volume
    if host:  # "detaching" until the agent deletes the attachment, or rolls back to in-use
        vc.post(f"/volumes/{volume_id}/action", json={"os-begin_detaching": {}}, token=ctx.auth_token)
    try:
        with db.transaction() as s:
            instances.record_action(s, instances.get(s, ctx, uuid), ctx, "detach_volume", req.request_id)
        if host:
            instances.cast_to(host, "detach_volume", instance_uuid=uuid, volume_id=volume_id,
                              request_id=req.request_id)
    except Exception:
        if host:
            vc.post(f"/volumes/{volume_id}/action", json={"os-roll_detaching": {}}, token=ctx.auth_token)
        raise
    return empty(202)
