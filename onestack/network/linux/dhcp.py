"""DHCP for a network: one dnsmasq in the network's ``qdhcp-<network>`` namespace.

The DHCP port is a veth: ``ns-<port>`` inside the namespace (the port's MAC and
addresses), ``tap<port>`` on the network's bridge. dnsmasq answers only the hosts of
its hosts file (``--dhcp-range=...,static``), one line ``MAC,hostname,IP`` per fixed
IP; per-subnet options (router, DNS servers, classless static routes 121/249 with the
metadata route, MTU 26) live in the options file. :func:`sync` reconciles everything:
a change of hosts or options rewrites the files and sends SIGHUP, a change of the
command line (subnets, interface) restarts dnsmasq, and :func:`delete` stops it and
removes the namespace. The process is found through its pid file and checked by its
command line before any signal, so a recycled pid is never signalled.

Leases: dnsmasq keeps them in memory (SIGHUP does not drop them) and reads its lease
file only at start. It refuses a fixed IP to a new MAC while it holds a lease of that
IP for the old one, so a deleted port's lease would keep a new port with the same IP
from getting its address. Every sync therefore releases the leases no host entry
wants any more (:func:`stale_leases`): ``dhcp_release`` (dnsmasq-utils) inside the
namespace, as Neutron's DHCP agent does, or, where that does not take, a restart
with a lease file cleaned of them (which every start does, :func:`clean_leases`).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from onestack.network.linux import ip as iplib

log = logging.getLogger(__name__)

NS_PREFIX = "qdhcp-"
METADATA_IP = "169.254.169.254"
DEFAULT_LEASE = 86400
RELEASE_TOOL = "dhcp_release"  # dnsmasq-utils: sends dnsmasq a DHCPRELEASE for a client
RELEASE_WAIT = 2.0  # seconds for dnsmasq to drop released leases from its lease file
_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


@dataclass
class DhcpHost:
    """One fixed IP of a port: dnsmasq hands ``ip`` to ``mac`` (and names it)."""

    mac: str
    ip: str
    hostname: str | None = None

    def name(self) -> str:
        if self.hostname:
            if not _HOSTNAME_RE.match(self.hostname):
                raise ValueError(f"invalid DHCP hostname {self.hostname!r}")
            return self.hostname
        return "host-" + self.ip.replace(".", "-").replace(":", "-")


@dataclass
class DhcpSubnet:
    id: str
    cidr: str
    gateway_ip: str | None = None
    dns_nameservers: list[str] = field(default_factory=list)
    host_routes: list[tuple[str, str]] = field(default_factory=list)  # (destination, nexthop)
    enable_dhcp: bool = True


@dataclass
class DhcpNetwork:
    """What DHCP of one network should look like (built by the agent from the API)."""

    id: str
    port_id: str  # the DHCP port
    port_mac: str
    port_ips: list[str]  # the DHCP port's fixed IPs, one per DHCP-enabled subnet
    bridge: str  # the network's bridge the port plugs into ...
    bridge_netns: str | None = None  # ... and where that bridge lives
    subnets: list[DhcpSubnet] = field(default_factory=list)
    hosts: list[DhcpHost] = field(default_factory=list)
    mtu: int | None = None
    # no router on the network: route 169.254.169.254 via the DHCP port (the metadata
    # proxy then listens in this namespace)
    isolated_metadata: bool = False
    lease_seconds: int = DEFAULT_LEASE

    @property
    def namespace(self) -> str:
        return NS_PREFIX + self.id

    @property
    def device(self) -> str:
        return iplib.device_name("ns-", self.port_id)

    @property
    def bridge_device(self) -> str:
        return iplib.device_name("tap", self.port_id)

    def dhcp_subnets(self) -> list[DhcpSubnet]:
        return [s for s in self.subnets if s.enable_dhcp]

    def port_ip_in(self, subnet: DhcpSubnet) -> ipaddress.IPv4Interface | None:
        net = ipaddress.ip_network(subnet.cidr, strict=False)
        for a in self.port_ips:
            if ipaddress.ip_address(a.split("/")[0]) in net:
                return ipaddress.ip_interface(f"{a.split('/')[0]}/{net.prefixlen}")
        return None


def _tag(index: int) -> str:
    return f"subnet{index}"


# ---------------------------------------------------------------- file generation (pure)


def served_hosts(net: DhcpNetwork) -> list[DhcpHost]:
    """The hosts dnsmasq serves: fixed IPs in a DHCP-enabled subnet."""
    nets = [ipaddress.ip_network(s.cidr, strict=False) for s in net.dhcp_subnets()]
    return [h for h in net.hosts if any(ipaddress.ip_address(h.ip) in n for n in nets)]


def hosts_file(net: DhcpNetwork) -> str:
    """``MAC,hostname,IP`` per fixed IP in a DHCP-enabled subnet (IPv6 in brackets)."""
    lines = []
    for h in served_hosts(net):
        addr = ipaddress.ip_address(h.ip)
        ip_text = f"[{addr}]" if addr.version == 6 else str(addr)
        lines.append(f"{h.mac.lower()},{h.name()},{ip_text}")
    return "".join(line + "\n" for line in sorted(lines))


def opts_file(net: DhcpNetwork) -> str:
    """Options per subnet tag: router, DNS, classless routes (121 and 249), MTU (26)."""
    lines: list[str] = []
    if net.mtu:
        lines.append(f"option:mtu,{net.mtu}")
    for i, s in enumerate(net.dhcp_subnets()):
        subnet = ipaddress.ip_network(s.cidr, strict=False)
        tag = f"tag:{_tag(i)}"
        if subnet.version == 6:
            if s.dns_nameservers:
                servers = ",".join(f"[{d}]" for d in s.dns_nameservers)
                lines.append(f"{tag},option6:dns-server,{servers}")
            continue
        # an empty router option stops dnsmasq offering itself as the router
        lines.append(f"{tag},option:router" + (f",{s.gateway_ip}" if s.gateway_ip else ""))
        if s.dns_nameservers:
            lines.append(f"{tag},option:dns-server," + ",".join(s.dns_nameservers))
        routes = [(str(ipaddress.ip_network(d, strict=False)), nh) for d, nh in s.host_routes]
        port_ip = net.port_ip_in(s)
        if net.isolated_metadata and port_ip is not None:
            if not any(d == f"{METADATA_IP}/32" for d, _ in routes):
                routes.append((f"{METADATA_IP}/32", str(port_ip.ip)))
        if routes:
            # a client given option 121 ignores option 3: the default route goes in too
            if s.gateway_ip and not any(d == "0.0.0.0/0" for d, _ in routes):
                routes.append(("0.0.0.0/0", s.gateway_ip))
            flat = ",".join(f"{d},{nh}" for d, nh in routes)
            lines.append(f"{tag},option:classless-static-route,{flat}")
            lines.append(f"{tag},249,{flat}")
    return "".join(line + "\n" for line in lines)


@dataclass(frozen=True)
class Lease:
    """One line of dnsmasq's lease file: ``expiry MAC IP hostname client-id`` for IPv4;
    for IPv6 the MAC field holds the IAID (and a ``duid`` line precedes them)."""

    mac: str  # lower case; the IAID for IPv6
    ip: str
    client_id: str | None  # "01:fa:16:..." as dnsmasq writes it; None for "*"
    line: str

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.ip).version


def _lease(line: str) -> Lease | None:
    f = line.split()
    if len(f) < 5 or f[0] == "duid":
        return None
    try:
        ip = str(ipaddress.ip_address(f[2]))
    except ValueError:
        return None
    return Lease(f[1].lower(), ip, None if f[4] == "*" else f[4], line)


def parse_leases(text: str) -> list[Lease]:
    """The leases of a lease file (lines that are not leases are left out)."""
    return [x for x in map(_lease, text.splitlines()) if x is not None]


def stale_leases(net: DhcpNetwork, leases: list[Lease]) -> list[Lease]:
    """The IPv4 leases no host entry wants any more: their (MAC, IP) is not served, as
    when the port was deleted or its IP now belongs to another MAC. (An IPv6 lease
    names no MAC; :func:`clean_leases` drops those of IPs not served at start.)"""
    wanted = {(h.mac.lower(), str(ipaddress.ip_address(h.ip))) for h in served_hosts(net)}
    return [x for x in leases if x.version == 4 and (x.mac, x.ip) not in wanted]


def clean_leases(net: DhcpNetwork, text: str) -> str:
    """The lease file without stale leases, nor IPv6 leases of IPs no longer served:
    what dnsmasq should load at start."""
    stale = {x.line for x in stale_leases(net, parse_leases(text))}
    v6 = {str(ipaddress.ip_address(h.ip)) for h in served_hosts(net) if ":" in h.ip}
    keep = []
    for line in text.splitlines():
        lease = _lease(line)
        if lease is None:
            if line.startswith("duid "):
                keep.append(line)
        elif line not in stale and (lease.version == 4 or lease.ip in v6):
            keep.append(line)
    return "".join(line + "\n" for line in keep)


def command(net: DhcpNetwork, files: DhcpFiles) -> list[str]:
    """The dnsmasq command line (run inside the network's namespace)."""
    cmd = [
        "dnsmasq",
        "--conf-file=/dev/null",
        "--no-hosts",
        "--no-resolv",
        "--bind-interfaces",
        f"--interface={net.device}",
        "--except-interface=lo",
        f"--pid-file={files.pid}",
        f"--dhcp-hostsfile={files.hosts}",
        f"--dhcp-optsfile={files.opts}",
        f"--dhcp-leasefile={files.leases}",
        "--dhcp-authoritative",
        "--dhcp-lease-max=65536",
    ]
    for i, s in enumerate(net.dhcp_subnets()):
        subnet = ipaddress.ip_network(s.cidr, strict=False)
        if subnet.version == 4:
            cmd.append(f"--dhcp-range=set:{_tag(i)},{subnet.network_address},static,"
                       f"{subnet.netmask},{net.lease_seconds}s")
        else:
            cmd.append(f"--dhcp-range=set:{_tag(i)},{subnet.network_address},static,"
                       f"{subnet.prefixlen},{net.lease_seconds}s")
    return cmd


# ---------------------------------------------------------------- the process


@dataclass(frozen=True)
class DhcpFiles:
    dir: Path

    @property
    def hosts(self) -> Path:
        return self.dir / "host"

    @property
    def opts(self) -> Path:
        return self.dir / "opts"

    @property
    def pid(self) -> Path:
        return self.dir / "pid"

    @property
    def leases(self) -> Path:
        return self.dir / "leases"


class DhcpError(RuntimeError):
    pass


def files_for(state_dir: str | os.PathLike, network_id: str) -> DhcpFiles:
    if "/" in network_id or network_id.startswith("."):
        raise ValueError(f"invalid network id {network_id!r}")
    return DhcpFiles(Path(state_dir) / "dhcp" / network_id)


def running_pid(files: DhcpFiles) -> int | None:
    """The pid of the dnsmasq serving these files, if one runs (checked by cmdline)."""
    try:
        pid = int(files.pid.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return None
    if not iplib._alive(pid):
        return None
    if not argv or not argv[0].endswith(b"dnsmasq"):
        return None
    if f"--pid-file={files.pid}".encode() not in argv:
        return None
    return pid


def in_namespace(pid: int, netns: str) -> bool:
    """Whether ``pid`` serves the namespace named ``netns`` now: a dnsmasq left in a
    namespace that was since deleted and made again (its node restarted) serves nobody."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(os.path.join(iplib.NETNS_DIR, netns)).st_ino
    except OSError:
        return False


def _cmdline(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0")
    return [a.decode() for a in raw.split(b"\0")]


def _write_if_changed(path: Path, text: str) -> bool:
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o644)  # dnsmasq re-reads them on SIGHUP after dropping privileges
    os.replace(tmp, path)
    return True


def stop(files: DhcpFiles, *, timeout: float = 5.0) -> bool:
    """Stop the dnsmasq of these files (its whole process group); True if one ran."""
    pid = running_pid(files)
    if pid is None:
        files.pid.unlink(missing_ok=True)
        return False
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        pgid = None
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            if pgid == pid:  # dnsmasq is its own session/group leader after daemonizing
                os.killpg(pgid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + timeout
        while iplib._alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if not iplib._alive(pid):
            break
    if iplib._alive(pid):
        raise DhcpError(f"dnsmasq {pid} did not stop")
    files.pid.unlink(missing_ok=True)
    return True


def read_leases(files: DhcpFiles) -> list[Lease]:
    try:
        return parse_leases(files.leases.read_text())
    except FileNotFoundError:
        return []


def _clean_lease_file(net: DhcpNetwork, files: DhcpFiles) -> None:
    try:
        text = files.leases.read_text()
    except FileNotFoundError:
        return
    _write_if_changed(files.leases, clean_leases(net, text))


def release(net: DhcpNetwork, files: DhcpFiles, leases: list[Lease]) -> bool:
    """Ask the running dnsmasq to drop ``leases`` (a DHCPRELEASE from ``dhcp_release``
    on the DHCP port, as if from each client); True once its lease file no longer has
    them. False if the tool is missing or dnsmasq kept some (the caller restarts it)."""
    if shutil.which(RELEASE_TOOL) is None:
        log.warning("%s is missing (package dnsmasq-utils): restarting dnsmasq of network %s "
                    "to drop stale leases", RELEASE_TOOL, net.id)
        return False
    log.info("DHCP of network %s: releasing %s", net.id, ", ".join(f"{x.ip} ({x.mac})" for x in leases))
    for x in leases:
        argv = [RELEASE_TOOL, net.device, x.ip, x.mac, *([x.client_id] if x.client_id else [])]
        done = iplib.netns_exec(net.namespace, argv, check=False)
        if done.returncode != 0:
            log.warning("%s %s %s in %s: %s", RELEASE_TOOL, x.ip, x.mac, net.namespace,
                        (done.stderr or done.stdout).strip())
    gone = {(x.mac, x.ip) for x in leases}
    deadline = time.monotonic() + RELEASE_WAIT
    while gone & {(x.mac, x.ip) for x in read_leases(files)}:
        if time.monotonic() > deadline:
            log.warning("dnsmasq of network %s kept leases it was asked to release", net.id)
            return False
        time.sleep(0.02)
    return True


def _start(net: DhcpNetwork, files: DhcpFiles, *, timeout: float = 10.0) -> int:
    files.pid.unlink(missing_ok=True)
    _clean_lease_file(net, files)  # dnsmasq loads its leases from it, stale ones too
    # dnsmasq forks into the background once it has bound its sockets, and its first
    # process exits non-zero with the reason if that failed
    proc = iplib.netns_exec(net.namespace, command(net, files), check=False, timeout=timeout)
    if proc.returncode != 0:
        raise DhcpError(f"dnsmasq for network {net.id} did not start: "
                        f"{(proc.stderr or proc.stdout).strip()}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = running_pid(files)
        if pid is not None:
            return pid
        time.sleep(0.02)
    raise DhcpError(f"dnsmasq for network {net.id} wrote no pid file within {timeout} s")


def start(net: DhcpNetwork, state_dir: str | os.PathLike) -> int:
    """Start the network's dnsmasq unless it runs; returns its pid. (:func:`sync` is
    what agents call: it also writes the files and plumbs the port.)"""
    files = files_for(state_dir, net.id)
    pid = running_pid(files)
    if pid is not None and not in_namespace(pid, net.namespace):
        stop(files)
        pid = None
    return pid if pid is not None else _start(net, files)


def reload(network_id: str, state_dir: str | os.PathLike) -> bool:
    """SIGHUP: dnsmasq re-reads its hosts and options files; False if none runs."""
    pid = running_pid(files_for(state_dir, network_id))
    if pid is None:
        return False
    os.kill(pid, signal.SIGHUP)
    return True


def ensure_port(net: DhcpNetwork) -> None:
    """The namespace and the DHCP port: veth into the bridge, MAC, addresses."""
    iplib.ensure_netns(net.namespace)
    iplib.ensure_veth(net.device, net.bridge_device, netns=net.namespace,
                      peer_netns=net.bridge_netns, mtu=net.mtu, address=net.port_mac,
                      peer_master=net.bridge)
    cidrs = []
    for s in net.dhcp_subnets():
        iface = net.port_ip_in(s)
        if iface is None:
            raise ValueError(f"the DHCP port of network {net.id} has no address in {s.cidr}")
        cidrs.append(str(iface))
    if net.isolated_metadata:
        cidrs.append(f"{METADATA_IP}/32")
    iplib.sync_addresses(net.device, cidrs, net.namespace)


def sync(net: DhcpNetwork, state_dir: str | os.PathLike) -> str:
    """Reconcile DHCP of ``net``; returns what was done: started, restarted, reloaded,
    released (stale leases only), unchanged or stopped (no DHCP-enabled subnet left)."""
    files = files_for(state_dir, net.id)
    if not net.dhcp_subnets():
        delete(net.id, state_dir)
        return "stopped"
    ensure_port(net)
    files.dir.mkdir(parents=True, exist_ok=True)
    os.chmod(files.dir, 0o755)
    changed = _write_if_changed(files.hosts, hosts_file(net))
    changed = _write_if_changed(files.opts, opts_file(net)) or changed
    pid = running_pid(files)
    if pid is None:
        _start(net, files)
        return "started"
    stale = stale_leases(net, read_leases(files))
    if (_cmdline(pid) != command(net, files) or not in_namespace(pid, net.namespace)
            or (stale and not release(net, files, stale))):
        stop(files)
        _start(net, files)
        return "restarted"
    if changed:
        os.kill(pid, signal.SIGHUP)  # re-reads the hosts and options files
        return "reloaded"
    if stale:
        return "released"
    return "unchanged"


def delete(network_id: str, state_dir: str | os.PathLike) -> None:
    """Stop the network's dnsmasq, remove its namespace (and so its port) and files."""
    files = files_for(state_dir, network_id)
    stop(files)
    iplib.delete_netns(NS_PREFIX + network_id)
    if files.dir.is_dir():
        for p in files.dir.iterdir():
            p.unlink(missing_ok=True)
        files.dir.rmdir()


def list_networks(state_dir: str | os.PathLike) -> list[str]:
    """Networks with DHCP state on this host (namespaces or files), for clean-up."""
    ids = {n[len(NS_PREFIX):] for n in iplib.list_netns(NS_PREFIX)}
    d = Path(state_dir) / "dhcp"
    if d.is_dir():
        ids |= {p.name for p in d.iterdir() if p.is_dir()}
    return sorted(ids)


def sync_all(nets: list[DhcpNetwork], state_dir: str | os.PathLike) -> None:
    """Reconcile every network of this host and remove DHCP of networks not listed."""
    wanted = {n.id for n in nets}
    for stale in list_networks(state_dir):
        if stale not in wanted:
            delete(stale, state_dir)
    for n in nets:
        sync(n, state_dir)
