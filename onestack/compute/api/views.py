"""Wire format of servers (and their addresses, faults and actions), per microversion."""

from __future__ import annotations

import hashlib
from functools import lru_cache

from onestack.common.microversion import Version
from onestack.common.timeutils import iso
from onestack.compute import states
from onestack.compute.models import Instance

_PROGRESS_STATUSES = ("ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING")

# what each microversion adds to a server's body
_SINCE = {"extended_attributes": Version(2, 3), "delete_on_termination": Version(2, 3), "locked": Version(2, 9),
          "host_status": Version(2, 16), "description": Version(2, 19), "tags": Version(2, 26),
          "flavor_body": Version(2, 47), "trusted_image_certificates": Version(2, 63),
          "server_groups": Version(2, 71), "locked_reason": Version(2, 73)}


@lru_cache(maxsize=64)
def _shows(v: Version) -> frozenset[str]:
    """The parts of ``_SINCE`` that ``v`` shows (asked once per version, not once per server)."""
    return frozenset(part for part, since in _SINCE.items() if v >= since)


def base_url(req) -> str:
    """``http://host:port/compute`` (no version): links are built from it."""
    return str(req.url.replace(query="", fragment="")).split("/v2.1")[0].rstrip("/")


def links(base: str, kind: str, ident: str, project: str | None = None) -> list[dict]:
    return [{"rel": "self", "href": f"{base}/v2.1/{kind}/{ident}"},
            {"rel": "bookmark", "href": f"{base}/{kind}/{ident}"}]


def host_id(inst: Instance) -> str:
    """Nova's hostId: the host hashed with the project, so projects can't map the cloud."""
    if not inst.host:
        return ""
    return _host_id(inst.project_id, inst.host)


@lru_cache(maxsize=4096)
def _host_id(project_id: str, host: str) -> str:
    return hashlib.sha224((project_id + host).encode()).hexdigest()


def addresses(inst: Instance) -> dict:
    out: dict[str, list] = {}
    for vif in inst.network_info or []:
        entries = out.setdefault(vif.get("network_name") or vif["network_id"], [])
        for ip in vif.get("fixed_ips", []):
            entries.append({"version": ip.get("version", 4), "addr": ip["ip_address"],
                            "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": vif["mac"]})
            for fip in ip.get("floating_ips", []):
                entries.append({"version": 4, "addr": fip, "OS-EXT-IPS:type": "floating",
                                "OS-EXT-IPS-MAC:mac_addr": vif["mac"]})
    return out


def fault(inst: Instance, admin: bool) -> dict | None:
    f = inst.fault
    if not f or inst.vm_state not in (states.ERROR, states.DELETED):
        return None
    out = {"code": f.get("code", 500), "created": f.get("created"), "message": f.get("message", "")}
    if f.get("details") and (admin or out["code"] != 500):
        out["details"] = f["details"]
    return out


def flavor(inst: Instance, v: Version, base: str) -> dict:
    f = inst.flavor or {}
    if "flavor_body" in _shows(v):
        out = {"vcpus": f.get("vcpus"), "ram": f.get("memory_mb"), "disk": f.get("root_gb"),
               "ephemeral": f.get("ephemeral_gb", 0), "swap": f.get("swap", 0),
               "original_name": f.get("name")}
        out["extra_specs"] = dict(f.get("extra_specs") or {})
        return out
    return {"id": f.get("id"), "links": [{"rel": "bookmark", "href": f"{base}/flavors/{f.get('id')}"}]}


def image(inst: Instance, base: str):
    if not inst.image_ref:
        return ""  # booted from a volume
    return {"id": inst.image_ref, "links": [{"rel": "bookmark", "href": f"{base}/images/{inst.image_ref}"}]}


def volumes_attached(inst: Instance, v: Version) -> list[dict]:
    out = []
    for bdm in inst.block_device_mapping or []:
        if bdm.get("destination_type") == "volume" and bdm.get("volume_id"):
            item = {"id": bdm["volume_id"]}
            if "delete_on_termination" in _shows(v):
                item["delete_on_termination"] = bool(bdm.get("delete_on_termination"))
            out.append(item)
    return out


def summary(inst: Instance, base: str) -> dict:
    return {"id": inst.uuid, "name": inst.name, "links": links(base, "servers", inst.uuid)}


_MINIMAL = ("id", "name", "status", "tenant_id", "user_id", "metadata", "hostId", "image", "flavor", "created",
            "updated", "addresses", "accessIPv4", "accessIPv6", "links", "OS-DCF:diskConfig", "progress",
            "fault", "locked", "description", "tags", "trusted_image_certificates", "locked_reason",
            "server_groups")


def server(inst: Instance, v: Version, base: str, *, admin: bool, host_status: str | None = None,
           groups: list[str] | None = None, minimal: bool = False) -> dict:
    """One server as ``GET /servers/{id}`` and ``/servers/detail`` show it; ``minimal``: the
    fewer fields update and rebuild answered with before 2.75."""
    out = _server(inst, v, base, admin=admin, host_status=host_status, groups=groups)
    if minimal and v < Version(2, 75):
        out = {k: out[k] for k in _MINIMAL if k in out}
        out["addresses"] = {net: [{"version": a["version"], "addr": a["addr"]} for a in items]
                            for net, items in out["addresses"].items()}
    return out


def _server(inst: Instance, v: Version, base: str, *, admin: bool, host_status: str | None,
            groups: list[str] | None) -> dict:
    out = {
        "id": inst.uuid, "name": inst.name, "status": states.status(inst.vm_state, inst.task_state),
        "tenant_id": inst.project_id, "user_id": inst.user_id, "metadata": dict(inst.metadata_ or {}),
        "hostId": host_id(inst), "image": image(inst, base), "flavor": flavor(inst, v, base),
        "created": iso(inst.created_at), "updated": iso(inst.updated_at),
        "addresses": addresses(inst), "accessIPv4": inst.access_ip_v4 or "",
        "accessIPv6": inst.access_ip_v6 or "", "links": links(base, "servers", inst.uuid),
        "OS-DCF:diskConfig": "MANUAL", "progress": inst.progress or 0,
        "OS-EXT-AZ:availability_zone": inst.availability_zone or "",
        "config_drive": "True" if inst.config_drive else "", "key_name": inst.key_name,
        "OS-SRV-USG:launched_at": iso(inst.launched_at, micro=True)[:-1] if inst.launched_at else None,
        "OS-SRV-USG:terminated_at": iso(inst.terminated_at, micro=True)[:-1] if inst.terminated_at else None,
        "OS-EXT-STS:task_state": inst.task_state, "OS-EXT-STS:vm_state": inst.vm_state,
        "OS-EXT-STS:power_state": inst.power_state or 0,
        "os-extended-volumes:volumes_attached": volumes_attached(inst, v),
    }
    if out["status"] not in _PROGRESS_STATUSES:
        out.pop("progress")
    if inst.security_groups is not None and inst.vm_state != states.DELETED:
        out["security_groups"] = [{"name": n} for n in inst.security_groups]
    f = fault(inst, admin)
    if f:
        out["fault"] = f
    shows = _shows(v)
    if admin:
        out["OS-EXT-SRV-ATTR:host"] = inst.host
        out["OS-EXT-SRV-ATTR:instance_name"] = f"instance-{inst.uuid[:8]}"
        out["OS-EXT-SRV-ATTR:hypervisor_hostname"] = inst.node
        if "extended_attributes" in shows:
            out.update({"OS-EXT-SRV-ATTR:reservation_id": inst.reservation_id,
                        "OS-EXT-SRV-ATTR:launch_index": inst.launch_index,
                        "OS-EXT-SRV-ATTR:hostname": inst.hostname,
                        "OS-EXT-SRV-ATTR:kernel_id": "", "OS-EXT-SRV-ATTR:ramdisk_id": "",
                        "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda",
                        "OS-EXT-SRV-ATTR:user_data": inst.user_data})
    if "locked" in shows:
        out["locked"] = bool(inst.locked)
    if "host_status" in shows and host_status is not None:
        out["host_status"] = host_status
    if "description" in shows:
        out["description"] = inst.description
    if "tags" in shows:
        out["tags"] = list(inst.tags or [])
    if "trusted_image_certificates" in shows:
        out["trusted_image_certificates"] = None
    if "server_groups" in shows and groups is not None:
        out["server_groups"] = groups
    if "locked_reason" in shows:
        out["locked_reason"] = inst.locked_reason if inst.locked else None
    return out


def action(a, events: list | None, v: Version, show_details: bool) -> dict:
    out = {"action": a.action, "instance_uuid": a.instance_uuid, "request_id": a.request_id,
           "user_id": a.user_id, "project_id": a.project_id, "start_time": iso_ms(a.start_time),
           "message": a.message}
    if v >= Version(2, 58):
        out["updated_at"] = iso_ms(a.updated_at)
    if events is not None:
        evs = []
        for e in events:
            ev = {"event": e.event, "start_time": iso_ms(e.start_time), "finish_time": iso_ms(e.finish_time),
                  "result": e.result}
            if show_details:
                ev["traceback"] = e.traceback
            if v >= Version(2, 62):
                ev["hostId"] = hashlib.sha224((a.project_id + (e.host or "")).encode()).hexdigest() if e.host else ""
                if show_details:
                    ev["host"] = e.host or ""
            if v >= Version(2, 84) and show_details:
                ev["details"] = e.details
            evs.append(ev)
        out["events"] = evs
    return out


def iso_ms(dt) -> str | None:
    return iso(dt, micro=True)[:-1] if dt else None
