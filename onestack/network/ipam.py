"""IP address management: pure functions on addresses, pools and prefixes.

Neutron's rules: a subnet's allocation pools lie inside its CIDR and never
contain the network address, the IPv4 broadcast address or the gateway; an
address is handed out once per network; IPv6 SLAAC addresses are EUI-64 of the
port's MAC; subnets are carved from a subnet pool's prefixes by prefix length.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from onestack.common import errors

Net = ipaddress.IPv4Network | ipaddress.IPv6Network
Addr = ipaddress.IPv4Address | ipaddress.IPv6Address


def bad(message: str, kind: str = "InvalidInput") -> errors.BadRequest:
    return errors.BadRequest(f"Invalid input for operation: {message}" if kind == "InvalidInput" else message,
                             type=kind)


def parse_cidr(cidr, ip_version: int | None = None) -> Net:
    text = str(cidr)
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise bad(f"'{cidr}' is not a valid IP subnet.") from None
    if "/" not in text:
        raise bad(f"'{cidr}' is not a valid IP subnet.")
    if str(net.network_address) != str(ipaddress.ip_address(text.split("/")[0])):
        raise bad(f"'{cidr}' isn't a recognized IP subnet cidr, '{net}' is recommended.")
    if ip_version is not None and net.version != ip_version:
        raise bad("Cidr and ip_version must match.")
    return net


def parse_ip(value, field: str = "ip_address", version: int | None = None) -> Addr:
    try:
        addr = ipaddress.ip_address(str(value))
    except ValueError:
        raise bad(f"'{value}' is not a valid IP address for {field}.") from None
    if version is not None and addr.version != version:
        raise bad(f"{field} {value} does not match the subnet's IP version {version}.")
    return addr


def default_gateway(net: Net) -> str | None:
    if net.num_addresses < 2:
        return None
    return str(net.network_address + 1)


def _excluded(net: Net) -> set[Addr]:
    out = {net.network_address}
    if net.version == 4 and net.prefixlen < 31:
        out.add(net.broadcast_address)
    return out


def _first_last(net: Net) -> tuple[int, int]:
    first, last = int(net.network_address), int(net.broadcast_address)
    if net.version == 4 and net.prefixlen < 31:
        return first + 1, last - 1
    if net.version == 6 and net.prefixlen < 127:
        return first + 1, last
    return first, last


def default_pools(net: Net, gateway: str | None) -> list[dict]:
    first, last = _first_last(net)
    cls = ipaddress.IPv4Address if net.version == 4 else ipaddress.IPv6Address
    ranges = [(first, last)]
    if gateway:
        g = int(ipaddress.ip_address(gateway))
        new = []
        for a, b in ranges:
            if a <= g <= b:
                if a <= g - 1:
                    new.append((a, g - 1))
                if g + 1 <= b:
                    new.append((g + 1, b))
            else:
                new.append((a, b))
        ranges = new
    return [{"start": str(cls(a)), "end": str(cls(b))} for a, b in ranges if a <= b]


def validate_pools(net: Net, pools: list[dict], gateway: str | None) -> list[dict]:
    """Check explicit allocation pools; 400 when outside the CIDR or overlapping,
    409 when one holds the gateway (Neutron's GatewayConflictWithAllocationPools)."""
    spans = []
    for p in pools:
        if not isinstance(p, dict) or "start" not in p or "end" not in p:
            raise bad("Allocation pools need a start and an end address.")
        a = parse_ip(p["start"], "allocation_pools", net.version)
        b = parse_ip(p["end"], "allocation_pools", net.version)
        if a > b:
            raise bad(f"The allocation pool {a}-{b} spans beyond the subnet cidr {net}.", "InvalidAllocationPool")
        excluded = _excluded(net)
        if a not in net or b not in net or a in excluded or b in excluded:
            raise errors.BadRequest(f"The allocation pool {a}-{b} spans beyond the subnet cidr {net}.",
                                    type="OutOfBoundsAllocationPool")
        spans.append((int(a), int(b), f"{a}-{b}"))
    spans.sort()
    for (_a1, b1, n1), (a2, _b2, n2) in zip(spans, spans[1:], strict=False):
        if a2 <= b1:
            raise errors.BadRequest(f"Found overlapping allocation pools: {n1} and {n2}",
                                    type="OverlappingAllocationPools")
    if gateway:
        g = int(ipaddress.ip_address(gateway))
        for a, b, name in spans:
            if a <= g <= b:
                raise errors.Conflict(f"Gateway ip {gateway} conflicts with allocation pool {name}.",
                                      type="GatewayConflictWithAllocationPools")
    return [{"start": str(ipaddress.ip_address(a)), "end": str(ipaddress.ip_address(b))} for a, b, _ in spans]


def in_pools(addr: Addr, pools: list[dict]) -> bool:
    return any(ipaddress.ip_address(p["start"]) <= addr <= ipaddress.ip_address(p["end"]) for p in pools)


def first_free(pools: list[dict], used: set[str], never: Iterable[str] = ()) -> str | None:
    """The lowest address of the pools that is neither in ``used`` nor ``never``."""
    taken = {int(ipaddress.ip_address(u)) for u in list(used) + [n for n in never if n]}
    for p in sorted(pools, key=lambda p: int(ipaddress.ip_address(p["start"]))):
        a, b = int(ipaddress.ip_address(p["start"])), int(ipaddress.ip_address(p["end"]))
        cls = type(ipaddress.ip_address(p["start"]))
        x = a
        while x <= b:
            if x not in taken:
                return str(cls(x))
            x += 1
    return None


def usable(net: Net, addr: Addr, gateway: str | None) -> bool:
    """May ``addr`` be given to a port on request? Not the network or broadcast address."""
    return addr in net and addr not in _excluded(net)


def eui64(net: Net, mac: str) -> str:
    """IPv6 SLAAC address of a MAC in a /64 (Neutron's ipv6_utils.get_ipv6_addr_by_EUI64)."""
    octets = [int(x, 16) for x in mac.split(":")]
    octets[0] ^= 0x02
    iid = octets[:3] + [0xFF, 0xFE] + octets[3:]
    value = int.from_bytes(bytes(iid), "big")
    return str(ipaddress.IPv6Address(int(net.network_address) | value))


def allocate_prefix(prefixes: list[str], prefixlen: int, used: Iterable[str]) -> str | None:
    """The first free ``/prefixlen`` inside the pool's prefixes, not overlapping ``used``."""
    used_nets = [ipaddress.ip_network(u) for u in used]
    for pfx in prefixes:
        p = ipaddress.ip_network(pfx)
        if prefixlen < p.prefixlen:
            continue
        for cand in p.subnets(new_prefix=prefixlen):
            if not any(cand.overlaps(u) for u in used_nets):
                return str(cand)
    return None


def overlaps(a: str, b: str) -> bool:
    na, nb = ipaddress.ip_network(a), ipaddress.ip_network(b)
    return na.version == nb.version and na.overlaps(nb)
