"""``POST /servers/{id}/action``: one handler per action name, as Nova's body says."""

from __future__ import annotations

import secrets

from onestack.common import booleans, db, errors, validation
from onestack.common.http import Req, empty, json_response
from onestack.common.microversion import Version
from onestack.compute import actions as act
from onestack.compute import (
    bfv,
    build,
    clients,
    consoles,
    flavors,
    instances,
    keypairs,
    moves,
    policies,
    quotas,
    states,
)
from onestack.compute.actions import ANY, begin
from onestack.compute.api import api, mv, views
from onestack.compute.api.servers import server_view
from onestack.compute.schemas import moves as move_schemas

HANDLERS = {}


def action(name: str):
    def register(fn):
        HANDLERS[name] = fn
        return fn
    return register


@api.route("/v2.1/servers/{server_id}/action", ["POST"])
def server_action(req: Req):
    data = req.json()
    if not isinstance(data, dict) or len(data) != 1:
        raise errors.BadRequest("There is either no action or more than one action in the request body.")
    name, body = next(iter(data.items()))
    fn = HANDLERS.get(name)
    if fn is None:
        # an unknown action on a missing server is still a 404, as Nova answers
        with db.session() as s:
            instances.get(s, req.ctx, req.path["server_id"])
        raise errors.BadRequest(f"There is no such action: {name}")
    return fn(req, req.path["server_id"], body)


# volume-backed servers (root disk = a volume; see onestack.compute.bfv): rescue from 2.87,
# rebuild with another image (reimaging the root volume) from 2.93
RESCUE_VOLUME_BACKED = Version(2, 87)
REBUILD_VOLUME_BACKED = Version(2, 93)


def _dict(body, name: str) -> dict:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise errors.BadRequest(f"Invalid input for field/attribute {name}: must be an object or null.")
    return body


# ---------------------------------------------------------------- power

@action("reboot")
def reboot(req: Req, uuid: str, body):
    body = _dict(body, "reboot")
    kind = str(body.get("type", "")).upper()
    if kind not in ("SOFT", "HARD"):
        raise errors.BadRequest("Invalid input for field/attribute type. Value: "
                                f"{body.get('type')}. It must be one of SOFT, HARD.")
    hard = kind == "HARD"
    inst = begin(req.ctx, uuid, "reboot", req.request_id,
                 vm_states=(states.ACTIVE, states.STOPPED, states.PAUSED, states.SUSPENDED, states.ERROR)
                 if hard else (states.ACTIVE,),
                 task_state=states.REBOOTING_HARD if hard else states.REBOOTING,
                 task_states=ANY if hard else (None,))
    instances.cast_to_host(inst, "reboot_instance", request_id=req.request_id, hard=hard)
    return empty(202)


def _simple(name: str, verb: str, vm_states, task_state: str, method: str):
    @action(name)
    def handler(req: Req, uuid: str, body):
        inst = begin(req.ctx, uuid, verb, req.request_id, vm_states=vm_states, task_state=task_state,
                     record=verb)
        instances.cast_to_host(inst, method, request_id=req.request_id)
        return empty(202)
    return handler


_simple("os-stop", "stop", (states.ACTIVE, states.ERROR, states.RESCUED), states.POWERING_OFF, "stop_instance")
_simple("os-start", "start", (states.STOPPED,), states.POWERING_ON, "start_instance")
_simple("pause", "pause", (states.ACTIVE,), states.PAUSING, "pause_instance")
_simple("unpause", "unpause", (states.PAUSED,), states.UNPAUSING, "unpause_instance")
_simple("suspend", "suspend", (states.ACTIVE,), states.SUSPENDING, "suspend_instance")
_simple("resume", "resume", (states.SUSPENDED,), states.RESUMING, "resume_instance")
_simple("unrescue", "unrescue", (states.RESCUED,), states.UNRESCUING, "unrescue_instance")


@action("confirmResize")
def confirm_resize(req: Req, uuid: str, body):
    moves.confirm_resize(req.ctx, uuid, req.request_id)
    return empty(204)


@action("revertResize")
def revert_resize(req: Req, uuid: str, body):
    moves.revert_resize(req.ctx, uuid, req.request_id)
    return empty(202)


@action("lock")
def lock(req: Req, uuid: str, body):
    body = _dict(body, "lock")
    reason = body.get("locked_reason")
    if reason is not None:
        if mv(req) < Version(2, 73):
            raise errors.BadRequest("Invalid input for field/attribute lock. Additional properties are not "
                                    "allowed (locked_reason was unexpected)")
        if not isinstance(reason, str) or len(reason) > 255:
            raise errors.BadRequest("Invalid input for field/attribute locked_reason: at most 255 characters.")
    act.lock(req.ctx, uuid, req.request_id, reason)
    return empty(202)


@action("unlock")
def unlock(req: Req, uuid: str, body):
    act.unlock(req.ctx, uuid, req.request_id)
    return empty(202)


@action("os-resetState")
def reset_state(req: Req, uuid: str, body):
    body = _dict(body, "os-resetState")
    act.reset_state(req.ctx, uuid, req.request_id, body.get("state"))
    return empty(202)


# ---------------------------------------------------------------- rescue, rebuild, resize

@action("rescue")
def rescue(req: Req, uuid: str, body):
    body = _dict(body, "rescue")
    image_ref = body.get("rescue_image_ref")
    password = body.get("adminPass") or secrets.token_urlsafe(9)
    with db.session() as s:
        current = instances.get(s, req.ctx, uuid)
    if current.vm_state not in (states.ACTIVE, states.STOPPED, states.ERROR):
        raise act._state_error(current, "rescue")
    if bfv.root_bdm(current.block_device_mapping) is not None and mv(req) < RESCUE_VOLUME_BACKED:
        raise errors.BadRequest(f"Instance {uuid} cannot be rescued: Cannot rescue a volume-backed instance")
    inst = begin(req.ctx, uuid, "rescue", req.request_id, vm_states=(states.ACTIVE, states.STOPPED, states.ERROR),
                 task_state=states.RESCUING)
    instances.cast_to_host(inst, "rescue_instance", request_id=req.request_id, image_ref=image_ref)
    return json_response({"adminPass": password})


@action("rebuild")
def rebuild(req: Req, uuid: str, body):
    ctx, v = req.ctx, mv(req)
    body = _dict(body, "rebuild")
    if "imageRef" not in body:
        raise errors.BadRequest("Invalid input for field/attribute rebuild. 'imageRef' is a required property")
    image_ref = str(body["imageRef"] or "").rstrip("/").rsplit("/", 1)[-1]
    changes = {}
    if "name" in body:
        changes["name"] = instances.check_name(body["name"])
    if "metadata" in body:
        changes["metadata_"] = instances.check_metadata(body["metadata"])
    if body.get("accessIPv4"):
        changes["access_ip_v4"] = instances.check_ip(body["accessIPv4"], 4, "accessIPv4")
    if body.get("accessIPv6"):
        changes["access_ip_v6"] = instances.check_ip(body["accessIPv6"], 6, "accessIPv6")
    if "description" in body and v >= Version(2, 19):
        changes["description"] = body["description"]
    if "key_name" in body and v >= Version(2, 54):
        if body["key_name"] is None:
            changes.update(key_name=None, key_data=None)
        else:
            with db.session() as s:
                data, _ = keypairs.get_public_key(s, ctx.user_id, body["key_name"])
            changes.update(key_name=body["key_name"], key_data=data)
    if "user_data" in body and v >= Version(2, 57):
        changes["user_data"] = instances.decode_user_data(body["user_data"])
    with db.session() as s:
        current = instances.get(s, ctx, uuid)
        flavor = dict(current.flavor)
        if "metadata_" in changes:
            quotas.check_metadata(s, current.project_id, len(changes["metadata_"]))
    root = bfv.root_bdm(current.block_device_mapping)
    if root is not None:
        flavor["root_gb"] = 0  # the root disk is a volume: the flavor's disk does not bound the image
    image = build._image(ctx, image_ref, flavor)
    if root is not None and v < REBUILD_VOLUME_BACKED and bfv.image_root_volume(ctx, root) != image_ref:
        raise errors.BadRequest(f"Image {image_ref} is unacceptable: Unable to rebuild with a different image "
                                f"for a volume-backed server.")
    password = body.get("adminPass") or secrets.token_urlsafe(9)
    inst = begin(ctx, uuid, "rebuild", req.request_id, vm_states=(states.ACTIVE, states.STOPPED, states.ERROR),
                 task_state=states.REBUILDING, changes=changes)
    # a volume-backed server keeps its image_ref (empty: booted from a volume) and its root volume's data
    image_ref = "" if root is not None else image_ref
    instances.cast_to_host(inst, "rebuild_instance", request_id=req.request_id, image_ref=image_ref, image=image)
    with db.session() as s:
        row = instances.get(s, ctx, uuid)
        row.image_ref = image_ref or row.image_ref  # shown at once, as Nova does (the agent records it)
        out = server_view(req, s, row, groups=v >= Version(2, 75), minimal=True)
    out["adminPass"] = password
    return json_response({"server": out}, 202)


@action("resize")
def resize(req: Req, uuid: str, body):
    ctx = req.ctx
    body = _dict(body, "resize")
    ref = body.get("flavorRef")
    if ref in (None, ""):
        raise errors.BadRequest("Invalid input for field/attribute flavorRef. Value: None. None is not of type "
                                "'string', 'integer'" if ref is None else "Invalid input for field/attribute "
                                "flavorRef. Value: . '' is too short")
    with db.session() as s:
        current = instances.get(s, ctx, uuid)
        new = flavors.snapshot(flavors.usable(s, str(ref).rstrip("/").rsplit("/", 1)[-1], ctx))
        old = dict(current.flavor)
    if new["id"] == old.get("id"):
        raise errors.BadRequest("When resizing, instances must change flavor!")
    # a volume-backed server has no local root disk: the flavor's disk size does not apply to it
    if new["root_gb"] < old.get("root_gb", 0) and bfv.root_bdm(current.block_device_mapping) is None:
        raise errors.BadRequest("Resize error: Unable to resize disk down.")
    image = ((current.system_metadata or {}).get("image") or {})
    if image.get("min_ram") and image["min_ram"] > new["memory_mb"]:
        raise errors.BadRequest("Flavor's memory is too small for requested image.")
    with db.session() as s:
        limits, used = quotas.limits(s, current.project_id), quotas.usage(s, current.project_id)
    for res, delta in (("cores", new["vcpus"] - old.get("vcpus", 0)), ("ram", new["memory_mb"] - old.get("memory_mb", 0))):
        if delta > 0 and limits.get(res, -1) >= 0 and used.get(res, 0) + delta > limits[res]:
            raise errors.Forbidden(f"Quota exceeded for {res}: Requested {delta}, but already used "
                                   f"{used.get(res, 0)} of {limits[res]} {res}")
    # the scheduler chooses the host (this one too, with compute.allow_resize_to_same_host)
    moves.resize_or_migrate(ctx, uuid, req.request_id, flavor=new)
    return empty(202)


# ---------------------------------------------------------------- moves between hosts (admin)

def _checked(req: Req, variants, name: str, body) -> dict:
    schema = validation.variant(variants, mv(req))
    if schema is not None:
        validation.validate(schema, {name: body}, style=validation.NOVA)
    return body if isinstance(body, dict) else {}


@action("migrate")
def migrate(req: Req, uuid: str, body):
    body = _checked(req, move_schemas.MIGRATE, "migrate", body)
    host = body.get("host") if mv(req) >= move_schemas.MIGRATE[1][0] else None
    moves.resize_or_migrate(req.ctx, uuid, req.request_id, host=host)
    return empty(202)


def _no_forcing_nowhere(req: Req, body: dict, versions) -> None:
    if versions[0] <= mv(req) < versions[1] and booleans.to_bool(body.get("force", False)) and not body.get("host"):
        raise errors.BadRequest("Can't force to a non-provided destination")


@action("os-migrateLive")
def migrate_live(req: Req, uuid: str, body):
    body = _checked(req, move_schemas.LIVE_MIGRATE, "os-migrateLive", body)
    _no_forcing_nowhere(req, body, move_schemas.LIVE_FORCE)
    block = body.get("block_migration")
    block = None if block == "auto" else booleans.to_bool(block)  # None: as the disks need
    moves.live_migrate(req.ctx, uuid, req.request_id, body.get("host"), block)
    return empty(202)


@action("evacuate")
def evacuate(req: Req, uuid: str, body):
    v = mv(req)
    body = _checked(req, move_schemas.EVACUATE, "evacuate", body)
    _no_forcing_nowhere(req, body, move_schemas.EVACUATE_FORCE)
    password = body.get("adminPass")
    if v < move_schemas.EVACUATE_NO_PASSWORD:
        shared = booleans.to_bool(body["onSharedStorage"])
        if shared and password is not None:
            raise errors.BadRequest("admin password can't be changed on existing disk")
        if password is None and not shared:
            password = secrets.token_urlsafe(9)
    moves.evacuate(req.ctx, uuid, req.request_id, body.get("host"))
    if v < move_schemas.EVACUATE_NO_PASSWORD:
        return json_response({"adminPass": password})
    return empty(200)


# ---------------------------------------------------------------- images

def _snapshot_image(req: Req, inst, name: str, metadata: dict, extra: dict | None = None) -> dict:
    """Create the (queued) snapshot image in the image service, as the user."""
    props = {k: v for k, v in ((inst.system_metadata or {}).get("image") or {}).items()
             if k in ("os_type", "hw_disk_bus", "hw_vif_model") and v}
    body = {"name": name, "disk_format": "qcow2", "container_format": "bare", **bfv.snapshot_minimums(inst),
            "image_type": "snapshot", "instance_uuid": inst.uuid, "user_id": inst.user_id,
            "base_image_ref": inst.image_ref or "", **props, **metadata, **(extra or {})}
    return clients.get().image.post("/v2/images", json=body, token=req.ctx.auth_token)


@action("createImage")
def create_image(req: Req, uuid: str, body):
    body = _dict(body, "createImage")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise errors.BadRequest("Invalid input for field/attribute name: 1-255 characters are required.")
    metadata = instances.check_metadata(body.get("metadata", {}))
    with db.session() as s:
        current = instances.get(s, req.ctx, uuid)
        quotas.check_image_metadata(s, current.project_id, len(metadata))
    if bfv.root_bdm(current.block_device_mapping) is not None:
        image = _snapshot_volume_backed(req, current, name, metadata)
        return _image_created(req, image["id"])
    if current.vm_state not in (states.ACTIVE, states.STOPPED, states.PAUSED, states.SUSPENDED):
        raise act._state_error(current, "createImage")
    image = _snapshot_image(req, current, name, metadata)
    try:
        inst = begin(req.ctx, uuid, "createImage", req.request_id,
                     vm_states=(states.ACTIVE, states.STOPPED, states.PAUSED, states.SUSPENDED),
                     task_state=states.IMAGE_SNAPSHOT, check_lock=False)
    except errors.ApiError:
        clients.get().image.delete(f"/v2/images/{image['id']}", ok=(204, 404))
        raise
    instances.cast_to_host(inst, "snapshot_instance", request_id=req.request_id, image_id=image["id"])
    return _image_created(req, image["id"])


def _image_created(req: Req, image_id: str):
    location = f"{views.base_url(req).rsplit('/compute', 1)[0]}/image/v2/images/{image_id}"
    if mv(req) >= Version(2, 45):
        return json_response({"image_id": image_id}, 202)
    return empty(202, headers={"Location": location})


def _snapshot_volume_backed(req: Req, current, name: str, metadata: dict) -> dict:
    """createImage of a volume-backed server (PAUSED is for image-backed ones only): the
    volumes are snapshotted and the image made here, while the server is marked busy."""
    if current.vm_state not in (states.ACTIVE, states.STOPPED, states.SUSPENDED):
        raise act._state_error(current, "createImage")
    inst = begin(req.ctx, current.uuid, "createImage", req.request_id,
                 vm_states=(states.ACTIVE, states.STOPPED, states.SUSPENDED),
                 task_state=states.IMAGE_SNAPSHOT, check_lock=False)
    try:
        return bfv.snapshot_to_image(req.ctx, inst, name, metadata)
    finally:
        try:
            instances.set_task(current.uuid, None, expected=(states.IMAGE_SNAPSHOT,))
        except errors.ApiError:
            pass  # deleted meanwhile, or another task took over


@action("shelve")
def shelve(req: Req, uuid: str, body):
    with db.session() as s:
        current = instances.get(s, req.ctx, uuid)
    if current.vm_state not in (states.ACTIVE, states.STOPPED, states.PAUSED, states.SUSPENDED):
        raise act._state_error(current, "shelve")
    # a volume-backed server is offloaded at once, its volumes kept: no image is made
    volume_backed = bfv.root_bdm(current.block_device_mapping) is not None
    image = None if volume_backed else _snapshot_image(req, current, f"{current.name}-shelved", {})
    try:
        inst = begin(req.ctx, uuid, "shelve", req.request_id,
                     vm_states=(states.ACTIVE, states.STOPPED, states.PAUSED, states.SUSPENDED),
                     task_state=states.SHELVING)
    except errors.ApiError:
        if image is not None:
            clients.get().image.delete(f"/v2/images/{image['id']}", ok=(204, 404))
        raise
    instances.cast_to_host(inst, "shelve_instance", request_id=req.request_id,
                           image_id=image["id"] if image else "")
    return empty(202)


@action("unshelve")
def unshelve(req: Req, uuid: str, body):
    ctx = req.ctx
    with db.session() as s:
        current = instances.get(s, ctx, uuid)
    if current.vm_state != states.SHELVED_OFFLOADED:
        raise act._state_error(current, "unshelve")
    inst = begin(ctx, uuid, "unshelve", req.request_id, vm_states=(states.SHELVED_OFFLOADED,),
                 task_state=states.UNSHELVING, need_host=False)
    dest = instances.select_destination(inst)
    if dest is None:
        instances.set_task(uuid, None, expected=(states.UNSHELVING,))
        raise errors.Conflict("No valid host was found to unshelve the server.")
    instances.set_task(uuid, states.UNSHELVING, expected=(states.UNSHELVING,), host=dest["host"],
                       node=dest["node"])
    inst.host = dest["host"]
    instances.cast_to_host(inst, "unshelve_instance", request_id=req.request_id)
    return empty(202)


# ---------------------------------------------------------------- consoles and security groups

@action("os-getConsoleOutput")
def console_output(req: Req, uuid: str, body):
    body = _dict(body, "os-getConsoleOutput")
    length = body.get("length")
    if length is not None:
        try:
            length = int(length)
        except (TypeError, ValueError):
            raise errors.BadRequest(f"Invalid input for field/attribute length. Value: {length}.") from None
        if length < -1:
            raise errors.BadRequest("Invalid input for field/attribute length: must be -1 or more.")
        if length == -1:
            length = None
    with db.session() as s:
        inst = instances.get(s, req.ctx, uuid)
        policies.authorize("servers:action", req.ctx, {"project_id": inst.project_id})
    if inst.vm_state in (states.BUILDING, states.SHELVED_OFFLOADED) or not inst.host:
        raise errors.Conflict(f"Instance {uuid} is not ready")
    output = instances.call_host(inst, "get_console_output", length=length)
    return json_response({"output": output})


@action("os-getVNCConsole")
def vnc_console(req: Req, uuid: str, body):
    body = _dict(body, "os-getVNCConsole")
    with db.session() as s:
        inst = instances.get(s, req.ctx, uuid)
        policies.authorize("servers:action", req.ctx, {"project_id": inst.project_id})
    return json_response({"console": consoles.get_vnc_console(req.ctx, inst, body.get("type", "novnc"))})


@action("os-getSerialConsole")
def serial_console(req: Req, uuid: str, body):
    body = _dict(body, "os-getSerialConsole")
    with db.session() as s:
        inst = instances.get(s, req.ctx, uuid)
        policies.authorize("servers:action", req.ctx, {"project_id": inst.project_id})
    return json_response({"console": consoles.get_serial_console(req.ctx, inst, body.get("type", "serial"))})


def _sg_change(req: Req, uuid: str, body, add: bool):
    body = _dict(body, "addSecurityGroup")
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise errors.BadRequest("Security group name cannot be empty")
    with db.session() as s:
        inst = instances.get(s, req.ctx, uuid)
        policies.authorize("servers:action", req.ctx, {"project_id": inst.project_id})
    net = clients.get().network  # the network calls happen outside any transaction
    known = net.get("/v2.0/security-groups", token=req.ctx.auth_token)["security_groups"]
    match = [g for g in known if g["name"] == name or g["id"] == name]
    if not match:
        raise errors.NotFound(f"Security group {name} not found for project {inst.project_id}.")
    sg = match[0]
    for vif in inst.network_info or []:
        port = net.get(f"/v2.0/ports/{vif['port_id']}")["port"]
        ids = list(port.get("security_groups") or [])
        if add and sg["id"] not in ids:
            ids.append(sg["id"])
        elif not add:
            if sg["id"] not in ids:
                raise errors.BadRequest(f"Security group {name} not associated with the instance {uuid}")
            ids.remove(sg["id"])
        net.put(f"/v2.0/ports/{vif['port_id']}", json={"port": {"security_groups": ids}})
    with db.transaction() as s:
        inst = instances.get(s, req.ctx, uuid)
        groups = list(inst.security_groups or [])
        if add and sg["name"] not in groups:
            groups.append(sg["name"])
        elif not add and sg["name"] in groups:
            groups.remove(sg["name"])
        inst.security_groups = groups
    return empty(202)


@action("addSecurityGroup")
def add_sg(req: Req, uuid: str, body):
    return _sg_change(req, uuid, body, True)


@action("removeSecurityGroup")
def remove_sg(req: Req, uuid: str, body):
    return _sg_change(req, uuid, body, False)


@action("changePassword")
def change_password(req: Req, uuid: str, body):
    with db.session() as s:
        instances.get(s, req.ctx, uuid)
    raise errors.NotImplementedYet("Unable to set password on instance: the guest agent needed for this is "
                                   "not supported.")


# ---------------------------------------------------------------- diagnostics

@api.route("/v2.1/servers/{server_id}/diagnostics", ["GET"])
def diagnostics(req: Req):
    policies.authorize("os-server-diagnostics", req.ctx)
    with db.session() as s:
        inst = instances.get(s, req.ctx, req.path["server_id"])
    if not inst.host or inst.vm_state == states.BUILDING:
        raise errors.Conflict(f"Instance {inst.uuid} is not ready")
    return json_response(instances.call_host(inst, "get_diagnostics"))
