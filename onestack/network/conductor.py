"""The network conductor: what an agent may know, served over the bus.

Agents never open the database (a compromised node must not read it): they call
this endpoint on topic ``network.conductor``, which runs in the API process.

- ``report(host, agents)`` is the heartbeat: it creates or refreshes one agent
  record per (host, agent type), as Neutron's ``report_state``.
- ``host_state(host)`` is the desired state of one host as plain dicts: the
  networks it must carry (with subnets, all their ports for DHCP and metadata, the
  VXLAN peers), the ports bound to it, the routers it hosts with their interfaces,
  gateway and floating IPs, and the security groups of its ports with the member
  addresses of every remote group. DHCP ports are made here, through ``core``, the
  first time a host serves DHCP for a network (as Neutron's DHCP agent asks for one).
- ``port_status(host, statuses)`` sets ports ACTIVE or DOWN as the agent sees them.

Scheduling is the simplest that works for one node and keeps working for several:
DHCP of every network and every router go to the first alive, enabled DHCP (L3)
agent, in the order the agents first reported.
"""

from __future__ import annotations

import logging

from onestack.common import bus, db
from onestack.network import core
from onestack.network.agent_records import (
    AGENT_TYPES,
    DHCP_OWNER,
    Settings,
    agents,
    alive,
    dhcp_device_id,
    heartbeat_time,
    hosting,
)

log = logging.getLogger(__name__)

TOPIC = "network.conductor"
def _dhcp_subnets(s, net: dict) -> list[dict]:
    out = []
    for sid in net.get("subnets", []):
        row = core.find(s, "subnet", sid)
        if row is None or not row.data.get("enable_dhcp"):
            continue
        sub = row.data
        if sub["ip_version"] == 6 and sub.get("ipv6_address_mode") in ("slaac", "dhcpv6-stateless"):
            continue  # addresses come from router advertisements, not from dnsmasq's leases
        out.append(sub)
    return out


def _dhcp_networks(s) -> list[dict]:
    return [n for n in core.docs(s, "network") if n.get("admin_state_up", True) and _dhcp_subnets(s, n)]


class Conductor:
    """The endpoint the agents call (public methods are the RPC interface)."""

    # -- heartbeats ------------------------------------------------------------

    def report(self, host: str, agents: list[dict], start_flag: bool = False) -> dict:
        """Create or refresh this host's agent records; ``start_flag`` on the first report
        after the agent started sets ``started_at``."""
        t = heartbeat_time()
        with db.transaction() as s:
            mine = {d["agent_type"]: d for d in core.docs(s, "agent") if d["host"] == host}
            for a in agents:
                kind = a["agent_type"]
                if kind not in AGENT_TYPES:
                    raise ValueError(f"unknown agent type {kind!r}")
                binary, topic, has_az = AGENT_TYPES[kind]
                values = {"configurations": a.get("configurations", {}), "heartbeat_timestamp": t,
                          "availability_zone": a.get("availability_zone") if has_az else None,
                          "binary": binary, "topic": topic}
                if kind in mine:
                    row = core.find(s, "agent", mine[kind]["id"])
                    if start_flag or not mine[kind].get("started_at"):
                        values["started_at"] = t
                    core.save(s, row, values)
                else:
                    core.add(s, "agent", {"agent_type": kind, "host": host, "admin_state_up": True,
                                          "description": None, "resources_synced": None,
                                          "started_at": t, "project_id": None, **values})
        return {"host": host, "heartbeat_timestamp": t}

    # -- desired state ---------------------------------------------------------

    def host_state(self, host: str) -> dict:
        with db.session() as s:
            needs_write = self._dhcp_port_changes(s, host, dry_run=True)
        if needs_write:
            with db.transaction() as s:
                self._dhcp_port_changes(s, host, dry_run=False)
        with db.session() as s:
            return self._state(s, host)

    def _dhcp_port_changes(self, s, host: str, *, dry_run: bool) -> bool:
        """Make the DHCP ports of the networks this host serves (one per network, with an
        address in every DHCP-enabled subnet); remove those of networks without DHCP."""
        serving = hosting(s, "DHCP agent", host) == host
        needing = {n["id"]: n for n in _dhcp_networks(s)}
        wanted = needing if serving else {}
        changed = False
        mine = [r for r in core.rows(s, "port", device_owner=DHCP_OWNER)
                if r.data.get("binding:host_id") == host]
        have: dict[str, object] = {}
        for row in mine:
            nid = row.data["network_id"]
            # a port of a network that still has DHCP is kept (and its address), even
            # while this host does not serve it (agent disabled)
            if nid not in needing or nid in have:
                changed = True
                if not dry_run:
                    core.delete_port(s, core._Admin(), row, internal=True)
                continue
            have[nid] = row
        for nid, net in wanted.items():
            subs = _dhcp_subnets(s, net)
            row = have.get(nid)
            if row is None:
                changed = True
                if not dry_run:
                    core.create_port(s, core._Admin(), {
                        "network_id": nid, "device_owner": DHCP_OWNER, "name": "",
                        "device_id": dhcp_device_id(host, nid), "binding:host_id": host,
                        "project_id": net.get("project_id") or "", "security_groups": [],
                        "fixed_ips": [{"subnet_id": sub["id"]} for sub in subs]})
                continue
            got = {f["subnet_id"] for f in row.data["fixed_ips"]}
            missing = [sub["id"] for sub in subs if sub["id"] not in got]
            if missing:
                changed = True
                if not dry_run:
                    fixed = [dict(f) for f in row.data["fixed_ips"]] + [{"subnet_id": x} for x in missing]
                    core.update_port(s, core._Admin(), row, {"fixed_ips": fixed})
        return changed

    def _state(self, s, host: str) -> dict:
        nets = {d["id"]: d for d in core.docs(s, "network")}
        subnets = {d["id"]: d for d in core.docs(s, "subnet")}
        ports = core.docs(s, "port")
        by_net: dict[str, list[dict]] = {}
        for p in ports:
            by_net.setdefault(p["network_id"], []).append(p)
        dhcp_host, l3_host = hosting(s, "DHCP agent", host), hosting(s, "L3 agent", host)

        bound = [p for p in ports if p.get("binding:host_id") == host
                 and not str(p.get("device_owner", "")).startswith("network:")]
        wanted = {p["network_id"] for p in bound}
        dhcp_ports = {}
        if dhcp_host == host:
            for p in ports:
                if p.get("device_owner") == DHCP_OWNER and p.get("binding:host_id") == host:
                    dhcp_ports[p["network_id"]] = p
            wanted |= set(dhcp_ports)

        routers = []
        if l3_host == host:
            fips = core.docs(s, "floatingip")
            for r in core.docs(s, "router"):
                if not r.get("admin_state_up", True):
                    continue
                rports = [p for p in ports if p.get("device_id") == r["id"]]
                interfaces = [p for p in rports if p.get("device_owner") == core.ROUTER_INTERFACE]
                gateway = next((p for p in rports if p.get("device_owner") == core.ROUTER_GATEWAY), None)
                if not interfaces and gateway is None:
                    continue  # nothing to plumb: no namespace either (as Neutron)
                wanted |= {p["network_id"] for p in interfaces}
                if gateway is not None:
                    wanted.add(gateway["network_id"])
                gw_info = r.get("external_gateway_info") or {}
                routers.append({
                    "id": r["id"], "name": r.get("name", ""), "project_id": r.get("project_id"),
                    "interfaces": interfaces, "gateway": gateway,
                    "enable_snat": bool(gw_info.get("enable_snat", True)),
                    "routes": r.get("routes", []),
                    "floating_ips": [{"id": f["id"], "floating_ip_address": f["floating_ip_address"],
                                      "fixed_ip_address": f["fixed_ip_address"], "port_id": f["port_id"]}
                                     for f in fips if f.get("router_id") == r["id"]
                                     and f.get("fixed_ip_address")],
                })

        # the networks this host carries, with the VXLAN peers: tunnel addresses of the
        # other hosts that carry them too
        tunnels = {d["host"]: (d.get("configurations") or {}).get("tunneling_ip")
                   for d in agents(s) if d["agent_type"] == "Linux bridge agent" and alive(d)}
        routed_nets = {}
        for r in core.docs(s, "router"):
            for p in ports:
                if p.get("device_id") == r["id"] and p.get("device_owner") in (core.ROUTER_INTERFACE,
                                                                              core.ROUTER_GATEWAY):
                    routed_nets.setdefault(p["network_id"], set()).add(r["id"])
        networks = []
        for nid in sorted(wanted):
            net = nets.get(nid)
            if net is None:
                continue
            present = {p.get("binding:host_id") for p in by_net.get(nid, []) if p.get("binding:host_id")}
            if nid in routed_nets and l3_host:
                present.add(l3_host)
            peers = sorted({tunnels[h] for h in present if h != host and tunnels.get(h)})
            net_subnets = [subnets[x] for x in net.get("subnets", []) if x in subnets]
            networks.append({
                **{k: net.get(k) for k in ("id", "name", "mtu", "admin_state_up", "router:external",
                                           "provider:network_type", "provider:physical_network",
                                           "provider:segmentation_id", "project_id")},
                "subnets": net_subnets,
                "ports": [_slim(p) for p in by_net.get(nid, [])],
                "dhcp_port": dhcp_ports.get(nid),
                "routers": sorted(routed_nets.get(nid, ())),
                "peers": peers,
            })

        groups = {g for p in bound for g in p.get("security_groups", [])}
        rules: dict[str, list[dict]] = {g: [] for g in groups}
        for r in core.docs(s, "security_group_rule"):
            if r["security_group_id"] in rules:
                rules[r["security_group_id"]].append(r)
        remote = {r["remote_group_id"] for rs in rules.values() for r in rs if r.get("remote_group_id")}
        members: dict[str, list[str]] = {g: [] for g in remote}
        for p in ports:
            for g in p.get("security_groups", []):
                if g in members:
                    members[g] += [f["ip_address"] for f in p.get("fixed_ips", [])]
                    members[g] += [a["ip_address"] for a in p.get("allowed_address_pairs", [])]
        return {"host": host, "dhcp": dhcp_host == host, "l3": l3_host == host, "networks": networks,
                "ports": bound, "routers": routers, "security_group_rules": rules,
                "remote_groups": members}

    # -- what the agent saw -------------------------------------------------------

    def port_status(self, host: str, statuses: dict[str, str]) -> int:
        """Set ports ACTIVE/DOWN; only ports bound to ``host`` or plumbed by it (its DHCP
        ports, the ports of the routers it hosts). Returns how many changed."""
        changed = 0
        with db.transaction() as s:
            l3 = hosting(s, "L3 agent", host) == host
            for pid, status in statuses.items():
                if status not in ("ACTIVE", "DOWN", "BUILD", "ERROR"):
                    raise ValueError(f"invalid port status {status!r}")
                row = core.find(s, "port", pid)
                if row is None or row.data.get("status") == status:
                    continue
                owner = row.data.get("device_owner", "")
                ours = row.data.get("binding:host_id") == host or (
                    l3 and owner in (core.ROUTER_INTERFACE, core.ROUTER_GATEWAY))
                if not ours:
                    continue
                core.set_port_status(s, row, status)
                changed += 1
        return changed


def _slim(p: dict) -> dict:
    """What DHCP and the metadata proxy need of every port of a network."""
    return {k: p.get(k) for k in ("id", "mac_address", "fixed_ips", "device_id", "device_owner",
                                  "project_id", "dns_name", "binding:host_id", "admin_state_up")}


_served: Conductor | None = None


def serve(down_time: int) -> Conductor:
    global _served
    Settings.down_time = down_time
    _served = Conductor()
    bus.get().serve(TOPIC, _served)
    return _served
