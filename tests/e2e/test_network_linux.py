"""The Linux data plane of networking, end to end, in namespaces this test makes.

Topology (every namespace named ``ost-<token>-...`` or ``q*-ost-<token>-...``; nothing
in the namespace the tests run in, nothing bridged to a host NIC)::

    vm1 ─┐                                   ┌─ qrouter ─ qg ─┐
    vm2 ─┼─ brq (in "host") ─ qdhcp (dnsmasq) │               ├─ brqext (in "pub") ─ out
         └────────────────── qr ─────────────┘               ┘      172.24.4.1 (outside host)

The guests are namespaces that take their address with busybox's udhcpc; traffic
goes only to addresses inside these namespaces. A fixture removes every namespace
(and so every device and nft table in it) and every process, whatever happens.
"""

from __future__ import annotations

import http.server
import json
import os
import secrets
import shutil
import socketserver
import stat
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from onestack.network.linux import dhcp, metadata, nft
from onestack.network.linux import ip as iplib
from onestack.network.linux import router as rt
from onestack.network.linux import secgroups as sg

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60), pytest.mark.root, pytest.mark.netns]

TOOLS = ["ip", "bridge", "nft", "dnsmasq", "busybox", "ping", "sysctl"]
CIDR = "10.77.0.0/24"
GW = "10.77.0.1"
DHCP_IP = "10.77.0.2"
VM1_IP, VM2_IP = "10.77.0.11", "10.77.0.12"
EXT_GW = "172.24.4.1"  # the outside host
ROUTER_GW = "172.24.4.10"
FIP = "172.24.4.20"
MTU = 1450

UDHCPC_SCRIPT = """#!/bin/sh
# udhcpc calls this with the lease in the environment (busybox names)
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set dev "$interface" up ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
    if [ -n "$staticroutes" ]; then
      set -- $staticroutes
      while [ $# -ge 2 ]; do ip route replace "$1" via "$2" dev "$interface"; shift 2; done
    elif [ -n "$router" ]; then
      ip route replace default via "${router%% *}" dev "$interface"
    fi
    env > "$LEASE_ENV" ;;
esac
"""


def _missing_tools() -> list[str]:
    return [t for t in TOOLS if not shutil.which(t)]


if os.geteuid() != 0:
    pytest.skip("the data plane tests need root", allow_module_level=True)
if _missing_tools():
    pytest.skip(f"missing tools (scripts/install.sh test): {' '.join(_missing_tools())}",
                allow_module_level=True)


def ping(ns: str, addr: str, *, count: int = 1, wait: int = 1, size: int | None = None,
         dont_fragment: bool = False) -> bool:
    args = ["ping", "-n", "-q", "-c", str(count), "-W", str(wait)]
    if size is not None:
        args += ["-s", str(size)]
    if dont_fragment:
        args += ["-M", "do"]
    return iplib.netns_exec(ns, [*args, addr], check=False, timeout=count * wait + 5).returncode == 0


def ping_eventually(ns: str, addr: str, *, within: float = 8.0) -> bool:
    """Ping until one answer (ARP and bridge learning settle), at most ``within`` s."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if ping(ns, addr):
            return True
    return False


# A tiny HTTP server that answers with the address it sees the client as. (Not
# http.server: it looks the bound address up in DNS before listening, and the
# namespaces have no resolver.)
TCP_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
while True:
    c, peer = s.accept()
    with c:
        c.settimeout(2)
        try:
            c.recv(4096)
            c.sendall(b"HTTP/1.0 200 OK\\r\\n\\r\\n" + peer[0].encode())
        except OSError:
            pass
"""


def http_get(ns: str, url: str, *, timeout: float = 2.0) -> str | None:
    code = ("import sys, urllib.request\n"
            "print(urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])).read()"
            ".decode())")
    proc = iplib.netns_exec(ns, [sys.executable, "-c", code, url, str(timeout)], check=False,
                            timeout=timeout + 10)
    return proc.stdout.strip() if proc.returncode == 0 else None


@dataclass
class Lab:
    """Names and state of one test's namespaces; ``cleanup`` removes all of it."""

    token: str = field(default_factory=lambda: "ost-" + secrets.token_hex(3))
    state_dir: str = ""
    procs: list[subprocess.Popen] = field(default_factory=list)

    def ns(self, what: str) -> str:
        name = f"{self.token}-{what}"
        iplib.ensure_netns(name)
        return name

    def ident(self, what: str) -> str:
        return f"{self.token}-{what}"

    def port(self, what: str) -> str:
        # port ids name devices (tap<11 chars>): the token keeps them apart in a listing
        return self.token.replace("-", "")[3:] + what

    def spawn(self, ns: str, argv: list[str], log: str) -> subprocess.Popen:
        with open(os.path.join(self.state_dir, log), "wb") as f:
            p = subprocess.Popen(iplib.netns_cmd(ns, argv), stdout=f, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        self.procs.append(p)
        return p

    def log(self, name: str) -> str:
        with open(os.path.join(self.state_dir, name), errors="replace") as f:
            return f.read()

    def cleanup(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
        if self.state_dir:
            for net in dhcp.list_networks(self.state_dir):
                if self.token in net:
                    dhcp.delete(net, self.state_dir)
            shutil.rmtree(self.state_dir, ignore_errors=True)
        for name in iplib.list_netns():
            if self.token in name:
                iplib.delete_netns(name)


@contextmanager
def lab():
    lb = Lab()
    lb.state_dir = tempfile.mkdtemp(prefix=f"{lb.token}-")
    os.chmod(lb.state_dir, 0o755)  # dnsmasq re-reads its files as an unprivileged user
    try:
        yield lb
    finally:
        lb.cleanup()
        left = [n for n in iplib.list_netns() if lb.token in n]
        assert not left, f"namespaces left behind: {left}"


def mac(n: int) -> str:
    return f"fa:16:3e:77:00:{n:02x}"


def dhcp_client(lb: Lab, ns: str, dev: str = "eth0") -> dict[str, str]:
    """Run udhcpc in a guest namespace (bounded); return the lease it configured."""
    script = os.path.join(lb.state_dir, "udhcpc.sh")
    if not os.path.exists(script):
        with open(script, "w") as f:
            f.write(UDHCPC_SCRIPT)
        os.chmod(script, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH
                 | stat.S_IXOTH)
    env_file = os.path.join(lb.state_dir, f"lease-{ns}")
    argv = ["env", f"LEASE_ENV={env_file}", "busybox", "udhcpc", "-i", dev, "-f", "-q",
            "-n", "-t", "6", "-T", "1", "-A", "1", "-s", script, "-O", "mtu",
            "-O", "staticroutes"]
    proc = iplib.netns_exec(ns, argv, check=False, timeout=20)
    assert proc.returncode == 0, f"udhcpc in {ns} got no lease: {proc.stderr}"
    lease = {}
    with open(env_file) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            lease[k] = v
    return lease


@dataclass
class Topology:
    lab: Lab
    host: str
    pub: str
    out: str
    vm1: str
    vm2: str
    bridge: str
    net: dhcp.DhcpNetwork
    router: rt.RouterSpec
    ports: dict[str, sg.SgPort]


@pytest.fixture(scope="module")
def topo():
    with lab() as lb:
        host, pub, out = lb.ns("host"), lb.ns("pub"), lb.ns("out")
        vm1, vm2 = lb.ns("vm1"), lb.ns("vm2")
        bridge, ext_bridge = "brqnet1", "brqext"
        iplib.ensure_bridge(bridge, host)
        iplib.ensure_bridge(ext_bridge, pub)
        # the outside host: an address on the external network, in its own namespace
        iplib.ensure_veth("eth0", "tapout", netns=out, peer_netns=pub, peer_master=ext_bridge)
        iplib.sync_addresses("eth0", [f"{EXT_GW}/24"], out)

        ports = {}
        for i, vm in ((1, vm1), (2, vm2)):
            pid = lb.port(f"vm{i}")
            dev = iplib.device_name("tap", pid)
            # the guest's NIC: eth0 in its namespace, tap<port> on the bridge
            iplib.ensure_veth("eth0", dev, netns=vm, peer_netns=host, peer_master=bridge,
                              address=mac(10 + i))
            ports[vm] = sg.SgPort(id=pid, device=dev, mac=mac(10 + i),
                                  fixed_ips=[VM1_IP if i == 1 else VM2_IP], bridge=bridge)
        net = dhcp.DhcpNetwork(
            id=lb.ident("net1"), port_id=lb.port("dhcp"), port_mac=mac(2),
            port_ips=[DHCP_IP], bridge=bridge, bridge_netns=host, mtu=MTU,
            subnets=[dhcp.DhcpSubnet(id="s1", cidr=CIDR, gateway_ip=GW,
                                     dns_nameservers=["10.77.0.53"],
                                     host_routes=[("10.99.0.0/24", GW)])],
            hosts=[dhcp.DhcpHost(mac(11), VM1_IP, "vm1"), dhcp.DhcpHost(mac(12), VM2_IP)],
        )
        router = rt.RouterSpec(
            id=lb.ident("r1"),
            interfaces=[rt.RouterPort(id=lb.port("ri1"), mac=mac(1), cidrs=[f"{GW}/24"],
                                      bridge=bridge, bridge_netns=host)],
            gateway=rt.RouterGateway(id=lb.port("rgw"), mac=mac(0xa0),
                                     cidrs=[f"{ROUTER_GW}/24"], bridge=ext_bridge,
                                     bridge_netns=pub, gateway_ip=EXT_GW),
        )
        yield Topology(lb, host, pub, out, vm1, vm2, bridge, net, router, ports)


def _count_sources(out_ns: str) -> None:
    """A table in the outside host that counts echo requests by source address."""
    body = (
        "\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n"
        f'\t\tip saddr {ROUTER_GW} icmp type echo-request counter comment "from-gw"\n'
        f'\t\tip saddr {FIP} icmp type echo-request counter comment "from-fip"\n'
        f'\t\tip saddr {CIDR} icmp type echo-request counter comment "from-tenant"\n'
        "\t}\n")
    nft.replace_table("ip", "ost-probe", body, out_ns)


def _counts(out_ns: str) -> dict[str, int]:
    return {c: nft.counter("ip", "ost-probe", c, out_ns)
            for c in ("from-gw", "from-fip", "from-tenant")}


# ------------------------------------------------------------------ the tests, in order


def test_dhcp_gives_fixed_addresses_and_guests_talk(topo):
    t0 = time.monotonic()
    assert dhcp.sync(topo.net, topo.lab.state_dir) == "started"
    assert dhcp.sync(topo.net, topo.lab.state_dir) == "unchanged"
    files = dhcp.files_for(topo.lab.state_dir, topo.net.id)
    assert dhcp.running_pid(files) is not None
    assert f"{mac(11)},vm1,{VM1_IP}" in files.hosts.read_text()

    lease1 = dhcp_client(topo.lab, topo.vm1)
    lease2 = dhcp_client(topo.lab, topo.vm2)
    assert lease1["ip"] == VM1_IP and lease2["ip"] == VM2_IP
    assert lease1["mask"] == "24" and lease1["mtu"] == str(MTU)
    assert lease1["router"] == GW and lease1["dns"].split() == ["10.77.0.53"]
    # option 121: the host route, then the default route (121 replaces option 3)
    assert lease1["staticroutes"].split() == ["10.99.0.0/24", GW, "0.0.0.0/0", GW]
    assert iplib.list_addresses("eth0", topo.vm1) == [f"{VM1_IP}/24"]
    assert iplib.get_link("eth0", topo.vm1)["mtu"] == MTU
    assert ping_eventually(topo.vm1, VM2_IP)
    assert ping(topo.vm2, VM1_IP)

    # a new host is served after a reload (SIGHUP), the same process
    pid = dhcp.running_pid(files)
    topo.net.hosts.append(dhcp.DhcpHost(mac(13), "10.77.0.13"))
    assert dhcp.sync(topo.net, topo.lab.state_dir) == "reloaded"
    assert dhcp.running_pid(files) == pid
    assert "10.77.0.13" in files.hosts.read_text()
    print(f"dhcp + two leases + ping: {time.monotonic() - t0:.2f} s")


def test_router_snat_to_the_outside_host(topo):
    t0 = time.monotonic()
    rt.sync(topo.router)
    rt.sync(topo.router)  # idempotent
    ns = topo.router.namespace
    assert ("ip", rt.NAT_TABLE) in nft.list_tables(ns)
    assert iplib.get_sysctl("net.ipv4.ip_forward", ns) == "1"
    _count_sources(topo.out)
    assert ping_eventually(topo.vm2, GW)
    assert ping_eventually(topo.vm2, EXT_GW)
    counts = _counts(topo.out)
    # the outside host saw the router's gateway address, never the tenant's
    assert counts["from-gw"] >= 1 and counts["from-tenant"] == 0, counts
    # the outside host has no route to the tenant network: it cannot reach a guest
    assert not ping(topo.out, VM2_IP)
    print(f"router + SNAT: {time.monotonic() - t0:.2f} s")


def test_floating_ip_dnat_and_snat(topo, monkeypatch):
    t0 = time.monotonic()
    gw_dev = rt.gateway_device(topo.router.gateway.id)
    # the floating address must not be on the router before its DNAT rule: in between,
    # the router itself answers for it (a ping to a guest that security groups block)
    seen = []
    real_replace = nft.replace_table

    def recording(family, name, body, netns=None):
        if name == rt.NAT_TABLE:
            seen.append((f"{FIP}/32" in iplib.list_addresses(gw_dev, netns), f"dnat to {VM1_IP}" in body))
        return real_replace(family, name, body, netns)

    monkeypatch.setattr(nft, "replace_table", recording)
    nft.replace_table("arp", "ost-garp", '\tchain input {\n\t\ttype filter hook input '
                      'priority 0; policy accept;\n\t\tarp saddr ip ' + FIP
                      + ' counter comment "garp"\n\t}\n', topo.out)
    topo.router.floating_ips = [rt.FloatingIp(FIP, VM1_IP)]
    rt.sync(topo.router)
    assert seen == [(False, True)]
    monkeypatch.setattr(nft, "replace_table", real_replace)
    # the new address was announced on the external network (gratuitous ARP)
    assert nft.counter("arp", "ost-garp", "garp", topo.out) == 1
    assert f"{FIP}/32" in iplib.list_addresses(gw_dev, topo.router.namespace)
    assert ping_eventually(topo.out, FIP)  # DNAT to vm1 (ARP answered by the gateway)
    before = _counts(topo.out)
    assert ping(topo.vm1, EXT_GW)
    after = _counts(topo.out)
    assert after["from-fip"] == before["from-fip"] + 1, (before, after)  # SNAT 1:1
    assert after["from-gw"] == before["from-gw"]
    # a guest reaches another guest's floating IP from inside (hairpin)
    assert ping(topo.vm2, FIP)
    print(f"floating IP: {time.monotonic() - t0:.2f} s")


def test_security_groups(topo):
    t0 = time.monotonic()
    vm1, vm2 = topo.ports[topo.vm1], topo.ports[topo.vm2]
    egress = [sg.SgRule("egress"), sg.SgRule("egress", "IPv6")]
    icmp_in = sg.SgRule("ingress", protocol="icmp")

    def apply(rules1, rules2=None, groups=None):
        vm1.rules = egress + rules1
        vm2.rules = egress + (rules2 or [])
        sg.sync([vm1, vm2], groups or {}, netns=topo.host)

    for port in (8000, 8001):
        topo.lab.spawn(topo.vm1, [sys.executable, "-c", TCP_SERVER, VM1_IP, str(port)],
                       f"tcp-{port}.log")
    deadline = time.monotonic() + 10
    while http_get(topo.vm1, f"http://{VM1_IP}:8000/") is None:
        assert time.monotonic() < deadline, f"server in vm1: {topo.lab.log('tcp-8000.log')}"
        time.sleep(0.1)

    # ICMP allowed, then removed: new pings are dropped; replies to vm1's own are not
    apply([icmp_in])
    assert ping(topo.vm2, VM1_IP)
    assert ping(topo.out, FIP)
    apply([])
    assert not ping(topo.vm2, VM1_IP)
    assert not ping(topo.out, FIP)
    assert ping(topo.vm1, VM2_IP) is False  # vm2 has no ICMP rule either
    apply([], [icmp_in])
    assert ping(topo.vm1, VM2_IP)  # stateful: vm1's echo replies come back

    # TCP 8000 allowed from everywhere; 8001 not
    apply([sg.SgRule("ingress", protocol="tcp", port_range_min=8000, port_range_max=8000)])
    assert http_get(topo.vm2, f"http://{VM1_IP}:8000/") == VM2_IP
    # through the floating IP, the guest sees the outside host's own address
    assert http_get(topo.out, f"http://{FIP}:8000/") == EXT_GW
    assert http_get(topo.vm2, f"http://{VM1_IP}:8001/", timeout=1) is None

    # from the members of a remote group only (vm2), not from the outside host
    rg = "grp1"
    apply([sg.SgRule("ingress", protocol="tcp", port_range_min=8000, port_range_max=8001,
                     remote_group_id=rg)], groups={rg: [VM2_IP]})
    assert http_get(topo.vm2, f"http://{VM1_IP}:8001/") == VM2_IP
    assert http_get(topo.out, f"http://{FIP}:8000/", timeout=1) is None
    # membership change: the set follows
    apply([sg.SgRule("ingress", protocol="tcp", port_range_min=8000, port_range_max=8001,
                     remote_group_id=rg)], groups={rg: ["10.77.0.200"]})
    assert http_get(topo.vm2, f"http://{VM1_IP}:8000/", timeout=1) is None

    # anti-spoofing: vm2 taking another address is cut off, and back again it works
    apply([icmp_in], [icmp_in])
    assert ping(topo.vm2, VM1_IP)
    iplib.sync_addresses("eth0", ["10.77.0.99/24"], topo.vm2)
    assert not ping(topo.vm2, VM1_IP)
    # (its ARP for vm1, or the ping itself if vm1's MAC was still cached)
    assert sum(nft.counter("bridge", sg.TABLE, c, topo.host, chain=f"egress-{vm2.id}")
               for c in ("spoofed arp", "spoofed ipv4")) >= 1
    # ... unless allowed_address_pairs says so
    vm2.allowed_address_pairs = [("10.77.0.96/29", None)]
    apply([icmp_in], [icmp_in])
    assert ping_eventually(topo.vm2, VM1_IP, within=3)
    vm2.allowed_address_pairs = []
    iplib.sync_addresses("eth0", [f"{VM2_IP}/24"], topo.vm2)
    iplib.sync_routes([iplib.Route("default", GW)], topo.vm2, proto="boot")
    apply([icmp_in], [icmp_in])
    assert ping_eventually(topo.vm2, VM1_IP, within=3)
    # a DHCP renewal still works with the security groups in place
    assert dhcp_client(topo.lab, topo.vm2)["ip"] == VM2_IP

    sg.delete(topo.host)
    assert not [t for t in nft.list_tables(topo.host) if t[1].startswith("onestack-sg")]
    print(f"security groups: {time.monotonic() - t0:.2f} s")


class _Upstream(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True


class _EchoHeaders(http.server.BaseHTTPRequestHandler):
    """The compute metadata API's stand-in: answers with the identity headers it got."""

    def do_GET(self):
        body = json.dumps({"path": self.path, **{k.lower(): v for k, v in self.headers.items()
                                                 if k.lower().startswith("x-")}}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_metadata_proxy_in_the_router_namespace(topo):
    """A guest reaches http://169.254.169.254 through its router; the proxy (a thread of
    this process with its socket in the router namespace) adds the signed identity and
    forwards to an upstream on this process's loopback."""
    upstream = _Upstream(("127.0.0.1", 0), _EchoHeaders)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    identities = {VM1_IP: metadata.Identity("inst-1", "proj-1")}
    proxy = metadata.MetadataProxy(
        topo.router.namespace, f"http://127.0.0.1:{upstream.server_address[1]}",
        identities.get, "s3cret", labels={"X-Neutron-Router-ID": topo.router.id})
    try:
        proxy.start()
        body = http_get(topo.vm1, "http://169.254.169.254/latest/meta-data/instance-id")
        assert body is not None
        got = json.loads(body)
        assert got["path"] == "/latest/meta-data/instance-id"
        assert got["x-forwarded-for"] == VM1_IP and got["x-instance-id"] == "inst-1"
        assert got["x-instance-id-signature"] == metadata.sign("inst-1", "s3cret")
        assert got["x-tenant-id"] == "proj-1"
        assert got["x-neutron-router-id"] == topo.router.id
        # a guest the resolver does not know learns nothing
        code = ("import urllib.request, urllib.error\n"
                "try:\n urllib.request.urlopen('http://169.254.169.254/', timeout=3)\n"
                "except urllib.error.HTTPError as e:\n print(e.code)")
        out = iplib.netns_exec(topo.vm2, [sys.executable, "-c", code], timeout=15).stdout
        assert out.strip() == "404"
    finally:
        proxy.stop()
        upstream.shutdown()
        upstream.server_close()


def test_router_reconciles_and_cleans_up(topo):
    ns = topo.router.namespace
    gw_dev = rt.gateway_device(topo.router.gateway.id)
    qr_dev = rt.internal_device(topo.router.interfaces[0].id)
    # drift: someone removed the floating address and the default route
    iplib.ip("addr", "del", f"{FIP}/32", "dev", gw_dev, netns=ns)
    iplib.ip("route", "del", "default", netns=ns)
    nft.delete_table("ip", rt.NAT_TABLE, ns)
    rt.sync(topo.router)
    assert f"{FIP}/32" in iplib.list_addresses(gw_dev, ns)
    assert [r.nexthop for r in iplib.list_routes(ns) if r.destination == "default"] == [EXT_GW]
    assert ping_eventually(topo.out, FIP)

    # the floating IP and the interface are removed from the desired state
    topo.router.floating_ips = []
    topo.router.routes = [("10.88.0.0/24", "10.77.0.11")]
    old_interfaces = list(topo.router.interfaces)
    rt.sync(topo.router)
    assert f"{FIP}/32" not in iplib.list_addresses(gw_dev, ns)
    assert any(r.destination == "10.88.0.0/24" for r in iplib.list_routes(ns))
    assert not ping(topo.out, FIP)
    topo.router.interfaces = []
    topo.router.routes = []
    rt.sync(topo.router)
    assert not iplib.link_exists(qr_dev, ns)
    # its veth peer on the tenant bridge went with it
    assert not iplib.link_exists(rt.bridge_device(old_interfaces[0].id), topo.host)
    assert rt.delete(topo.router.id)
    assert not iplib.netns_exists(ns)

    dhcp.delete(topo.net.id, topo.lab.state_dir)
    assert not iplib.netns_exists(topo.net.namespace)
    assert dhcp.running_pid(dhcp.files_for(topo.lab.state_dir, topo.net.id)) is None


def test_vxlan_joins_two_hosts():
    """Two "hosts" (namespaces) joined by an underlay link; each has the tenant bridge
    with a VXLAN device (VNI 1001, learning off, peers in the FDB) and one guest."""
    t0 = time.monotonic()
    with lab() as lb:
        h1, h2, g1, g2 = lb.ns("h1"), lb.ns("h2"), lb.ns("g1"), lb.ns("g2")
        iplib.ensure_veth("uplink", "uplink", netns=h1, peer_netns=h2)
        underlay = {h1: "192.0.2.1", h2: "192.0.2.2"}
        for h in (h1, h2):
            iplib.sync_addresses("uplink", [f"{underlay[h]}/24"], h)
        for h, g, addr in ((h1, g1, "10.66.0.1"), (h2, g2, "10.66.0.2")):
            iplib.ensure_bridge("brqvx", h)
            iplib.ensure_vxlan("vxlan-1001", 1001, local=underlay[h], dev="uplink", netns=h,
                               master="brqvx", mtu=1450)
            iplib.ensure_vxlan("vxlan-1001", 1001, local=underlay[h], dev="uplink", netns=h,
                               master="brqvx", mtu=1450)  # idempotent
            other = underlay[h2] if h == h1 else underlay[h1]
            iplib.sync_vxlan_fdb("vxlan-1001", [other], netns=h)
            iplib.sync_vxlan_fdb("vxlan-1001", [other], netns=h)
            iplib.ensure_veth("eth0", "tapguest", netns=g, peer_netns=h, peer_master="brqvx",
                              mtu=1450)
            iplib.sync_addresses("eth0", [f"{addr}/24"], g)
        link = iplib.get_link("vxlan-1001", h1)
        data = link["linkinfo"]["info_data"]
        assert data["id"] == 1001 and data["port"] == 4789 and data["learning"] is False
        assert [e["dst"] for e in iplib.list_fdb("vxlan-1001", h1) if e.get("dst")] == \
            [underlay[h2]]
        assert ping_eventually(g1, "10.66.0.2")
        # a full 1450-byte packet crosses without fragmentation (50 bytes of VXLAN overhead)
        assert ping(g1, "10.66.0.2", size=1450 - 28, dont_fragment=True)
        # the peer gone from the FDB: no more flooding to it, the guests are cut off
        iplib.sync_vxlan_fdb("vxlan-1001", [], netns=h1)
        iplib.ip("neigh", "flush", "all", netns=g1)
        iplib.ip("link", "set", "brqvx", "type", "bridge", "fdb_flush", netns=h1)
        assert not ping(g1, "10.66.0.2")
    print(f"vxlan: {time.monotonic() - t0:.2f} s")


def test_ensure_functions_are_idempotent_and_clear():
    with lab() as lb:
        a, b = lb.ns("a"), lb.ns("b")
        assert not iplib.ensure_netns(a)  # exists already
        iplib.ensure_bridge("brqx", a, mtu=1400)
        iplib.ensure_bridge("brqx", a, mtu=1400)
        assert iplib.get_link("brqx", a)["mtu"] == 1400
        iplib.ensure_tap("tapx", a, master="brqx")
        iplib.ensure_tap("tapx", a, master="brqx")
        assert iplib.get_link("tapx", a)["master"] == "brqx"
        iplib.ensure_veth("v1", "v2", netns=a, peer_netns=b, mtu=1400)
        # half a pair is repaired
        iplib.delete_link("v1", a)
        iplib.ensure_veth("v1", "v2", netns=a, peer_netns=b, mtu=1400)
        assert iplib.link_exists("v1", a) and iplib.link_exists("v2", b)
        # a VXLAN device with another VNI is replaced
        iplib.ensure_vxlan("vx", 5, local="192.0.2.9", netns=a)
        iplib.ensure_vxlan("vx", 6, local="192.0.2.9", netns=a)
        assert iplib.get_link("vx", a)["linkinfo"]["info_data"]["id"] == 6
        with pytest.raises(iplib.IpError, match="not a bridge|exists as"):
            iplib.ensure_bridge("tapx", a)
        with pytest.raises(ValueError, match="invalid device name"):
            iplib.ensure_bridge("a-name-longer-than-15", a)
        with pytest.raises(iplib.IpError, match="does not exist"):
            iplib.set_mtu("nothere", 1400, a)
        iplib.set_sysctl("net.ipv4.ip_forward", 1, a)
        assert iplib.get_sysctl("net.ipv4.ip_forward", a) == "1"
        assert iplib.get_sysctl("net.ipv4.ip_forward", b) == "0"
