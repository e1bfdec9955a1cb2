"""Routers: one ``qrouter-<id>`` namespace each, reconciled to a :class:`RouterSpec`.

Inside the namespace: ``qr-<port>`` per interface (a veth whose other end, ``tap<port>``,
is on the tenant network's bridge), ``qg-<port>`` for the gateway on the external
network's bridge (it also carries the floating IPs as /32, so they answer ARP there),
IP forwarding, the default route via the external subnet's gateway and the extra
routes (``proto static``: everything of that protocol is ours), and one nftables
table ``ip onestack-nat``: DNAT + SNAT 1:1 per floating IP, SNAT of everything else
leaving the gateway to the gateway's address. :func:`sync` adds what is missing,
changes what differs and removes what is extra, so it is also the repair after a
crash; :func:`delete` removes the namespace and with it both ends of every veth.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field

from onestack.network.linux import ip as iplib
from onestack.network.linux import nft

log = logging.getLogger(__name__)

NS_PREFIX = "qrouter-"
NAT_TABLE = "onestack-nat"
INTERNAL_PREFIX = "qr-"
GATEWAY_PREFIX = "qg-"


@dataclass
class RouterPort:
    """A router port: its id (names the devices), MAC, addresses and the bridge it is on."""

    id: str
    mac: str
    cidrs: list[str]  # "10.0.0.1/24"
    bridge: str
    bridge_netns: str | None = None
    mtu: int | None = None


@dataclass
class RouterGateway(RouterPort):
    gateway_ip: str | None = None  # the external subnet's gateway: the default route


@dataclass
class FloatingIp:
    floating_ip: str
    fixed_ip: str


@dataclass
class RouterSpec:
    id: str
    interfaces: list[RouterPort] = field(default_factory=list)
    gateway: RouterGateway | None = None
    enable_snat: bool = True
    floating_ips: list[FloatingIp] = field(default_factory=list)
    routes: list[tuple[str, str]] = field(default_factory=list)  # (destination, nexthop)

    @property
    def namespace(self) -> str:
        return NS_PREFIX + self.id


def namespace(router_id: str) -> str:
    return NS_PREFIX + router_id


def internal_device(port_id: str) -> str:
    return iplib.device_name(INTERNAL_PREFIX, port_id)


def gateway_device(port_id: str) -> str:
    return iplib.device_name(GATEWAY_PREFIX, port_id)


def bridge_device(port_id: str) -> str:
    return iplib.device_name("tap", port_id)


# ---------------------------------------------------------------- NAT (pure)


def nat_ruleset(spec: RouterSpec) -> str | None:
    """The body of table ``ip onestack-nat``, or None when the router needs no NAT."""
    if spec.gateway is None:
        return None
    qg = nft.quote(gateway_device(spec.gateway.id))
    gw_ips = [ipaddress.ip_interface(c).ip for c in spec.gateway.cidrs]
    gw_v4 = next((a for a in gw_ips if a.version == 4), None)
    fips = [(ipaddress.IPv4Address(f.floating_ip), ipaddress.IPv4Address(f.fixed_ip))
            for f in spec.floating_ips]
    pre, post, out = [], [], []
    for fip, fixed in fips:
        pre.append(f"ip daddr {fip} dnat to {fixed}")
        out.append(f"ip daddr {fip} dnat to {fixed}")
    # traffic between the router's own subnets is routed untouched ...
    post.append(f"iifname != {qg} oifname != {qg} ct status != dnat accept")
    # ... a guest with a floating IP leaves (and hairpins) as that address ...
    for fip, fixed in fips:
        post.append(f"ip saddr {fixed} snat to {fip}")
    # ... a guest reaching another guest's floating IP from inside comes back through us
    post.append(f"iifname != {qg} oifname != {qg} masquerade")
    # ... and everything else leaving the gateway takes the gateway's address
    if spec.enable_snat and gw_v4 is not None:
        post.append(f"oifname {qg} snat to {gw_v4}")

    def chain(name: str, hook: str, prio: str, rules: list[str]) -> str:
        body = "".join(f"\t\t{r}\n" for r in rules)
        return (f"\tchain {name} {{\n\t\ttype nat hook {hook} priority {prio}; policy accept;\n"
                f"{body}\t}}\n")

    return (chain("prerouting", "prerouting", "dstnat", pre)
            + chain("output", "output", "-100", out)
            + chain("postrouting", "postrouting", "srcnat", post))


# ---------------------------------------------------------------- reconciliation


def _sync_port(ns: str, dev: str, port: RouterPort, cidrs: list[str]) -> list[str]:
    """Plumb one port; returns the addresses that were added (for gratuitous ARP)."""
    iplib.ensure_veth(dev, bridge_device(port.id), netns=ns, peer_netns=port.bridge_netns,
                      mtu=port.mtu, address=port.mac, peer_master=port.bridge)
    before = set(iplib.list_addresses(dev, ns))
    iplib.sync_addresses(dev, cidrs, ns)
    return [c for c in iplib.list_addresses(dev, ns) if c not in before]


def _gratuitous_arp(ns: str, dev: str, cidrs: list[str]) -> None:
    """Tell the external network where a new gateway/floating address is (best effort)."""
    for c in cidrs:
        addr = ipaddress.ip_interface(c).ip
        if addr.version == 4:
            try:
                iplib.gratuitous_arp(dev, str(addr), ns)
            except OSError as e:
                log.warning("gratuitous ARP for %s on %s in %s: %s", addr, dev, ns, e)


def sync(spec: RouterSpec) -> None:
    """Make the router's namespace exactly what ``spec`` describes."""
    ns = spec.namespace
    iplib.ensure_netns(ns)
    iplib.set_sysctl("net.ipv4.ip_forward", 1, ns)

    wanted: set[str] = set()
    for port in spec.interfaces:
        dev = internal_device(port.id)
        wanted.add(dev)
        _sync_port(ns, dev, port, port.cidrs)
    announce: list[str] = []
    fips = [f"{f.floating_ip}/32" for f in spec.floating_ips]
    if spec.gateway is not None:
        gw = spec.gateway
        dev = gateway_device(gw.id)
        wanted.add(dev)
        # a floating address goes onto the device only after its DNAT rule is loaded
        # (below), and off before the rule goes: in between, the router itself would
        # answer for it (ping, and TCP to its own listeners)
        present = set(iplib.list_addresses(dev, ns)) if iplib.link_exists(dev, ns) else set()
        announce = _sync_port(ns, dev, gw, list(gw.cidrs) + [c for c in fips if c in present])
    for link in iplib.list_links(ns):
        name = link["ifname"]
        if name.startswith((INTERNAL_PREFIX, GATEWAY_PREFIX)) and name not in wanted:
            iplib.delete_link(name, ns)  # the bridge-side end goes with it

    routes = [iplib.Route(d, nh) for d, nh in spec.routes]
    if spec.gateway is not None and spec.gateway.gateway_ip:
        routes.append(iplib.Route("default", spec.gateway.gateway_ip,
                                  gateway_device(spec.gateway.id)))
    iplib.sync_routes(routes, ns)

    body = nat_ruleset(spec)
    if body is None:
        nft.delete_table("ip", NAT_TABLE, ns)
    else:
        nft.replace_table("ip", NAT_TABLE, body, ns)
    if spec.gateway is not None and fips:
        dev = gateway_device(spec.gateway.id)
        before = set(iplib.list_addresses(dev, ns))
        iplib.sync_addresses(dev, list(spec.gateway.cidrs) + fips, ns)
        announce += [c for c in iplib.list_addresses(dev, ns) if c not in before]
    if announce and spec.gateway is not None:
        _gratuitous_arp(ns, gateway_device(spec.gateway.id), announce)


def delete(router_id: str) -> bool:
    """Remove the router: its namespace, and so every port (both veth ends)."""
    return iplib.delete_netns(namespace(router_id))


def list_routers() -> list[str]:
    return [n[len(NS_PREFIX):] for n in iplib.list_netns(NS_PREFIX)]


def sync_all(specs: list[RouterSpec]) -> None:
    """Reconcile every router of this host; a router not listed is removed."""
    wanted = {s.id for s in specs}
    for stale in list_routers():
        if stale not in wanted:
            delete(stale)
    for s in specs:
        sync(s)
