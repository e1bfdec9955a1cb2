"""From a host's desired state (the conductor's plain dicts) to what the Linux data
plane library takes: bridges, VXLAN devices, DHCP networks, router specs, security
group ports, metadata proxies. Pure functions: no kernel, no bus, easy to test.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from onestack.network.linux import dhcp, metadata, router, secgroups
from onestack.network.linux import ip as iplib

TENANT_TYPES = ("vxlan", "geneve", "gre", "local")
EXTERNAL_NS_PREFIX = "onestack-"  # the namespace of an external network's physical network
COMPUTE_PREFIX = "compute:"


def bridge_name(network_id: str) -> str:
    return iplib.device_name("brq", network_id)


def tap_name(port_id: str) -> str:
    return iplib.device_name("tap", port_id)


def external_namespace(physnet: str | None) -> str:
    """Where the bridges of external networks on ``physnet`` live: ``onestack-public``
    for DevStack's ``public``. That namespace is the "outside world" of the cloud."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", physnet or "public")[:40]
    return EXTERNAL_NS_PREFIX + name


@dataclass
class Bridge:
    name: str
    network_id: str
    netns: str | None = None  # None: this host's namespace (where guests' taps are)
    mtu: int | None = None
    vxlan: tuple[int, str, list[str]] | None = None  # (vni, local address, peers)
    addresses: list[str] = field(default_factory=list)  # external networks: the gateway address
    uplink: str | None = None  # an external network on a mapped physical interface: that interface

    @property
    def vxlan_device(self) -> str | None:
        return f"vxlan-{self.vxlan[0]}" if self.vxlan else None


@dataclass
class Tap:
    """A port bound to this host: the hypervisor's tap, put on its network's bridge."""

    port_id: str
    device: str
    bridge: str
    mtu: int | None


@dataclass
class Proxy:
    """A metadata proxy: in ``netns``, resolving guests' addresses to instances."""

    netns: str
    labels: dict[str, str]
    identities: dict[str, metadata.Identity]


@dataclass
class Plan:
    external_namespaces: list[str] = field(default_factory=list)
    bridges: list[Bridge] = field(default_factory=list)
    taps: list[Tap] = field(default_factory=list)
    unpluggable: list[str] = field(default_factory=list)  # bound ports whose bridge is elsewhere
    dhcp: list[dhcp.DhcpNetwork] = field(default_factory=list)
    dhcp_ports: dict[str, str] = field(default_factory=dict)  # network id -> DHCP port id
    routers: list[router.RouterSpec] = field(default_factory=list)
    router_ports: dict[str, list[str]] = field(default_factory=dict)  # router id -> port ids
    sg_ports: list[secgroups.SgPort] = field(default_factory=list)
    remote_groups: dict[str, list[str]] = field(default_factory=dict)
    proxies: list[Proxy] = field(default_factory=list)


def _prefixlen(subnets: dict[str, dict], subnet_id: str) -> int | None:
    sub = subnets.get(subnet_id)
    return ipaddress.ip_network(sub["cidr"]).prefixlen if sub else None


def _cidrs(port: dict, subnets: dict[str, dict]) -> list[str]:
    out = []
    for f in port.get("fixed_ips", []):
        plen = _prefixlen(subnets, f["subnet_id"])
        if plen is not None:
            out.append(f"{f['ip_address']}/{plen}")
    return out


def _hostname(port: dict) -> str | None:
    name = port.get("dns_name") or ""
    return name if re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?", name) else None


def _identities(ports: list[dict]) -> dict[str, metadata.Identity]:
    """Fixed IP -> the instance behind it (ports of guests only)."""
    out = {}
    for p in ports:
        if str(p.get("device_owner", "")).startswith(COMPUTE_PREFIX) and p.get("device_id"):
            for f in p.get("fixed_ips", []):
                out[f["ip_address"]] = metadata.Identity(p["device_id"], p.get("project_id") or None)
    return out


def parse_mappings(text: str) -> dict[str, str]:
    """``public:ext0,physnet2:eth2`` -> {physnet: interface} (Neutron's
    ``physical_interface_mappings``). ValueError names a malformed entry."""
    out = {}
    for item in (x.strip() for x in text.split(",")):
        if not item:
            continue
        physnet, sep, dev = item.partition(":")
        if not sep or not physnet.strip() or not dev.strip():
            raise ValueError(f"physical_interface_mappings: {item!r} is not physnet:interface")
        out[physnet.strip()] = dev.strip()
    return out


def build(state: dict, *, local_ip: str, physical_interfaces: dict[str, str] | None = None) -> Plan:
    """The whole plan of one host from ``Conductor.host_state``. An external network
    whose physical network maps to an interface of this host (a multi-node cloud's
    provider network) is bridged to that interface; otherwise its bridge lives in a
    namespace of its own that plays the outside world (the all-in-one cloud)."""
    physical_interfaces = physical_interfaces or {}
    plan = Plan()
    nets = {n["id"]: n for n in state["networks"]}
    subnets = {s["id"]: s for n in state["networks"] for s in n["subnets"]}
    where: dict[str, tuple[str, str | None, int | None]] = {}  # network -> (bridge, netns, mtu)

    for n in state["networks"]:
        name = bridge_name(n["id"])
        mtu = n.get("mtu")
        uplink = physical_interfaces.get(n.get("provider:physical_network") or "public")
        if n.get("router:external") and uplink:
            plan.bridges.append(Bridge(name, n["id"], None, mtu, None, [], uplink))
            ns = None
        elif n.get("router:external"):
            ns = external_namespace(n.get("provider:physical_network"))
            if ns not in plan.external_namespaces:
                plan.external_namespaces.append(ns)
            # the namespace plays the upstream router: it takes each subnet's gateway
            # address unless a port holds it (DevStack gives it to br-ex)
            held = {f["ip_address"] for p in n["ports"] for f in p.get("fixed_ips", [])}
            addrs = [f"{s['gateway_ip']}/{ipaddress.ip_network(s['cidr']).prefixlen}"
                     for s in n["subnets"] if s.get("gateway_ip") and s["gateway_ip"] not in held]
            plan.bridges.append(Bridge(name, n["id"], ns, mtu, None, addrs))
        else:
            vx = None
            if n.get("provider:network_type") == "vxlan" and n.get("provider:segmentation_id"):
                vx = (int(n["provider:segmentation_id"]), local_ip, list(n.get("peers", [])))
            plan.bridges.append(Bridge(name, n["id"], None, mtu, vx))
            ns = None
        where[n["id"]] = (name, ns, mtu)

    # guests' ports: their taps on the bridges, their security groups
    rules = state.get("security_group_rules", {})
    for p in state["ports"]:
        br, ns, mtu = where.get(p["network_id"], (None, None, None))
        if br is None:
            continue
        if ns is not None:
            plan.unpluggable.append(p["id"])
            continue
        dev = tap_name(p["id"])
        plan.taps.append(Tap(p["id"], dev, br, mtu))
        sg_rules = [secgroups.SgRule(direction=r["direction"], ethertype=r["ethertype"],
                                     protocol=r.get("protocol"), port_range_min=r.get("port_range_min"),
                                     port_range_max=r.get("port_range_max"),
                                     remote_ip_prefix=r.get("remote_ip_prefix"),
                                     remote_group_id=r.get("remote_group_id"))
                    for g in p.get("security_groups", []) for r in rules.get(g, [])]
        plan.sg_ports.append(secgroups.SgPort(
            id=p["id"], device=dev, mac=p["mac_address"],
            fixed_ips=[f["ip_address"] for f in p.get("fixed_ips", [])],
            allowed_address_pairs=[(a["ip_address"], a.get("mac_address"))
                                   for a in p.get("allowed_address_pairs", [])],
            rules=sg_rules, port_security_enabled=bool(p.get("port_security_enabled", True)),
            bridge=br))
    plan.remote_groups = {g: list(v) for g, v in state.get("remote_groups", {}).items()}

    # DHCP: one dnsmasq per network this host serves
    for n in state["networks"]:
        port = n.get("dhcp_port")
        if not port:
            continue
        br, ns, mtu = where[n["id"]]
        dsubs = [s for s in n["subnets"] if s.get("enable_dhcp")]
        isolated = not n.get("routers")
        net = dhcp.DhcpNetwork(
            id=n["id"], port_id=port["id"], port_mac=port["mac_address"],
            port_ips=[f["ip_address"] for f in port.get("fixed_ips", [])], bridge=br, bridge_netns=ns,
            subnets=[dhcp.DhcpSubnet(id=s["id"], cidr=s["cidr"], gateway_ip=s.get("gateway_ip"),
                                     dns_nameservers=list(s.get("dns_nameservers") or []),
                                     host_routes=[(r["destination"], r["nexthop"])
                                                  for r in s.get("host_routes") or []])
                     for s in dsubs],
            hosts=[dhcp.DhcpHost(p["mac_address"], f["ip_address"], _hostname(p))
                   for p in n["ports"] if p["id"] != port["id"] for f in p.get("fixed_ips", [])],
            mtu=mtu, isolated_metadata=isolated)
        # only subnets the DHCP port has an address in (a new subnet gets one next round)
        net.subnets = [s for s in net.subnets if net.port_ip_in(s) is not None]
        if not net.subnets:
            continue
        plan.dhcp.append(net)
        plan.dhcp_ports[n["id"]] = port["id"]
        if isolated:
            plan.proxies.append(Proxy(net.namespace, {"X-Neutron-Network-ID": n["id"]},
                                      _identities(n["ports"])))

    # routers
    for r in state["routers"]:
        spec = router.RouterSpec(id=r["id"], enable_snat=r.get("enable_snat", True))
        ids = []
        identities: dict[str, metadata.Identity] = {}
        for p in r["interfaces"]:
            if p["network_id"] not in where:
                continue
            br, ns, mtu = where[p["network_id"]]
            spec.interfaces.append(router.RouterPort(id=p["id"], mac=p["mac_address"],
                                                     cidrs=_cidrs(p, subnets), bridge=br,
                                                     bridge_netns=ns, mtu=mtu))
            ids.append(p["id"])
            identities.update(_identities(nets[p["network_id"]]["ports"]))
        gw = r.get("gateway")
        if gw and gw["network_id"] in where:
            br, ns, mtu = where[gw["network_id"]]
            gw_ip = next((subnets[f["subnet_id"]].get("gateway_ip") for f in gw.get("fixed_ips", [])
                          if f["subnet_id"] in subnets and ipaddress.ip_address(f["ip_address"]).version == 4),
                         None)
            spec.gateway = router.RouterGateway(id=gw["id"], mac=gw["mac_address"], cidrs=_cidrs(gw, subnets),
                                                bridge=br, bridge_netns=ns, mtu=mtu, gateway_ip=gw_ip)
            ids.append(gw["id"])
            spec.floating_ips = [router.FloatingIp(f["floating_ip_address"], f["fixed_ip_address"])
                                 for f in r.get("floating_ips", [])
                                 if ipaddress.ip_address(f["floating_ip_address"]).version == 4]
        spec.routes = [(x["destination"], x["nexthop"]) for x in r.get("routes", [])]
        plan.routers.append(spec)
        plan.router_ports[r["id"]] = ids
        if spec.interfaces:
            plan.proxies.append(Proxy(spec.namespace, {"X-Neutron-Router-ID": r["id"]}, identities))
    return plan
