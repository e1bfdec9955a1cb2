"""Validating a create-server request into a BuildRequest (book ch. 4, steps 1-3).

Everything a boot needs is checked here, before any row is written: the
flavor, the image (active, and fitting the flavor's memory and disk), the
networks and ports, security groups, keypair, availability zone, server group
and block device mappings. A bad request is a 400 naming the problem.
"""

from __future__ import annotations

import ipaddress
import secrets

import sqlalchemy as sa

from onestack.common import db, errors
from onestack.common.microversion import Version
from onestack.compute import clients, flavors, instances, policies
from onestack.compute import models as m

GiB = 1 << 30
KNOWN = {"name", "imageRef", "flavorRef", "networks", "security_groups", "key_name", "user_data", "metadata",
         "availability_zone", "config_drive", "min_count", "max_count", "return_reservation_id",
         "block_device_mapping_v2", "block_device_mapping", "description", "tags", "adminPass",
         "accessIPv4", "accessIPv6", "OS-DCF:diskConfig", "personality", "host", "hypervisor_hostname",
         "trusted_image_certificates", "hostname"}


def _bad(field: str, why: str) -> errors.BadRequest:
    return errors.BadRequest(f"Invalid input for field/attribute {field}. {why}")


def _count(body: dict, key: str, default: int) -> int:
    value = body.get(key, default)
    try:
        n = int(value)
        if isinstance(value, bool) or str(n) != str(value).strip():
            raise ValueError
    except (TypeError, ValueError):
        raise _bad(key, f"Value: {value}. {value!r} is not a valid integer") from None
    if n < 1:
        raise _bad(key, f"Value: {value}. {n} is less than the minimum of 1")
    return n


def validate(ctx, body: dict, hints: dict, v: Version) -> instances.BuildRequest:
    from onestack.compute.api.servers import check_ip, check_name

    extra = set(body) - KNOWN
    if extra:
        raise errors.BadRequest(f"Invalid input for field/attribute server. Additional properties are not "
                                f"allowed ({', '.join(sorted(extra))} was unexpected)")
    if "name" not in body:
        raise _bad("server", "'name' is a required property")
    name = check_name(body["name"])
    if "flavorRef" not in body:
        raise _bad("server", "'flavorRef' is a required property")
    flavor_ref = str(body["flavorRef"] or "").rstrip("/").rsplit("/", 1)[-1]
    if not flavor_ref:
        raise _bad("flavorRef", "Value: ''. '' is too short")
    min_count = _count(body, "min_count", 1)
    max_count = _count(body, "max_count", min_count)
    if min_count > max_count:
        raise errors.BadRequest("min_count must be <= max_count")
    metadata = instances.check_metadata(body.get("metadata", {}))
    user_data = instances.decode_user_data(body.get("user_data"))
    description = body.get("description")
    if description is not None:
        if v < Version(2, 19):
            raise errors.BadRequest("Invalid input for field/attribute server. Additional properties are not "
                                    "allowed (description was unexpected)")
        if not isinstance(description, str) or len(description) > 255:
            raise _bad("description", "a string of at most 255 characters is required")
    tags = body.get("tags", [])
    if tags:
        if v < Version(2, 52):
            raise errors.BadRequest("Invalid input for field/attribute server. Additional properties are not "
                                    "allowed (tags was unexpected)")
        from onestack.compute.api.servers import MAX_TAGS, _check_tag
        tags = [_check_tag(t) for t in tags]
        if len(tags) > MAX_TAGS:
            raise _bad("tags", f"at most {MAX_TAGS} tags")
    ipv4 = check_ip(body["accessIPv4"], 4, "accessIPv4") if body.get("accessIPv4") else None
    ipv6 = check_ip(body["accessIPv6"], 6, "accessIPv6") if body.get("accessIPv6") else None
    admin_pass = body.get("adminPass")
    if admin_pass is not None and not isinstance(admin_pass, str):
        raise _bad("adminPass", "must be a string")
    if admin_pass is None:
        admin_pass = secrets.token_urlsafe(9)
    config_drive = body.get("config_drive", False)
    config_drive = config_drive in (True, "True", "true", "1", 1) if config_drive != "" else False

    with db.session() as s:
        flavor = flavors.snapshot(flavors.usable(s, flavor_ref, ctx))
        key_name, key_data = body.get("key_name"), None
        if key_name is not None:
            from onestack.compute import keypairs

            key_data, _type = keypairs.get_public_key(s, ctx.user_id, key_name)
        az, force_host = _availability_zone(s, ctx, body, v)
        group = hints.get("group") if isinstance(hints, dict) else None
        if group is not None:
            g = s.scalar(sa.select(m.ServerGroup).where(m.ServerGroup.uuid == str(group)))
            if g is None or (g.project_id != ctx.project_id and not ctx.is_admin):
                raise errors.BadRequest(f"Invalid server group {group}.") if g is None else errors.NotFound(
                    f"Instance group {group} could not be found.")

    bdms = _block_devices(body, v)
    image_ref = body.get("imageRef", "")
    boot_image = next((b.get("uuid") for b in bdms if b.get("boot_index") in (0, "0")
                       and b.get("source_type") == "image" and b.get("destination_type", "local") == "local"), None)
    if boot_image and not image_ref:
        image_ref = boot_image
    image = None
    if image_ref:
        image_ref = str(image_ref).rstrip("/").rsplit("/", 1)[-1]
        image = _image(ctx, image_ref, flavor)
    elif not any(b.get("destination_type") == "volume" for b in bdms):
        raise errors.BadRequest("Invalid imageRef provided.") if "imageRef" in body else _bad(
            "server", "'imageRef' is a required property")
    networks = _networks(ctx, body, v, max_count)
    sgs = _security_groups(ctx, body, networks)
    return instances.BuildRequest(
        name=name, flavor=flavor, image=image, image_ref=image_ref or "", networks=networks,
        security_groups=sgs, key_name=key_name, key_data=key_data, user_data=user_data, metadata=metadata,
        availability_zone=az, force_host=force_host, config_drive=config_drive, min_count=min_count,
        max_count=max_count, description=description, tags=tags, block_device_mapping=bdms,
        access_ip_v4=ipv4, access_ip_v6=ipv6, admin_pass=admin_pass, group=group,
        hints=hints if isinstance(hints, dict) else {})


def _availability_zone(s, ctx, body: dict, v: Version) -> tuple[str | None, str | None]:
    from onestack.compute import settings

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
    if az:
        zones = set(s.scalars(sa.select(m.Service.zone).where(m.Service.binary == "nova-compute")))
        if az not in zones:
            raise errors.BadRequest("The requested availability zone is not available")
    return az or settings.current.availability_zone, host


def _block_devices(body: dict, v: Version) -> list[dict]:
    bdms = body.get("block_device_mapping_v2") or []
    if not isinstance(bdms, list):
        raise _bad("block_device_mapping_v2", "must be a list")
    out = []
    for b in bdms:
        if not isinstance(b, dict):
            raise _bad("block_device_mapping_v2", "items must be objects")
        src, dest = b.get("source_type"), b.get("destination_type", "local")
        if src not in ("image", "volume", "snapshot", "blank"):
            raise _bad("block_device_mapping_v2", f"source_type {src!r}: image, volume, snapshot or blank")
        if dest not in ("local", "volume"):
            raise _bad("block_device_mapping_v2", f"destination_type {dest!r}: local or volume")
        if dest == "volume" or src in ("volume", "snapshot"):
            raise errors.BadRequest("Block device mappings to volumes are not available: this cloud has no "
                                    "block storage service yet.")
        if src == "blank":
            raise errors.BadRequest("Blank local block devices (ephemeral/swap) are not supported.")
        out.append({"source_type": src, "destination_type": dest, "uuid": b.get("uuid"),
                    "boot_index": b.get("boot_index"), "delete_on_termination": b.get("delete_on_termination", True)})
    return out


def _image(ctx, image_id: str, flavor: dict) -> dict:
    if not instances.is_uuid(image_id):
        raise errors.BadRequest(f"Invalid image identifier or image {image_id} not found.") if False else \
            errors.BadRequest(f"Image {image_id} could not be found.")
    try:
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
    return {k: img.get(k) for k in ("id", "name", "disk_format", "container_format", "size", "virtual_size",
                                    "min_ram", "min_disk", "os_type", "hw_disk_bus", "hw_vif_model")}


def _networks(ctx, body: dict, v: Version, count: int):
    """``auto``/``none`` or the list of requested networks/ports, each checked with the user's token."""
    nets = body.get("networks")
    net = clients.get().network
    if nets is None:
        if v >= Version(2, 37):
            raise _bad("server", "'networks' is a required property")
        nets = "auto"
    if isinstance(nets, str):
        if v < Version(2, 37) or nets not in ("auto", "none"):
            raise _bad("networks", f"Value: {nets}. {nets!r} is not valid: 'auto', 'none' or a list")
        if nets == "none":
            return "none"
        return _auto_network(ctx)
    if not isinstance(nets, list):
        raise _bad("networks", "must be a list")
    out = []
    seen_ports = set()
    for item in nets:
        if not isinstance(item, dict):
            raise _bad("networks", "items must be objects")
        extra = set(item) - {"uuid", "port", "fixed_ip", "tag"}
        if extra:
            raise _bad("networks", f"Additional properties are not allowed ({', '.join(sorted(extra))} was "
                                   f"unexpected)")
        req = {}
        if item.get("port"):
            pid = item["port"]
            if not instances.is_uuid(pid):
                raise _bad("networks", f"port {pid!r} is not a UUID")
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
            if not nid or not instances.is_uuid(nid):
                raise errors.BadRequest(f"Bad networks format: network uuid is not in proper format ({nid})")
            try:
                network = net.get(f"/v2.0/networks/{nid}", token=ctx.auth_token)["network"]
            except errors.NotFound:
                raise errors.BadRequest(f"Network {nid} could not be found.") from None
            req = {"network_id": network["id"]}
            if item.get("fixed_ip"):
                try:
                    ipaddress.ip_address(item["fixed_ip"])
                except ValueError:
                    raise errors.BadRequest(f"Invalid fixed IP address ({item['fixed_ip']})") from None
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
    if not isinstance(groups, list):
        raise _bad("security_groups", "must be a list")
    names = []
    for g in groups:
        if not isinstance(g, dict) or not isinstance(g.get("name"), str) or not g["name"]:
            raise _bad("security_groups", "items must be {\"name\": <name or id>}")
        names.append(g["name"])
    names = list(dict.fromkeys(names))
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
