"""A server's ports: made, bound to the host and described (book ch. 4, step 9).

The compute agent asks the network service (with the ``nova`` service token:
binding ports is an admin act) for a port per requested network, bound to its
host, owned by the server's project; the answer becomes the server's VIFs
(``network_info``): MAC, fixed IPs with their subnets, the bridge and tap the
guest's NIC plugs into.
"""

from __future__ import annotations

import logging

from onestack.common import errors
from onestack.compute import clients

log = logging.getLogger(__name__)


# Neutron's Linux bridge names, which the network agent makes too: a prefix and the
# start of the id, cut to the kernel's 15 characters (as Nova computes a VIF's tap name).
IFNAMSIZ = 15


def bridge_name(network_id: str) -> str:
    return ("brq" + network_id.replace("-", ""))[:IFNAMSIZ]


def tap_name(port_id: str) -> str:
    return ("tap" + port_id.replace("-", ""))[:IFNAMSIZ]


def security_group_ids(project_id: str, names: list[str]) -> list[str] | None:
    """Security group ids for names (None: the network's default group applies)."""
    if not names or names == ["default"]:
        return None
    net = clients.get().network
    groups = net.get("/v2.0/security-groups", params={"project_id": project_id})["security_groups"]
    out = []
    for n in names:
        match = [g["id"] for g in groups if g["id"] == n or g["name"] == n]
        if not match:
            raise errors.BadRequest(f"Security group {n} not found for project {project_id}.")
        out.append(match[0])
    return out


def allocate(inst: dict, host: str) -> list[dict]:
    """Ports for every requested network, bound to ``host``; the VIFs. All or nothing."""
    requested = inst.get("requested_networks") or []
    if requested == "none" or not requested:
        return []
    net = clients.get().network
    owner = "compute:" + (inst.get("availability_zone") or "nova")
    sgs = security_group_ids(inst["project_id"], inst.get("security_groups") or [])
    made, vifs = [], []
    try:
        for req in requested:
            binding = {"device_id": inst["uuid"], "device_owner": owner, "binding:host_id": host}
            if req.get("port"):
                port = net.put(f"/v2.0/ports/{req['port']}", json={"port": binding})["port"]
                port["_preserve"] = True
            else:
                body = {"network_id": req["network_id"], "project_id": inst["project_id"], **binding}
                if req.get("fixed_ip"):
                    body["fixed_ips"] = [{"ip_address": req["fixed_ip"]}]
                if sgs is not None:
                    body["security_groups"] = sgs
                port = net.post("/v2.0/ports", json={"port": body})["port"]
                made.append(port["id"])
            vifs.append(describe(port, preserve=bool(port.get("_preserve")), tag=req.get("tag")))
    except Exception:
        deallocate(inst["uuid"], [{"port_id": p} for p in made] + [
            {"port_id": r["port"], "preserve": True} for r in requested if r.get("port")])
        raise
    return vifs


def describe(port: dict, preserve: bool = False, tag: str | None = None) -> dict:
    """One VIF of network_info, from a port and its network and subnets."""
    net = clients.get().network
    network = net.get(f"/v2.0/networks/{port['network_id']}")["network"]
    subnets = {}
    ids = sorted({ip["subnet_id"] for ip in port.get("fixed_ips", [])})
    if ids:
        for sn in net.get("/v2.0/subnets", params={"id": ids})["subnets"]:
            subnets[sn["id"]] = sn
    fixed = []
    fips = _floating_ips(port["id"])
    for ip in port.get("fixed_ips", []):
        sn = subnets.get(ip["subnet_id"], {})
        fixed.append({"ip_address": ip["ip_address"], "subnet_id": ip["subnet_id"],
                      "version": sn.get("ip_version", 4), "cidr": sn.get("cidr"),
                      "gateway": sn.get("gateway_ip"), "dns": sn.get("dns_nameservers", []),
                      "routes": sn.get("host_routes", []), "enable_dhcp": sn.get("enable_dhcp", True),
                      "floating_ips": fips.get(ip["ip_address"], [])})
    return {"port_id": port["id"], "network_id": port["network_id"], "network_name": network.get("name"),
            "mac": port["mac_address"], "mtu": network.get("mtu"), "bridge": bridge_name(port["network_id"]),
            "tap": tap_name(port["id"]), "fixed_ips": fixed, "preserve": preserve, "tag": tag,
            "vif_type": port.get("binding:vif_type")}


def _floating_ips(port_id: str) -> dict[str, list[str]]:
    fips = clients.get().network.get("/v2.0/floatingips", params={"port_id": port_id})["floatingips"]
    out: dict[str, list[str]] = {}
    for f in fips:
        out.setdefault(f.get("fixed_ip_address"), []).append(f["floating_ip_address"])
    return out


def refresh(instance_uuid: str, vifs: list[dict]) -> list[dict]:
    """network_info again from the network service (floating IPs come and go)."""
    net = clients.get().network
    ports = net.get("/v2.0/ports", params={"device_id": instance_uuid})["ports"]
    known = {v["port_id"]: v for v in vifs}
    return [describe(p, preserve=known.get(p["id"], {}).get("preserve", False),
                     tag=known.get(p["id"], {}).get("tag")) for p in ports]


def rebind(vifs: list[dict], host: str) -> list[dict]:
    """The server's ports bound to ``host`` (its guest moved there; the network agent of
    that host wires them up); the VIFs as the network service now describes them."""
    net = clients.get().network
    out = []
    for vif in vifs:
        port = net.put(f"/v2.0/ports/{vif['port_id']}", json={"port": {"binding:host_id": host}})["port"]
        out.append(describe(port, preserve=bool(vif.get("preserve")), tag=vif.get("tag")))
    return out


def bind(inst: dict, port_id: str, host: str, preserve: bool, tag: str | None = None) -> dict:
    """A port hot-plugged into the server: made its own and bound to ``host``, as
    ``allocate`` binds a port at boot (the network agent of that host wires its tap); its VIF."""
    owner = "compute:" + (inst.get("availability_zone") or "nova")
    port = clients.get().network.put(f"/v2.0/ports/{port_id}", json={"port": {
        "device_id": inst["uuid"], "device_owner": owner, "binding:host_id": host}})["port"]
    return describe(port, preserve=preserve, tag=tag)


def release(vif: dict) -> None:
    """One port let go of: deleted if it was made for the server, unbound if the user gave it
    (Nova's preserve_on_delete)."""
    net = clients.get().network
    try:
        if vif.get("preserve"):
            net.put(f"/v2.0/ports/{vif['port_id']}", json={"port": {
                "device_id": "", "device_owner": "", "binding:host_id": ""}})
        else:
            net.delete(f"/v2.0/ports/{vif['port_id']}", ok=(204, 404))
    except errors.NotFound:
        pass


def deallocate(instance_uuid: str, vifs: list[dict]) -> None:
    """Delete the ports made for the server; unbind the ones the user gave."""
    net = clients.get().network
    for vif in vifs:
        release(vif)
    # ports the network service holds for this server that we never heard back about
    try:
        left = net.get("/v2.0/ports", params={"device_id": instance_uuid})["ports"]
    except errors.ApiError:
        return
    keep = {v["port_id"] for v in vifs if v.get("preserve")}
    for p in left:
        if p["id"] not in keep and p.get("device_owner", "").startswith("compute:"):
            net.delete(f"/v2.0/ports/{p['id']}", ok=(204, 404))
