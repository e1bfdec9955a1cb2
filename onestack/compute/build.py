"""Validating a create-server request into a BuildRequest (book ch. 4, steps 1-3).

Everything a boot needs is checked here, before any row is written: the
flavor, the image (active, and fitting the flavor's memory and disk), the
networks and ports, security groups, keypair, availability zone, server group
and block device mappings. A bad request is a 400 naming the problem.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa

from onestack.common import booleans, db, errors
from onestack.common.microversion import Version
from onestack.compute import (
    aggregates,
    bfv,
    clients,
    flavors,
    instances,
    keypairs,
    policies,
    quotas,
)
from onestack.compute import models as m

GiB = 1 << 30


def _bad(field: str, why: str) -> errors.BadRequest:
    return errors.BadRequest(f"Invalid input for field/attribute {field}. {why}")


def validate(ctx, body: dict, hints: dict, v: Version) -> instances.BuildRequest:
    """``body``: the request's ``server``, already checked against its microversion's schema
    (compute.schemas.servers); what needs the database or another service is checked here."""
    name = body["name"]
    flavor_ref = str(body["flavorRef"]).rstrip("/").rsplit("/", 1)[-1]
    if not flavor_ref:
        raise _bad("flavorRef", f"Value: {body['flavorRef']}. It names no flavor")
    min_count = int(body.get("min_count", 1))
    max_count = int(body.get("max_count", min_count))
    if min_count > max_count:
        raise errors.BadRequest("min_count must be <= max_count")
    metadata = body.get("metadata", {})
    user_data = body.get("user_data")
    description = body.get("description")
    tags = list(dict.fromkeys(body.get("tags") or []))
    ipv4 = instances.check_ip(body["accessIPv4"], 4, "accessIPv4") if "accessIPv4" in body else None
    ipv6 = instances.check_ip(body["accessIPv6"], 6, "accessIPv6") if "accessIPv6" in body else None
    admin_pass = body.get("adminPass")
    if admin_pass is None:
        admin_pass = secrets.token_urlsafe(9)
    config_drive = booleans.to_bool(body.get("config_drive", False))

    with db.session() as s:
        quotas.check_metadata(s, ctx.project_id, len(metadata))
        flavor = flavors.snapshot(flavors.usable(s, flavor_ref, ctx))
        key_name, key_data = body.get("key_name"), None
        if key_name is not None:
            key_data, _type = keypairs.get_public_key(s, ctx.user_id, key_name)
        az, force_host = _availability_zone(s, ctx, body, v)
        group = hints.get("group")
        if isinstance(group, list):  # (the schema takes a list of one too)
            group = group[0] if group else None
        if group is not None:
            g = s.scalar(sa.select(m.ServerGroup).where(m.ServerGroup.uuid == str(group)))
            if g is None or (g.project_id != ctx.project_id and not ctx.is_admin):
                raise errors.BadRequest(f"Invalid server group {group}.") if g is None else errors.NotFound(
                    f"Instance group {group} could not be found.")

    body, fetched, defined_by = _image_defined_mappings(ctx, body)
    bdms = _block_devices(ctx, body, v, max_count)
    image_ref = body.get("imageRef", "")
    boot_volume = volume_backed(bdms)
    boot_image = next((b.get("uuid") for b in bdms if b.get("boot_index") == 0
                       and b.get("source_type") == "image" and b.get("destination_type", "local") == "local"), None)
    if boot_image and not image_ref:
        image_ref = boot_image
    image = None
    if boot_volume is not None:
        # booted from a volume: no image of its own (the API shows image ""), unless the image
        # asked for maps its root to a volume (a volume-backed server's snapshot); the image
        # (if any) still has to fit the flavor's memory, not its disk
        image_ref = defined_by["id"] if defined_by else ""
        image = _image_view(defined_by) if defined_by else (boot_volume.get("image_meta") or None)
        if image and _int(image.get("min_ram")) > flavor["memory_mb"]:
            raise errors.BadRequest("Flavor's memory is too small for requested image.")
    elif image_ref:
        image_ref = str(image_ref).rstrip("/").rsplit("/", 1)[-1]
        image = _image(ctx, image_ref, flavor, fetched)
    else:
        raise errors.BadRequest("Invalid imageRef provided.") if "imageRef" in body else _bad(
            "server", "'imageRef' is a required property")
    if max_count > 1 and any(b["destination_type"] == "volume" for b in bdms):
        raise errors.BadRequest("Block Device Mapping is Invalid: volumes can be requested for one server at "
                                "a time.")
    networks = _networks(ctx, body, max_count)
    sgs = _security_groups(ctx, body, networks)
    return instances.BuildRequest(
        name=name, flavor=flavor, image=image, image_ref=image_ref or "", networks=networks,
        security_groups=sgs, key_name=key_name, key_data=key_data, user_data=user_data, metadata=metadata,
        availability_zone=az, force_host=force_host, config_drive=config_drive, min_count=min_count,
        max_count=max_count, description=description, tags=tags, block_device_mapping=bdms,
        access_ip_v4=ipv4, access_ip_v6=ipv6, admin_pass=admin_pass, group=group,
        hints=hints)


def _availability_zone(s, ctx, body: dict, v: Version) -> tuple[str | None, str | None]:
    az = body.get("availability_zone")
    host = None
    if az is not None and not isinstance(az, str):
        raise _bad("availability_zone", "must be a string")
    if az and ":" in az:
        az, _, host = az.partition(":")
        host = host.split(":")[0] or None
        if host:
            policies.authorize("servers:create:forced_host", ctx)
    if v >= Version(2, 74) and (body.get("host") or body.get("hypervisor_hostname")):
        policies.authorize("servers:create:requested_destination", ctx)
        host = body.get("host") or body.get("hypervisor_hostname")
        if not s.scalar(sa.select(m.ComputeNode).where(m.ComputeNode.host == host)):
            raise errors.BadRequest(f"Compute host {host} could not be found.")
    # a zone of an enabled compute host (a forced host needs none, as in Nova); no zone
    # asked: any host, and the server takes its host's zone when scheduled
    if az and not host and az not in aggregates.available_zones(s):
        raise errors.BadRequest(f"The requested availability zone is not available: {az}")
    return az or None, host


def _flag(value, default: bool) -> bool:
    return default if value is None else booleans.to_bool(value)


def _int(value) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _boot_index(b: dict):
    bi = b.get("boot_index")
    if bi is None or bi == "" or str(bi).strip().lower() == "none":
        return None
    try:
        bi = int(bi)
    except (TypeError, ValueError):
        raise _bad("block_device_mapping_v2", f"boot_index {bi!r} is not an integer") from None
    return None if bi < 0 else bi


def _block_devices(ctx, body: dict, v: Version, max_count: int = 1) -> list[dict]:
    """The block device mappings: local images (the root disk) and volumes, each volume source
    checked with the user's token (volumes to be made from an image, a snapshot or nothing are
    created when the server's row exists: see create_volumes)."""
    out = []
    for b in body.get("block_device_mapping_v2") or []:
        src, dest = b.get("source_type"), b.get("destination_type") or "local"
        # (the request's mappings passed their schema; an image's own are checked here)
        if src not in ("image", "volume", "snapshot", "blank"):
            raise _bad("block_device_mapping_v2", f"source_type {src!r}: image, volume, snapshot or blank")
        if dest not in ("local", "volume"):
            raise _bad("block_device_mapping_v2", f"destination_type {dest!r}: local or volume")
        if src == "blank" and dest == "local":
            raise errors.BadRequest("Blank local block devices (ephemeral/swap) are not supported.")
        if dest == "local" and src != "image":
            raise errors.BadRequest(f"Block Device Mapping is Invalid: source_type {src} needs "
                                    f"destination_type volume.")
        boot_index = _boot_index(b)
        if dest == "local":
            out.append({"source_type": src, "destination_type": dest, "uuid": b.get("uuid"),
                        "boot_index": boot_index, "delete_on_termination": _flag(b.get("delete_on_termination"),
                                                                                 True)})
            continue
        out.append(_volume_mapping(ctx, b, src, boot_index, max_count))
    boots = [b for b in out if b["boot_index"] == 0]
    if len(boots) > 1:
        raise errors.BadRequest("Block Device Mapping is Invalid: Boot sequence for the instance and image/block "
                                "device mapping combination is not valid.")
    # device names: the root disk vda, then the volumes in order (vdb, vdc, ...)
    used = {"vda"}
    for b in out:
        if b["destination_type"] != "volume":
            continue
        if b["boot_index"] == 0:
            b["device"] = "/dev/vda"
            continue
        b["device"] = instances.next_device(used)
        used.add(b["device"].removeprefix("/dev/"))
    return out


def _volume_mapping(ctx, b: dict, src: str, boot_index, max_count: int) -> dict:
    item = {"source_type": src, "destination_type": "volume", "uuid": b.get("uuid"), "boot_index": boot_index,
            "delete_on_termination": _flag(b.get("delete_on_termination"), False), "volume_id": None,
            "attachment_id": None, "tag": b.get("tag"), "image_meta": None}
    size = b.get("volume_size")
    if size not in (None, ""):
        try:
            size = int(size)
            if size < 1:
                raise ValueError
        except (TypeError, ValueError):
            raise _bad("block_device_mapping_v2", f"volume_size {b.get('volume_size')!r} is not a positive "
                                                  f"integer") from None
    else:
        size = None
    if src in ("image", "blank") and not size:
        raise errors.BadRequest(f"Block Device Mapping is Invalid: {'Images' if src == 'image' else 'Blank volumes'}"
                                f" with destination_type 'volume' need to have a non-zero size specified.")
    if src != "blank" and not instances.is_uuid(item["uuid"]):
        raise errors.BadRequest(f"Block Device Mapping is Invalid: {src} uuid {item['uuid']!r} is not a UUID.")
    vc = clients.get().volume
    if src == "volume":
        if max_count > 1:
            raise errors.BadRequest("Block Device Mapping is Invalid: Cannot attach one or more volumes to "
                                    "multiple instances.")
        try:
            vol = vc.get(f"/volumes/{item['uuid']}", token=ctx.auth_token)["volume"]
        except errors.NotFound:
            raise errors.BadRequest(f"Block Device Mapping is Invalid: failed to get volume {item['uuid']}.") from None
        if vol["status"] != "available":
            raise errors.BadRequest(f"Block Device Mapping is Invalid: Volume {vol['id']} status must be "
                                    f"'available', it is '{vol['status']}'.")
        if boot_index == 0 and not booleans.to_bool(vol.get("bootable")):
            raise errors.BadRequest(f"Block Device Mapping is Invalid: Volume {vol['id']} is not bootable.")
        item["volume_id"] = vol["id"]
        size = vol["size"]
        meta = vol.get("volume_image_metadata") or {}
        item["image_meta"] = {"id": meta.get("image_id"), "name": meta.get("image_name"),
                              "disk_format": meta.get("disk_format"),
                              "container_format": meta.get("container_format"),
                              "min_ram": _int(meta.get("min_ram")), "min_disk": _int(meta.get("min_disk"))} \
            if meta else None
    elif src == "snapshot":
        try:
            snap = vc.get(f"/snapshots/{item['uuid']}", token=ctx.auth_token)["snapshot"]
        except errors.NotFound:
            raise errors.BadRequest(f"Block Device Mapping is Invalid: failed to get snapshot "
                                    f"{item['uuid']}.") from None
        if snap["status"] != "available":
            raise errors.BadRequest(f"Block Device Mapping is Invalid: Snapshot {snap['id']} status must be "
                                    f"'available', it is '{snap['status']}'.")
        size = max(size or 0, snap["size"])
    elif src == "image":
        try:
            img = clients.get().image.get(f"/v2/images/{item['uuid']}", token=ctx.auth_token)
        except errors.NotFound:
            raise errors.BadRequest(f"Image {item['uuid']} could not be found.") from None
        if img.get("status") != "active":
            raise errors.BadRequest(f"Image {item['uuid']} is not active.")
        if (img.get("min_disk") or 0) > size or max(img.get("size") or 0, img.get("virtual_size") or 0) > size * GiB:
            raise errors.BadRequest(f"Volume is smaller than the minimum size specified in image metadata. "
                                    f"Volume size is {size * GiB} bytes, image {item['uuid']} needs more.")
        item["image_meta"] = _image_view(img)
    item["volume_size"] = size
    return item


def volume_backed(bdms) -> dict | None:
    """The boot mapping of a server booted from a volume, else None."""
    return next((b for b in bdms or [] if b.get("boot_index") == 0 and b.get("destination_type") == "volume"),
                None)


def create_volumes(ctx, uuid: str, bdms: list[dict]) -> list[dict]:
    """Make the server's volumes (from an image, a snapshot or blank) and reserve the existing
    ones with the user's token, so the volumes belong to the user's project; the compute agent
    waits for them, connects and attaches. On failure what was made is undone."""
    vc = clients.get().volume
    made: list[tuple[str, str]] = []
    out = []
    try:
        for b in bdms:
            b = dict(b)
            if b.get("destination_type") == "volume":
                if b["source_type"] == "volume":
                    att = vc.post("/attachments", json={"attachment": {"volume_uuid": b["volume_id"],
                                                                       "instance_uuid": uuid}},
                                  token=ctx.auth_token)["attachment"]
                    b["attachment_id"] = att["id"]
                    made.append(("attachment", att["id"]))
                else:
                    body = {"size": b["volume_size"], "name": "",
                            "description": f"volume of server {uuid}"}
                    if b["source_type"] == "image":
                        body["imageRef"] = b["uuid"]
                    elif b["source_type"] == "snapshot":
                        body["snapshot_id"] = b["uuid"]
                    vol = vc.post("/volumes", json={"volume": body}, token=ctx.auth_token)["volume"]
                    b["volume_id"] = vol["id"]
                    made.append(("volume", vol["id"]))
            out.append(b)
    except Exception:
        for kind, ident in reversed(made):
            try:
                if kind == "attachment":
                    vc.delete(f"/attachments/{ident}", ok=(200, 204, 404))
                else:  # still being made: only a forced delete takes it
                    vc.delete(f"/volumes/{ident}", params={"force": "true"}, ok=(202, 204, 404))
            except errors.ApiError:
                pass
        raise
    return out


def _image_view(img: dict) -> dict:
    return {k: img.get(k) for k in ("id", "name", "disk_format", "container_format", "size", "virtual_size",
                                    "min_ram", "min_disk", "os_type", "hw_disk_bus", "hw_vif_model")}


def _image_defined_mappings(ctx, body: dict) -> tuple[dict, dict | None, dict | None]:
    """(request, boot image as fetched, the image again if its properties define block device
    mappings: the snapshot of a volume-backed server), those mappings merged into the request."""
    ref = str(body.get("imageRef") or "").rstrip("/").rsplit("/", 1)[-1]
    requested = body.get("block_device_mapping_v2") or []
    if not instances.is_uuid(ref) or not isinstance(requested, list):
        return body, None, None
    if any(isinstance(b, dict) and _boot_index(b) == 0 and b.get("destination_type") == "volume"
           for b in requested):
        return body, None, None  # the request names its own root volume
    try:
        img = clients.get().image.get(f"/v2/images/{ref}", token=ctx.auth_token)
    except errors.NotFound:
        return body, None, None  # said by _image
    mappings = bfv.image_mappings(img)
    if mappings is None:
        return body, img, None
    if img.get("status") != "active":
        raise errors.BadRequest(f"Image {ref} is not active.")
    return {**body, "block_device_mapping_v2": bfv.merge_mappings(mappings, requested)}, img, img


def _image(ctx, image_id: str, flavor: dict, img: dict | None = None) -> dict:
    if not instances.is_uuid(image_id):
        raise errors.BadRequest(f"Invalid image identifier or image {image_id} not found.") if False else \
            errors.BadRequest(f"Image {image_id} could not be found.")
    try:
        if img is None or img.get("id") != image_id:
            img = clients.get().image.get(f"/v2/images/{image_id}", token=ctx.auth_token)
    except errors.NotFound:
        raise errors.BadRequest(f"Image {image_id} could not be found.") from None
    if img.get("status") != "active":
        raise errors.BadRequest(f"Image {image_id} is not active.")
    if (img.get("min_ram") or 0) > flavor["memory_mb"]:
        raise errors.BadRequest("Flavor's memory is too small for requested image.")
    root = flavor["root_gb"] * GiB
    if root:
        if (img.get("min_disk") or 0) > flavor["root_gb"]:
            raise errors.BadRequest("Flavor's disk is too small for requested image.")
        size = max(img.get("size") or 0, img.get("virtual_size") or 0)
        if size > root:
            raise errors.BadRequest(f"Flavor's disk is too small for requested image. Flavor disk is {root} "
                                    f"bytes, image is {size} bytes.")
    return _image_view(img)


def _networks(ctx, body: dict, count: int):
    """``auto``/``none`` or the list of requested networks/ports, each checked with the user's token."""
    nets = body.get("networks", "auto")  # (required from 2.37: the schema says so)
    net = clients.get().network
    if nets == "none":
        return "none"
    if nets == "auto":
        return _auto_network(ctx)
    out = []
    seen_ports = set()
    for item in nets:
        req = {}
        if item.get("port"):
            pid = item["port"]
            if count > 1:
                raise errors.Conflict("Unable to launch multiple instances with a single configured port ID. "
                                      "Please launch your instance one by one with different ports.")
            try:
                port = net.get(f"/v2.0/ports/{pid}", token=ctx.auth_token)["port"]
            except errors.NotFound:
                raise errors.NotFound(f"Port id {pid} could not be found.") from None
            if port.get("device_id"):
                raise errors.Conflict(f"Port {pid} is still in use.")
            if pid in seen_ports:
                raise errors.BadRequest(f"Port {pid} is requested more than once.")
            seen_ports.add(pid)
            req = {"port": pid, "network_id": port["network_id"]}
        else:
            nid = item.get("uuid")
            if not nid or not instances.is_uuid(nid):  # (before 2.37 the schema takes any string)
                raise errors.BadRequest(f"Bad networks format: network uuid is not in proper format ({nid})")
            try:
                network = net.get(f"/v2.0/networks/{nid}", token=ctx.auth_token)["network"]
            except errors.NotFound:
                raise errors.BadRequest(f"Network {nid} could not be found.") from None
            req = {"network_id": network["id"]}
            if item.get("fixed_ip"):
                if count > 1:
                    raise errors.BadRequest("max_count cannot be greater than 1 if an fixed_ip is specified.")
                req["fixed_ip"] = item["fixed_ip"]
        if item.get("tag"):
            req["tag"] = item["tag"]
        out.append(req)
    return out


def _auto_network(ctx):
    """Nova's 'auto': the one network this project can use; several is ambiguous."""
    net = clients.get().network
    nets = [n for n in net.get("/v2.0/networks", token=ctx.auth_token)["networks"]
            if not n.get("router:external") and n.get("status") == "ACTIVE"]
    own = [n for n in nets if n.get("project_id") == ctx.project_id]
    candidates = own or [n for n in nets if n.get("shared")]
    if not candidates:
        return "none"  # nothing to attach to: Nova would auto-allocate a topology; this cloud does not
    if len(candidates) > 1:
        raise errors.Conflict("Multiple possible networks found, use a Network ID to be more specific.")
    return [{"network_id": candidates[0]["id"]}]


def _security_groups(ctx, body: dict, networks) -> list[str]:
    groups = body.get("security_groups")
    if groups is None:
        return ["default"]
    names = list(dict.fromkeys(g["name"] for g in groups if g.get("name")))
    if networks == "none":
        return names
    known = clients.get().network.get("/v2.0/security-groups", token=ctx.auth_token,
                                      params={"fields": ["id", "name", "project_id"]})["security_groups"]
    for n in names:
        if n == "default":
            continue
        if not any(g["name"] == n or g["id"] == n for g in known):
            raise errors.BadRequest(f"Security group {n} not found for project {ctx.project_id}.")
    return names
