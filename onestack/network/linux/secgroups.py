"""Security groups: nftables rules per port on the bridges of one host, stateful.

The guests' ports are bridge ports (``tap<port>``). The filtering happens in one
``bridge`` table, ``onestack-sg``: its forward (and input) hook sends a frame from a
port through the port's egress chain, and a frame to a port through its ingress
chain. Each chain: anti-spoofing (egress only: the port's MAC/IP pairs plus its
allowed address pairs; ARP checked the same way), DHCP and IPv6 neighbour discovery
allowed, no DHCP/RA server in a guest, established/related traffic allowed, invalid
dropped, then one rule per security group rule, then drop. ``remote_group_id`` rules
match a named set of the group's member addresses.

Connection state: this kernel family has no conntrack of its own for bridges (no
``nf_conntrack_bridge``), so bridged IP traffic goes through br_netfilter (each bridge
made by ``ip.ensure_bridge`` has ``nf_call_iptables``). A second table, ``inet
onestack-sgct``, gives each bridge its own conntrack zone (overlapping tenant
addresses on two networks never share a connection) and copies the connection state
into two bits of the packet mark, which the bridge chains read.

:func:`sync` generates both tables from the whole desired state and loads them in
one ``nft -f`` transaction: reconciliation is replacing the tables.
"""

from __future__ import annotations

import ipaddress
import re
import zlib
from dataclasses import dataclass, field

from onestack.network.linux import nft

TABLE = "onestack-sg"
CT_TABLE = "onestack-sgct"
MARK_ESTABLISHED = 0x40000000  # ct state established,related
MARK_INVALID = 0x20000000  # ct state invalid
_MARKS = MARK_ESTABLISHED | MARK_INVALID

PROTOCOLS = {
    "icmp": 1, "igmp": 2, "ipip": 4, "tcp": 6, "egp": 8, "udp": 17, "ipv6-encap": 41,
    "ipv6-route": 43, "ipv6-frag": 44, "rsvp": 46, "gre": 47, "esp": 50, "ah": 51,
    "icmpv6": 58, "ipv6-icmp": 58, "ipv6-nonxt": 59, "ipv6-opts": 60, "dccp": 33,
    "ospf": 89, "pgm": 113, "vrrp": 112, "sctp": 132, "udplite": 136,
}
PORT_PROTOCOLS = {6, 17, 33, 132, 136}  # those with ports where ``th dport`` finds them
_ND_OUT = "nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert, " \
          "mld-listener-report, mld-listener-done, mld2-listener-report"
_ND_IN = "nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect, " \
         "mld-listener-query"


@dataclass
class SgRule:
    """A security group rule as the Networking API has it."""

    direction: str  # "ingress" (to the guest) or "egress" (from it)
    ethertype: str = "IPv4"
    protocol: str | int | None = None  # name, number, or None/"any" for all
    port_range_min: int | None = None  # ICMP: the type
    port_range_max: int | None = None  # ICMP: the code
    remote_ip_prefix: str | None = None
    remote_group_id: str | None = None


@dataclass
class SgPort:
    """A guest's port on this host and the rules of all its security groups."""

    id: str
    device: str  # the bridge port, e.g. tap<port id>
    mac: str
    fixed_ips: list[str] = field(default_factory=list)
    allowed_address_pairs: list[tuple[str, str | None]] = field(default_factory=list)
    rules: list[SgRule] = field(default_factory=list)
    port_security_enabled: bool = True
    bridge: str | None = None  # the network's bridge: gives the conntrack zone


class RuleError(ValueError):
    pass


def zone_for(bridge: str) -> int:
    """A stable conntrack zone (1-65535) for a bridge: the same on every sync."""
    return zlib.crc32(bridge.encode()) % 65535 + 1


def _ident(s: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", s):
        raise RuleError(f"invalid identifier {s!r}")
    return s


def set_name(group_id: str, version: int) -> str:
    return f"rg-{_ident(group_id)}-v{version}"


def link_local(mac: str) -> ipaddress.IPv6Address:
    """The EUI-64 link-local address a MAC gives (what the guest's kernel uses)."""
    b = bytearray(int(x, 16) for x in mac.split(":"))
    b[0] ^= 0x02
    eui = bytes(b[:3]) + b"\xff\xfe" + bytes(b[3:])
    return ipaddress.IPv6Address(b"\xfe\x80" + b"\0" * 6 + eui)


def _protocol_number(rule: SgRule) -> int | None:
    p = rule.protocol
    if p is None or str(p).lower() in ("", "any", "all"):
        return None
    if isinstance(p, int) or str(p).isdigit():
        n = int(p)
        if not 0 <= n <= 255:
            raise RuleError(f"protocol {p} is outside 0-255")
    else:
        try:
            n = PROTOCOLS[str(p).lower()]
        except KeyError:
            raise RuleError(f"unknown protocol {p!r}") from None
    if rule.ethertype == "IPv6" and n == 1:
        n = 58  # Neutron takes "icmp" in an IPv6 rule as ICMPv6
    return n


def rule_expr(rule: SgRule) -> str | None:
    """The nft match of one rule (without its verdict); None if it can never match
    (an IPv4 prefix in an IPv6 rule, ICMPv6 in an IPv4 rule)."""
    if rule.direction not in ("ingress", "egress"):
        raise RuleError(f"direction must be ingress or egress, not {rule.direction!r}")
    if rule.ethertype not in ("IPv4", "IPv6"):
        raise RuleError(f"ethertype must be IPv4 or IPv6, not {rule.ethertype!r}")
    v = 4 if rule.ethertype == "IPv4" else 6
    fam = "ip" if v == 4 else "ip6"
    parts = [f"ether type {fam}"]
    side = "saddr" if rule.direction == "ingress" else "daddr"
    if rule.remote_ip_prefix:
        net = ipaddress.ip_network(rule.remote_ip_prefix, strict=False)
        if net.version != v:
            return None
        if net.prefixlen:
            parts.append(f"{fam} {side} {net}")
    if rule.remote_group_id:
        parts.append(f"{fam} {side} @{set_name(rule.remote_group_id, v)}")
    proto = _protocol_number(rule)
    lo, hi = rule.port_range_min, rule.port_range_max
    if proto is not None:
        if (proto == 58 and v == 4) or (proto == 1 and v == 6):
            return None
        parts.append(f"meta l4proto {proto}")
        if proto in PORT_PROTOCOLS and (lo is not None or hi is not None):
            lo = 1 if lo is None else int(lo)
            hi = 65535 if hi is None else int(hi)
            if not (0 <= lo <= hi <= 65535):
                raise RuleError(f"port range {lo}-{hi} is invalid")
            if (lo, hi) != (1, 65535):
                parts.append(f"th dport {lo}" if lo == hi else f"th dport {lo}-{hi}")
        elif proto in (1, 58) and lo is not None:
            icmp = "icmp" if proto == 1 else "icmpv6"
            if not 0 <= int(lo) <= 255 or (hi is not None and not 0 <= int(hi) <= 255):
                raise RuleError(f"ICMP type {lo} / code {hi} is outside 0-255")
            parts.append(f"{icmp} type {int(lo)}")
            if hi is not None:
                parts.append(f"{icmp} code {int(hi)}")
    return " ".join(parts)


def _pairs(port: SgPort) -> tuple[list[str], list[str]]:
    """The ``mac . address`` elements a port may send from, per IP version."""
    mac = port.mac.lower()
    items: list[tuple[str, str]] = [(mac, a) for a in port.fixed_ips]
    items += [((m or mac).lower(), a) for a, m in port.allowed_address_pairs]
    v4: list[str] = []
    v6: list[str] = []
    for m, a in items:
        net = ipaddress.ip_network(a, strict=False)
        text = str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)
        (v4 if net.version == 4 else v6).append(f"{m} . {text}")
    for m in sorted({m for m, _ in items} | {mac}):
        v6.append(f"{m} . {link_local(m)}")
    return sorted(set(v4)), sorted(set(v6))


def _arp_pairs(port: SgPort) -> list[str]:
    mac = port.mac.lower()
    items = [(mac, a) for a in port.fixed_ips]
    items += [((m or mac).lower(), a) for a, m in port.allowed_address_pairs]
    out = {f"{m} . {m} . 0.0.0.0" for m, _ in items} | {f"{mac} . {mac} . 0.0.0.0"}
    for m, a in items:
        net = ipaddress.ip_network(a, strict=False)
        if net.version == 4:
            text = str(net.network_address) if net.prefixlen == 32 else str(net)
            out.add(f"{m} . {m} . {text}")
    return sorted(out)


def _chain_name(direction: str, port: SgPort) -> str:
    return f"{direction}-{_ident(port.id)}"


def _egress_chain(port: SgPort) -> list[str]:
    macs = sorted({port.mac.lower()} | {m.lower() for _, m in port.allowed_address_pairs if m})
    mac_set = "{ " + ", ".join(macs) + " }"
    v4, v6 = _pairs(port)
    est, inv = MARK_ESTABLISHED, MARK_INVALID
    r = [
        # DHCP discover/request before the guest has an address
        f"ether saddr {mac_set} ip saddr 0.0.0.0 ip daddr 255.255.255.255 "
        "udp sport 68 udp dport 67 return",
        # IPv6 duplicate address detection before the address is the guest's
        f"ether saddr {mac_set} ip6 saddr :: icmpv6 type "
        "{ nd-neighbor-solicit, mld2-listener-report } return",
        "ether saddr . arp saddr ether . arp saddr ip { " + ", ".join(_arp_pairs(port))
        + " } return",
        'ether type arp counter drop comment "spoofed arp"',
    ]
    if v4:
        r.append("ether saddr . ip saddr != { " + ", ".join(v4) + ' } counter drop '
                 'comment "spoofed ipv4"')
    else:
        r.append('ether type ip counter drop comment "no ipv4 address"')
    r += [
        "ether saddr . ip6 saddr != { " + ", ".join(v6) + ' } counter drop '
        'comment "spoofed ipv6"',
        'ether type != { ip, ip6 } counter drop comment "not ip"',
        "udp sport 67 udp dport 68 drop",  # no DHCP server in a guest
        "udp sport 547 udp dport 546 drop",
        "icmpv6 type nd-router-advert drop",  # nor a router
        "udp sport 68 udp dport 67 return",
        "udp sport 546 udp dport 547 return",
        f"icmpv6 type {{ {_ND_OUT} }} return",
        f"meta mark & {inv:#x} == {inv:#x} drop",
        f"meta mark & {est:#x} == {est:#x} return",
    ]
    for rule in port.rules:
        if rule.direction == "egress" and (e := rule_expr(rule)) is not None:
            r.append(f"{e} return")
    r.append('counter drop comment "egress"')
    return r


def _ingress_chain(port: SgPort) -> list[str]:
    est, inv = MARK_ESTABLISHED, MARK_INVALID
    r = [
        "ether type arp accept",
        f"meta mark & {inv:#x} == {inv:#x} drop",
        f"meta mark & {est:#x} == {est:#x} accept",
        "udp sport 67 udp dport 68 accept",  # DHCP answers
        "udp sport 547 udp dport 546 accept",
        f"icmpv6 type {{ {_ND_IN} }} accept",
    ]
    for rule in port.rules:
        if rule.direction == "ingress" and (e := rule_expr(rule)) is not None:
            r.append(f"{e} accept")
    r.append('counter drop comment "ingress"')
    return r


def _chain(name: str, rules: list[str], hook: str | None = None, prio: str = "0") -> str:
    head = f"\t\ttype filter hook {hook} priority {prio}; policy accept;\n" if hook else ""
    return f"\tchain {name} {{\n{head}" + "".join(f"\t\t{x}\n" for x in rules) + "\t}\n"


def bridge_table(ports: list[SgPort], remote_groups: dict[str, list[str]]) -> str:
    """The body of table ``bridge onestack-sg``."""
    filtered = sorted((p for p in ports if p.port_security_enabled), key=lambda p: p.device)
    seen: set[str] = set()
    for p in filtered:
        if p.device in seen:
            raise RuleError(f"device {p.device} is given for two ports")
        seen.add(p.device)
    out = []
    used = {r.remote_group_id for p in filtered for r in p.rules if r.remote_group_id}
    for gid in sorted(used):
        members = [ipaddress.ip_network(a, strict=False) for a in remote_groups.get(gid, [])]
        for v, typ in ((4, "ipv4_addr"), (6, "ipv6_addr")):
            elems = sorted({str(n.network_address) if n.prefixlen == n.max_prefixlen else str(n)
                            for n in members if n.version == v})
            body = f"\t\ttype {typ}\n\t\tflags interval\n"
            if elems:
                body += "\t\telements = { " + ", ".join(elems) + " }\n"
            out.append(f"\tset {set_name(gid, v)} {{\n{body}\t}}\n")
    fwd, inp = [], []
    if filtered:
        ev = ", ".join(f"{nft.quote(p.device)} : jump {_chain_name('egress', p)}"
                       for p in filtered)
        iv = ", ".join(f"{nft.quote(p.device)} : jump {_chain_name('ingress', p)}"
                       for p in filtered)
        fwd = [f"iifname vmap {{ {ev} }}", f"oifname vmap {{ {iv} }}"]
        inp = [f"iifname vmap {{ {ev} }}"]
    out.append(_chain("forward", fwd, "forward"))
    out.append(_chain("input", inp, "input"))
    for p in filtered:
        out.append(_chain(_chain_name("egress", p), _egress_chain(p)))
        out.append(_chain(_chain_name("ingress", p), _ingress_chain(p)))
    return "".join(out)


def ct_table(ports: list[SgPort]) -> str:
    """The body of table ``inet onestack-sgct``: a conntrack zone per bridge, and the
    connection state copied into the packet mark for the bridge table."""
    bridges = sorted({p.bridge for p in ports if p.bridge})
    zones = [f"iifname {nft.quote(b)} ct zone set {zone_for(b)}" for b in bridges]
    keep = f"{0xFFFFFFFF ^ _MARKS:#x}"
    # only packets crossing our bridges (br_netfilter shows the bridge as the input
    # device) get their mark bits touched; the host's own traffic keeps its marks
    only = ("iifname { " + ", ".join(nft.quote(b) for b in bridges) + " } ") if bridges else ""
    state = [
        f"{only}meta mark set meta mark & {keep}",
        f"{only}ct state established,related meta mark set meta mark | {MARK_ESTABLISHED:#x}",
        f"{only}ct state invalid meta mark set meta mark | {MARK_INVALID:#x}",
    ]
    # conntrack runs at priority -200: the zone before it, the state after it
    return _chain("zone", zones, "prerouting", "raw") + _chain("state", state, "prerouting",
                                                               "mangle")


def ruleset(ports: list[SgPort], remote_groups: dict[str, list[str]] | None = None) -> str:
    """The complete nft text that replaces both tables in one transaction."""
    rg = remote_groups or {}
    text = ""
    for family, name, body in (("inet", CT_TABLE, ct_table(ports)),
                               ("bridge", TABLE, bridge_table(ports, rg))):
        text += (f"table {family} {name} {{}}\ndelete table {family} {name}\n"
                 f"table {family} {name} {{\n{body}}}\n")
    return text


def sync(ports: list[SgPort], remote_groups: dict[str, list[str]] | None = None,
         netns: str | None = None) -> None:
    """Make the host's security group tables exactly what ``ports`` need (atomically).

    ``remote_groups`` maps a security group id to its members' addresses (fixed IPs
    and allowed address pairs of every port in it, on any host).
    """
    nft.load(ruleset(ports, remote_groups), netns)


def delete(netns: str | None = None) -> None:
    nft.delete_table("bridge", TABLE, netns)
    nft.delete_table("inet", CT_TABLE, netns)
