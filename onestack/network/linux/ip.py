"""Namespaces, links, addresses, routes and sysctls, through iproute2's ``ip -j``.

Every ``ensure_*`` is idempotent: it reads what the kernel has (JSON from ``ip -j``),
changes only what differs and recreates an object whose identity is wrong (a veth
whose peer is missing, a VXLAN device with another VNI). ``sync_*`` makes a list of
addresses, routes or FDB entries exactly the desired one. ``netns=None`` means the
namespace this process runs in. Commands are argument lists, never shell strings;
a failure raises :class:`IpError` naming the command and the kernel's message.
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

NETNS_DIR = "/run/netns"
IFNAMSIZ = 15  # the kernel's limit for a device name (16 with the NUL)
_NAME_RE = re.compile(r"^[A-Za-z0-9_.:@+-]+$")
TIMEOUT = 30


class IpError(RuntimeError):
    """A command of the data plane failed; ``str()`` says which and why."""

    def __init__(self, cmd: Sequence[str], returncode: int, stderr: str):
        self.cmd = list(cmd)
        self.returncode = returncode
        self.stderr = stderr.strip()
        super().__init__(f"{' '.join(self.cmd)} failed ({returncode}): {self.stderr}")


# ---------------------------------------------------------------- running commands


def run(cmd: Sequence[str], *, check: bool = True, input: str | None = None,
        timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """Run an argument list; raise :class:`IpError` when it fails and ``check``."""
    try:
        proc = subprocess.run(list(cmd), input=input, capture_output=True, text=True,
                              timeout=timeout)
    except FileNotFoundError as e:
        raise IpError(cmd, 127, f"{cmd[0]} is not installed (scripts/install.sh)") from e
    except subprocess.TimeoutExpired as e:
        raise IpError(cmd, -1, f"no answer within {timeout} s") from e
    if check and proc.returncode != 0:
        raise IpError(cmd, proc.returncode, proc.stderr or proc.stdout)
    return proc


def netns_cmd(netns: str | None, argv: Sequence[str]) -> list[str]:
    """``argv`` run inside ``netns`` (or as it is when ``netns`` is None)."""
    return ["ip", "netns", "exec", netns, *argv] if netns else list(argv)


def netns_exec(netns: str | None, argv: Sequence[str], *, check: bool = True,
               input: str | None = None, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return run(netns_cmd(netns, argv), check=check, input=input, timeout=timeout)


def ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    return run(cmd, check=check).stdout


def ip_json(*args: str, netns: str | None = None) -> list[dict]:
    out = ip("-j", *args, netns=netns)
    return json.loads(out) if out.strip() else []


def check_name(name: str) -> str:
    """A device name the kernel accepts: at most 15 characters, no spaces or '/'."""
    if not name or len(name) > IFNAMSIZ or not _NAME_RE.match(name):
        raise ValueError(f"invalid device name {name!r} (1-{IFNAMSIZ} of [A-Za-z0-9_.:@+-])")
    return name


def device_name(prefix: str, ident: str) -> str:
    """Neutron's naming: prefix + the start of the id, cut to 15 characters."""
    return check_name((prefix + ident.replace("-", ""))[:IFNAMSIZ])


# ---------------------------------------------------------------- namespaces


def netns_exists(name: str) -> bool:
    return os.path.exists(os.path.join(NETNS_DIR, name))


def list_netns(prefix: str = "") -> list[str]:
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(prefix))


def ensure_netns(name: str) -> bool:
    """Create the namespace (with ``lo`` up) unless it exists; True if created."""
    if "/" in name or not name or name.startswith("."):
        raise ValueError(f"invalid namespace name {name!r}")
    created = False
    if not netns_exists(name):
        proc = run(["ip", "netns", "add", name], check=False)
        if proc.returncode != 0 and not netns_exists(name):
            raise IpError(["ip", "netns", "add", name], proc.returncode, proc.stderr)
        created = proc.returncode == 0
    link = get_link("lo", name)
    if link is not None and "UP" not in link.get("flags", []):
        ip("link", "set", "lo", "up", netns=name)
    return created


def netns_pids(name: str) -> list[int]:
    if not netns_exists(name):
        return []
    out = run(["ip", "netns", "pids", name], check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def kill_netns_processes(name: str, *, grace: float = 3.0) -> None:
    """SIGTERM every process inside the namespace, SIGKILL what is left after ``grace``."""
    pids = netns_pids(name)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if _alive(p)]
            if pids:
                time.sleep(0.05)
        if not pids:
            return


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def delete_netns(name: str, *, kill: bool = True) -> bool:
    """Remove the namespace (its processes first); its devices go with it. True if removed."""
    if not netns_exists(name):
        return False
    if kill:
        kill_netns_processes(name)
    # The kernel destroys a namespace's devices in the background; deleting them first
    # makes the veth peers on the bridges disappear now, so a new port of the same
    # name cannot meet the old one.
    for link in list_links(name):
        if link["ifname"] != "lo":
            run(["ip", "-n", name, "link", "delete", "dev", link["ifname"]], check=False)
    proc = run(["ip", "netns", "delete", name], check=False)
    if proc.returncode != 0 and netns_exists(name):
        raise IpError(["ip", "netns", "delete", name], proc.returncode, proc.stderr)
    return True


T = TypeVar("T")
CLONE_NEWNET = 0x40000000


def in_netns(netns: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` on a short-lived thread that has entered ``netns`` (setns(2) changes
    only the calling thread). Sockets it creates stay in that namespace, usable from
    anywhere in this process; no process is started."""
    result: dict[str, object] = {}

    def run_there() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            fd = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY)
        except FileNotFoundError:
            result["error"] = IpError(["setns", netns], 1, f"namespace {netns} does not exist")
            return
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                err = os.strerror(ctypes.get_errno())
                result["error"] = IpError(["setns", netns], 1, err)
                return
            result["value"] = fn()
        except BaseException as e:  # handed to the caller's thread
            result["error"] = e
        finally:
            os.close(fd)

    t = threading.Thread(target=run_there, name=f"netns-{netns}")
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]  # type: ignore[return-value]


def gratuitous_arp(dev: str, address: str, netns: str | None = None) -> None:
    """Announce ``address`` on ``dev`` (who-has for itself, broadcast) so that neighbours
    update their ARP caches now, e.g. when a floating IP moves to another router."""
    link = get_link(dev, netns)
    if link is None:
        raise IpError(["arp", dev], 1, f"device {dev} does not exist")
    mac = bytes.fromhex(link["address"].replace(":", ""))
    ip4 = socket.inet_aton(address)
    frame = (b"\xff" * 6 + mac + struct.pack("!H", 0x0806)
             + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + ip4 + b"\0" * 6 + ip4)

    def send() -> None:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
            s.bind((dev, 0))
            s.send(frame)

    if netns:
        in_netns(netns, send)
    else:
        send()


def set_sysctl(key: str, value: str | int, netns: str | None = None) -> None:
    """``sysctl -w key=value`` inside ``netns`` (e.g. ``net.ipv4.ip_forward``)."""
    if get_sysctl(key, netns) != str(value):
        netns_exec(netns, ["sysctl", "-qw", f"{key}={value}"])


def get_sysctl(key: str, netns: str | None = None) -> str:
    return netns_exec(netns, ["sysctl", "-n", key]).stdout.strip()


# ---------------------------------------------------------------- links


def get_link(name: str, netns: str | None = None) -> dict | None:
    """The ``ip -d -j link show`` record of a device, or None if it does not exist."""
    if netns and not netns_exists(netns):
        return None
    cmd = ["ip", *(["-n", netns] if netns else []), "-d", "-j", "link", "show", "dev", name]
    proc = run(cmd, check=False)
    if proc.returncode != 0:
        if "does not exist" in proc.stderr or "Cannot find device" in proc.stderr:
            return None
        raise IpError(cmd, proc.returncode, proc.stderr)
    records = json.loads(proc.stdout or "[]")
    return records[0] if records else None


def link_exists(name: str, netns: str | None = None) -> bool:
    return get_link(name, netns) is not None


def list_links(netns: str | None = None) -> list[dict]:
    return ip_json("-d", "link", "show", netns=netns)


def link_kind(link: dict) -> str | None:
    return (link.get("linkinfo") or {}).get("info_kind")


def delete_link(name: str, netns: str | None = None) -> bool:
    """Delete a device (for a veth, both ends); True if there was one."""
    if get_link(name, netns) is None:
        return False
    ip("link", "delete", "dev", name, netns=netns)
    return True


def set_link(name: str, netns: str | None = None, *, up: bool | None = None,
             mtu: int | None = None, master: str | None = None, address: str | None = None,
             current: dict | None = None) -> None:
    """Change only what differs; ``master=""`` detaches the device from its bridge."""
    link = current if current is not None else get_link(name, netns)
    if link is None:
        raise IpError(["ip", "link", "set", name], 1, f"device {name} does not exist"
                      + (f" in namespace {netns}" if netns else ""))
    args: list[str] = []
    if address is not None and link.get("address", "").lower() != address.lower():
        args += ["address", address]
    if mtu is not None and link.get("mtu") != mtu:
        args += ["mtu", str(mtu)]
    if master is not None and (link.get("master") or "") != master:
        args += ["master", master] if master else ["nomaster"]
    if up is True and "UP" not in link.get("flags", []):
        args.append("up")
    elif up is False and "UP" in link.get("flags", []):
        args.append("down")
    if args:
        ip("link", "set", "dev", name, *args, netns=netns)


def set_up(name: str, netns: str | None = None) -> None:
    set_link(name, netns, up=True)


def set_down(name: str, netns: str | None = None) -> None:
    set_link(name, netns, up=False)


def set_mtu(name: str, mtu: int, netns: str | None = None) -> None:
    set_link(name, netns, mtu=mtu)


def set_master(name: str, bridge: str | None, netns: str | None = None) -> None:
    set_link(name, netns, master=bridge or "")


def _wrong_kind(name: str, netns: str | None, link: dict, kind: str) -> None:
    where = f" in namespace {netns}" if netns else ""
    raise IpError(["ip", "link", "add", name], 1,
                  f"device {name}{where} exists as {link_kind(link) or 'a device'}, not {kind}")


def ensure_bridge(name: str, netns: str | None = None, *, mtu: int | None = None) -> dict:
    """A Linux bridge (no STP, pure L2: no IPv6 address of its own), up.

    Bridged IP traffic is passed through netfilter (``nf_call_iptables``) so that the
    security groups' conntrack sees it; see ``secgroups``.
    """
    check_name(name)
    link = get_link(name, netns)
    if link is not None and link_kind(link) != "bridge":
        _wrong_kind(name, netns, link, "a bridge")
    if link is None:
        ip("link", "add", "name", name, "type", "bridge", "stp_state", "0", "forward_delay", "0",
           "nf_call_iptables", "1", "nf_call_ip6tables", "1", netns=netns)
        ip("link", "set", "dev", name, "addrgenmode", "none", netns=netns)
        link = get_link(name, netns)
    set_link(name, netns, mtu=mtu, up=True, current=link)
    return get_link(name, netns) or {}


def _veth_pair_ok(a: dict | None, b: dict | None) -> bool:
    if a is None or b is None or link_kind(a) != "veth" or link_kind(b) != "veth":
        return False
    return a.get("link_index") == b.get("ifindex") and b.get("link_index") == a.get("ifindex") \
        or a.get("link") == b.get("ifname")


def ensure_veth(name: str, peer: str, *, netns: str | None = None,
                peer_netns: str | None = None, mtu: int | None = None,
                master: str | None = None, peer_master: str | None = None,
                address: str | None = None, peer_address: str | None = None) -> None:
    """A veth pair: ``name`` in ``netns``, ``peer`` in ``peer_netns``, both up.

    ``master``/``peer_master`` put an end on a bridge of its namespace. A half pair,
    or two devices of these names that are not each other's peers, is recreated.
    """
    check_name(name)
    check_name(peer)
    a, b = get_link(name, netns), get_link(peer, peer_netns)
    if not _veth_pair_ok(a, b):
        for dev, ns, link in ((name, netns, a), (peer, peer_netns, b)):
            if link is not None:
                if link_kind(link) != "veth":
                    _wrong_kind(dev, ns, link, "a veth")
                delete_link(dev, ns)
        peer_args = ["peer", "name", peer]
        if peer_netns != netns:
            # `ip -n A link add ... netns B` moves the peer; None is this process's namespace
            peer_args += ["netns", peer_netns or _self_netns_ref()]
        ip("link", "add", "name", name, *(["address", address] if address else []),
           "type", "veth", *peer_args, *(["address", peer_address] if peer_address else []),
           netns=netns)
    set_link(name, netns, mtu=mtu, address=address, master=master, up=True)
    set_link(peer, peer_netns, mtu=mtu, address=peer_address, master=peer_master, up=True)


def _self_netns_ref() -> str:
    # `netns` takes a name or a pid; our own pid's namespace is the one we run in
    return str(os.getpid())


def ensure_tap(name: str, netns: str | None = None, *, mtu: int | None = None,
               master: str | None = None, address: str | None = None) -> None:
    """A persistent tap device (what a hypervisor opens), optionally on a bridge, up."""
    check_name(name)
    link = get_link(name, netns)
    if link is not None and link_kind(link) != "tun":
        _wrong_kind(name, netns, link, "a tap")
    if link is None:
        ip("tuntap", "add", "dev", name, "mode", "tap", netns=netns)
    set_link(name, netns, mtu=mtu, address=address, master=master, up=True)


def ensure_vxlan(name: str, vni: int, *, local: str, dstport: int = 4789,
                 dev: str | None = None, netns: str | None = None, mtu: int | None = None,
                 master: str | None = None) -> None:
    """A VXLAN device (learning off: peers come from the FDB, see :func:`sync_vxlan_fdb`)."""
    check_name(name)
    if not 1 <= int(vni) <= 16777215:
        raise ValueError(f"VXLAN VNI {vni} is outside 1-16777215")
    ipaddress.ip_address(local)
    link = get_link(name, netns)
    if link is not None:
        data = (link.get("linkinfo") or {}).get("info_data") or {}
        same = (link_kind(link) == "vxlan" and data.get("id") == int(vni)
                and data.get("local") == local and data.get("port") == dstport
                and not data.get("learning", True))
        if not same:
            if link_kind(link) != "vxlan":
                _wrong_kind(name, netns, link, "a VXLAN device")
            delete_link(name, netns)
            link = None
    if link is None:
        ip("link", "add", "name", name, "type", "vxlan", "id", str(vni), "local", local,
           "dstport", str(dstport), "nolearning", *(["dev", dev] if dev else []), netns=netns)
    set_link(name, netns, mtu=mtu, master=master, up=True)


FLOOD_MAC = "00:00:00:00:00:00"


def list_fdb(dev: str, netns: str | None = None) -> list[dict]:
    cmd = ["bridge", *(["-n", netns] if netns else []), "-j", "fdb", "show", "dev", dev]
    out = run(cmd).stdout
    return json.loads(out) if out.strip() else []


def sync_vxlan_fdb(dev: str, peers: Iterable[str], *, macs: dict[str, str] | None = None,
                   netns: str | None = None) -> None:
    """Make the device's remote entries exactly: flood to every peer (broadcast, unknown
    unicast, multicast) plus ``macs`` (MAC -> peer address) for known guests."""
    want: set[tuple[str, str]] = {(FLOOD_MAC, p) for p in peers}
    want |= {(m.lower(), p) for m, p in (macs or {}).items()}
    have = {(e["mac"].lower(), e["dst"]) for e in list_fdb(dev, netns) if e.get("dst")}
    base = ["bridge", *(["-n", netns] if netns else []), "fdb"]
    for mac, dst in sorted(have - want):
        run([*base, "del", mac, "dev", dev, "dst", dst])
    for mac, dst in sorted(want - have):
        verb = "append" if mac == FLOOD_MAC else "replace"
        run([*base, verb, mac, "dev", dev, "dst", dst])


# ---------------------------------------------------------------- addresses


def list_addresses(dev: str, netns: str | None = None) -> list[str]:
    """The device's global addresses as CIDRs (link-local IPv6 is the kernel's)."""
    out: list[str] = []
    for rec in ip_json("addr", "show", "dev", dev, netns=netns):
        for a in rec.get("addr_info", []):
            if a.get("scope") == "link" and a.get("family") == "inet6":
                continue
            out.append(f"{a['local']}/{a['prefixlen']}")
    return out


def _norm_cidr(cidr: str) -> str:
    iface = ipaddress.ip_interface(cidr)
    return f"{iface.ip}/{iface.network.prefixlen}"


def sync_addresses(dev: str, cidrs: Iterable[str], netns: str | None = None) -> None:
    """Make the device's addresses exactly ``cidrs`` ("10.0.0.1/24"; a bare IP is /32)."""
    want = [_norm_cidr(c) for c in cidrs]
    have = [_norm_cidr(c) for c in list_addresses(dev, netns)]
    for c in have:
        if c not in want:
            ip("addr", "del", c, "dev", dev, netns=netns)
    for c in want:
        if c not in have:
            ip("addr", "add", c, "dev", dev, netns=netns)


def ensure_address(dev: str, cidr: str, netns: str | None = None) -> None:
    if _norm_cidr(cidr) not in {_norm_cidr(c) for c in list_addresses(dev, netns)}:
        ip("addr", "add", _norm_cidr(cidr), "dev", dev, netns=netns)


def delete_address(dev: str, cidr: str, netns: str | None = None) -> None:
    if _norm_cidr(cidr) in {_norm_cidr(c) for c in list_addresses(dev, netns)}:
        ip("addr", "del", _norm_cidr(cidr), "dev", dev, netns=netns)


# ---------------------------------------------------------------- routes


@dataclass(frozen=True)
class Route:
    """A route: ``destination`` ("default" or a CIDR) via ``nexthop`` and/or ``dev``."""

    destination: str
    nexthop: str | None = None
    dev: str | None = None

    def key(self) -> tuple[str, str | None]:
        dst = self.destination
        if dst not in ("default",):
            dst = str(ipaddress.ip_network(dst, strict=False))
            if dst in ("0.0.0.0/0", "::/0"):
                dst = "default"
        return dst, self.nexthop

    @property
    def version(self) -> int:
        if self.destination == "default":
            return ipaddress.ip_address(self.nexthop).version if self.nexthop else 4
        return ipaddress.ip_network(self.destination, strict=False).version


def list_routes(netns: str | None = None, *, version: int = 4,
                proto: str | None = None) -> list[Route]:
    args = [f"-{version}", "route", "show", "table", "main"]
    if proto:
        args += ["proto", proto]
    out = []
    for r in ip_json(*args, netns=netns):
        dst = r.get("dst", "default")
        if dst != "default" and "/" not in dst:
            dst = f"{dst}/{32 if version == 4 else 128}"
        out.append(Route(dst, r.get("gateway"), r.get("dev")))
    return out


def sync_routes(routes: Iterable[Route], netns: str | None = None, *,
                proto: str = "static") -> None:
    """Make the routes of protocol ``proto`` (ours) exactly ``routes``; the kernel's own
    routes for connected subnets are left alone."""
    want = {r.key(): r for r in routes}
    for version in (4, 6):
        for r in list_routes(netns, version=version, proto=proto):
            if r.key() not in want:
                dst, via = r.key()
                ip(f"-{version}", "route", "del", dst, *(["via", via] if via else []),
                   "proto", proto, netns=netns)
    have = {r.key() for v in (4, 6) for r in list_routes(netns, version=v, proto=proto)}
    for key, r in want.items():
        if key in have:
            continue
        dst, via = key
        args = [f"-{r.version}", "route", "replace", dst]
        if via:
            args += ["via", via]
        if r.dev:
            args += ["dev", r.dev]
        ip(*args, "proto", proto, netns=netns)
