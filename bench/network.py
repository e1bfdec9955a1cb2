"""Networking data plane: how fast the API's state becomes a working network, and how
fast that network carries traffic.

Starts a cloud with the network agent on (root, ip/bridge/nft/dnsmasq, busybox), then:

  1. topology to DHCP: network + subnet + router + gateway + interface + a guest port
     bound to this host through the API, then the "guest" (a namespace whose veth is
     named and plugged as compute's tap would be, ``tap<port>``) asks for an address:
     time until dnsmasq's first DHCPOFFER (a DISCOVER every 50 ms), then busybox
     udhcpc's full lease, then the router's answer to a ping. Target: DHCP < 1 s.
  2. port create throughput through the API: sequential, then ``--clients`` at once.
  3. floating IP: from the association request until the first ping from the external
     namespace (``onestack-public``) to the guest behind the router answers (ping every
     20 ms; security group opened to ICMP beforehand). Target: < 1 s.
  4. TCP throughput between two guests on one network through the onestack data plane
     (veths, the network's bridge, security groups in nftables), with iperf3 (a small
     Python sender/receiver if iperf3 is absent), compared in the same run with a
     plain veth pair between two namespaces at the same MTU: the ratio.

Traffic goes only to addresses inside namespaces this bench or the cloud made; every
namespace it made is removed (and the cloud purged) at the end, also on error. Only one
network agent may run per host: if another onestack's agent holds it, the bench says so.

    .venv/bin/python bench/network.py [--rounds 3] [--ports 200] [--clients 8] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
from _cloud import Cloud, running, stop_on_sigterm

from onestack.network.linux import ip as iplib

TOOLS = ["ip", "bridge", "nft", "dnsmasq", "busybox", "ping"]
PUBLIC_NS = "onestack-public"

# DHCPDISCOVER every 50 ms (broadcast flag set, so the offer is broadcast back) until an
# offer for our MAC arrives: prints the monotonic time of the offer and the address.
DHCP_PROBE = r"""
import random, socket, struct, sys, time
dev, mac, deadline = sys.argv[1], sys.argv[2], time.monotonic() + float(sys.argv[3])
xid = random.getrandbits(32)
pkt = (struct.pack("!BBBBIHHIIII", 1, 1, 6, 0, xid, 0, 0x8000, 0, 0, 0, 0)
       + bytes.fromhex(mac.replace(":", "")) + bytes(10 + 192) + bytes([99, 130, 83, 99])
       + bytes([53, 1, 1, 55, 3, 1, 3, 26, 255]))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, dev.encode())
s.bind(("0.0.0.0", 68))
s.settimeout(0.05)
while time.monotonic() < deadline:
    try:
        s.sendto(pkt, ("255.255.255.255", 67))
    except OSError:
        time.sleep(0.05)
        continue
    until = time.monotonic() + 0.05
    while time.monotonic() < until:
        try:
            data = s.recv(4096)
        except OSError:
            break
        if len(data) >= 240 and data[0] == 2 and struct.unpack("!I", data[4:8])[0] == xid:
            print(time.monotonic(), socket.inet_ntoa(data[16:20]))
            sys.exit(0)
sys.exit(1)
"""

# busybox udhcpc calls this with the lease in its environment
UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set dev "$interface" up ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    echo "$ip" > "$LEASE_FILE" ;;
esac
"""

# the fallback when iperf3 is absent: a sink that prints bits/s, a source that sends
TCP_SINK = r"""
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1)
c, _ = s.accept(); buf = bytearray(1 << 20); n = 0; t0 = time.monotonic()
while True:
    r = c.recv_into(buf)
    if not r:
        break
    n += r
print(n * 8 / (time.monotonic() - t0))
"""
TCP_SOURCE = r"""
import socket, sys, time
for _ in range(100):
    try:
        c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5); break
    except OSError:
        time.sleep(0.05)
buf = bytes(1 << 20); end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    c.sendall(buf)
c.close()
"""


class Api:
    """The Networking API as the cloud's admin, one keep-alive connection per client."""

    def __init__(self, cloud: Cloud):
        rc = cloud.openrc("admin")
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": rc["OS_PASSWORD"]}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
        r = httpx.post(cloud.url + "/identity/v3/auth/tokens", json=body, timeout=30)
        r.raise_for_status()
        self.token = r.headers["X-Subject-Token"]
        self.project_id = r.json()["token"]["project"]["id"]
        self.base = cloud.url + "/networking/v2.0/"
        self.c = self.client()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"X-Auth-Token": self.token}, timeout=60)

    def call(self, method: str, path: str, body: dict | None = None, c: httpx.Client | None = None) -> dict:
        r = (c or self.c).request(method, path, json=body)
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r.json() if r.content else {}


class Lab:
    """The namespaces (and processes in them) this bench makes; ``cleanup`` removes all."""

    def __init__(self):
        self.token = "ostbench-" + secrets.token_hex(2)
        self.dir = tempfile.mkdtemp(prefix=f"{self.token}-")
        os.chmod(self.dir, 0o755)
        self.script = os.path.join(self.dir, "udhcpc.sh")
        with open(self.script, "w") as f:
            f.write(UDHCPC_SCRIPT)
        os.chmod(self.script, 0o755)
        self.procs: list[subprocess.Popen] = []

    def ns(self, what: str) -> str:
        name = f"{self.token}-{what}"
        iplib.ensure_netns(name)
        return name

    def spawn(self, ns: str, argv: list[str]) -> subprocess.Popen:
        p = subprocess.Popen(iplib.netns_cmd(ns, argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
        self.procs.append(p)
        return p

    def left(self) -> list[str]:
        return [n for n in iplib.list_netns() if self.token in n]

    def cleanup(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
        for name in self.left():
            iplib.delete_netns(name)
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_for(fn, timeout: float, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def ping(ns: str, addr: str, wait: float = 1) -> bool:
    argv = ["ping", "-n", "-q", "-c", "1", "-W", str(wait), addr]
    return iplib.netns_exec(ns, argv, check=False, timeout=wait + 5).returncode == 0


def plug(lab: Lab, name: str, port: dict, mtu: int) -> str:
    """The guest: eth0 (the port's MAC) in its own namespace, ``tap<port>`` in ours, as
    compute plugs a guest (the agent puts the tap on the network's bridge)."""
    ns = lab.ns(name)
    iplib.ensure_veth("eth0", iplib.device_name("tap", port["id"]), netns=ns, peer_netns=None,
                      address=port["mac_address"], mtu=mtu)
    # ARP asked again every 50 ms rather than the kernel's 1 s, so that a figure that waits
    # on an address appearing (the router's) is not rounded up to whole seconds
    iplib.set_sysctl("net.ipv4.neigh.eth0.retrans_time_ms", 50, ns)
    return ns


def udhcpc(lab: Lab, ns: str) -> str:
    lease = os.path.join(lab.dir, f"lease-{ns}")
    argv = ["env", f"LEASE_FILE={lease}", "busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "6",
            "-T", "1", "-A", "1", "-s", lab.script, "-O", "mtu"]
    r = iplib.netns_exec(ns, argv, check=False, timeout=20)
    if r.returncode != 0:
        raise RuntimeError(f"udhcpc in {ns} got no lease: {r.stderr[-500:]}")
    with open(lease) as f:
        return f.read().strip()


def guest_port(api: Api, net_id: str, host: str, name: str, c: httpx.Client | None = None) -> dict:
    return api.call("POST", "ports", {"port": {
        "network_id": net_id, "name": name, "binding:host_id": host, "device_owner": "compute:nova",
        "device_id": str(uuid.uuid4())}}, c)["port"]


# ------------------------------------------------------------------------ 1. to DHCP


def topology_round(api: Api, lab: Lab, host: str, public_id: str, i: int) -> dict:
    t0 = time.monotonic()
    net = api.call("POST", "networks", {"network": {"name": f"bench-net-{i}"}})["network"]
    sub = api.call("POST", "subnets", {"subnet": {"network_id": net["id"], "name": f"bench-sub-{i}",
                                                  "cidr": f"10.201.{i}.0/24", "ip_version": 4}})["subnet"]
    router = api.call("POST", "routers", {"router": {"name": f"bench-router-{i}"}})["router"]
    api.call("PUT", f"routers/{router['id']}", {"router": {"external_gateway_info": {"network_id": public_id}}})
    api.call("PUT", f"routers/{router['id']}/add_router_interface", {"subnet_id": sub["id"]})
    port = guest_port(api, net["id"], host, f"bench-guest-{i}")
    t_api = time.monotonic()
    ns = plug(lab, f"g{i}", port, net["mtu"])
    probe = iplib.netns_exec(ns, [sys.executable, "-c", DHCP_PROBE, "eth0", port["mac_address"], "20"],
                             check=False, timeout=30)
    if probe.returncode != 0:
        raise RuntimeError(f"no DHCPOFFER within 20 s in {ns}: {probe.stderr[-500:]}")
    t_offer, offered = probe.stdout.split()
    t1 = time.monotonic()
    leased = udhcpc(lab, ns)
    t_lease = time.monotonic() - t1
    gw = sub["gateway_ip"]
    if not wait_for(lambda: ping(ns, gw, 0.2), 15, 0):
        raise RuntimeError(f"the router {gw} does not answer the guest")
    t_router = time.monotonic()
    want = port["fixed_ips"][0]["ip_address"]
    if offered != want or leased != want:
        raise RuntimeError(f"offered {offered}, leased {leased}, the port has {want}")
    return {"api": t_api - t0, "offer": float(t_offer) - t0, "lease": t_lease, "router": t_router - t0,
            "net": net, "sub": sub, "router_id": router["id"], "port": port, "ns": ns, "ip": want}


# ------------------------------------------------------------------------ 2. ports/s


def port_throughput(api: Api, n: int, clients: int) -> None:
    net = api.call("POST", "networks", {"network": {"name": "bench-ports"}})["network"]
    api.call("POST", "subnets", {"subnet": {"network_id": net["id"], "cidr": "10.202.0.0/20", "ip_version": 4}})
    body = {"port": {"network_id": net["id"]}}
    made: list[str] = []
    t0 = time.monotonic()
    for _ in range(n):
        made.append(api.call("POST", "ports", body)["port"]["id"])
    seq = n / (time.monotonic() - t0)

    conns = [api.client() for _ in range(clients)]

    def create(k: int) -> str:
        return api.call("POST", "ports", body, conns[k % clients])["port"]["id"]

    with ThreadPoolExecutor(clients) as pool:
        t0 = time.monotonic()
        made += list(pool.map(create, range(n)))
        par = n / (time.monotonic() - t0)
        t0 = time.monotonic()
        list(pool.map(lambda k: api.call("DELETE", f"ports/{made[k]}", None, conns[k % clients]),
                      range(len(made))))
        dele = len(made) / (time.monotonic() - t0)
    for c in conns:
        c.close()
    api.call("DELETE", f"networks/{net['id']}")
    print(f"port create: {seq:.0f} ports/s sequential (n={n}), {par:.0f} ports/s with {clients} clients; "
          f"delete {dele:.0f} ports/s with {clients} clients")


# ------------------------------------------------------------------------ 3. floating IP


def fip_rounds(api: Api, public_id: str, port: dict, rounds: int) -> list[tuple[float, float]]:
    """Each round a floating IP of its own (allocated beforehand, so no address is reused
    while the agent may still hold its previous use) is associated with the guest's port;
    from the request until the first answer to a ping from the external namespace."""
    fips = [api.call("POST", "floatingips", {"floatingip": {"floating_network_id": public_id}})["floatingip"]
            for _ in range(rounds)]
    out = []
    for fip in fips:
        addr = fip["floating_ip_address"]
        # ping every 20 ms from the external namespace until the first answer (15 s at most)
        pinger = subprocess.Popen(iplib.netns_cmd(PUBLIC_NS, ["ping", "-n", "-q", "-i", "0.02", "-c", "1",
                                                              "-w", "15", addr]),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.1)  # the pinger runs (and asks ARP) before the association
            t0 = time.monotonic()
            api.call("PUT", f"floatingips/{fip['id']}", {"floatingip": {"port_id": port["id"]}})
            t_api = time.monotonic() - t0
            rc = pinger.wait(20)
            t_ping = time.monotonic() - t0
        finally:
            if pinger.poll() is None:
                pinger.kill()
                pinger.wait()
        if rc != 0:
            raise RuntimeError(f"floating IP {addr} did not answer within 15 s")
        out.append((t_api, t_ping))
        api.call("PUT", f"floatingips/{fip['id']}", {"floatingip": {"port_id": None}})
        # settled: the agent has taken the address away again (not part of any figure)
        wait_for(lambda a=addr: not ping(PUBLIC_NS, a, 0.2), 10, 0)
    for fip in fips:
        api.call("DELETE", f"floatingips/{fip['id']}")
    return out


# ------------------------------------------------------------------------ 4. TCP


def iperf(lab: Lab, server_ns: str, client_ns: str, addr: str, seconds: float) -> float:
    """Bits/s of one TCP stream from client_ns to addr (in server_ns)."""
    if shutil.which("iperf3"):
        server = lab.spawn(server_ns, ["iperf3", "-s", "-1", "-B", addr])
        try:
            for _ in range(50):
                r = iplib.netns_exec(client_ns, ["iperf3", "-c", addr, "-t", str(seconds), "-J"], check=False,
                                     timeout=seconds + 30)
                out = json.loads(r.stdout or "{}")
                error = out.get("error") or ("" if r.returncode == 0 else r.stderr or "failed")
                if "refused" in error:  # the server is not listening yet
                    time.sleep(0.1)
                    continue
                if error or "sum_received" not in out.get("end", {}):
                    raise RuntimeError(f"iperf3: {error or r.stdout[-1500:]}")
                return out["end"]["sum_received"]["bits_per_second"]
            raise RuntimeError("the iperf3 server did not start")
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    sink = lab.spawn(server_ns, [sys.executable, "-c", TCP_SINK, addr, "5201"])
    iplib.netns_exec(client_ns, [sys.executable, "-c", TCP_SOURCE, addr, "5201", str(seconds)],
                     timeout=seconds + 30)
    out, err = sink.communicate(timeout=30)
    return float(out.strip())


def tcp_compare(api: Api, lab: Lab, host: str, first: dict, seconds: float) -> None:
    net = first["net"]
    port2 = guest_port(api, net["id"], host, "bench-guest-tcp")
    ns2 = plug(lab, "tcp", port2, net["mtu"])
    ip2 = udhcpc(lab, ns2)
    if not wait_for(lambda: ping(ns2, first["ip"], 0.2), 10, 0):
        raise RuntimeError("the two guests do not reach each other")
    tool = "iperf3" if shutil.which("iperf3") else "python sockets"
    ours = iperf(lab, first["ns"], ns2, first["ip"], seconds)

    a, b = lab.ns("plain-a"), lab.ns("plain-b")
    iplib.ensure_veth("eth0", "eth0", netns=a, peer_netns=b, mtu=net["mtu"])
    iplib.sync_addresses("eth0", ["192.168.251.1/24"], a)
    iplib.sync_addresses("eth0", ["192.168.251.2/24"], b)
    if not wait_for(lambda: ping(b, "192.168.251.1", 0.2), 10, 0):
        raise RuntimeError("the plain veth pair does not pass traffic")
    plain = iperf(lab, a, b, "192.168.251.1", seconds)
    print(f"TCP, one stream, {seconds:g} s, {tool}, MTU {net['mtu']}: guest {ip2} -> guest {first['ip']} "
          f"through onestack (veth, bridge, security groups) {ours / 1e9:.2f} Gbit/s; plain veth pair "
          f"{plain / 1e9:.2f} Gbit/s; ratio {ours / plain:.2f}")


# ------------------------------------------------------------------------ main


def why_not() -> str | None:
    if os.geteuid() != 0:
        return "the network bench needs root (namespaces, bridges, nftables)"
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        return f"missing tools: {' '.join(missing)} (scripts/install.sh test)"
    return None


def wait_agent(api: Api, cloud: Cloud) -> str:
    agents = wait_for(lambda: [a for a in api.call("GET", "agents")["agents"] if a["alive"]], 20, 0.2)
    if not agents:
        log = (cloud.state / "onestack.log").read_text()
        if "another onestack network agent runs on this host" in log:
            print("bench/network.py skipped: another onestack's network agent runs on this host (one per host)")
            raise SystemExit(0)
        raise SystemExit(f"the network agent did not report:\n{log[-3000:]}")
    return agents[0]["host"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="topologies (and floating IPs) timed; medians printed")
    ap.add_argument("--ports", type=int, default=200, help="ports per throughput phase")
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients of the second phase")
    ap.add_argument("--seconds", type=float, default=5, help="duration of each TCP measurement")
    args = ap.parse_args()
    reason = why_not()
    if reason:
        print(f"bench/network.py skipped: {reason}")
        return 0
    stop_on_sigterm()
    cloud = Cloud("bench-network", extra_env={"ONESTACK_NETWORK_AGENT": "true",
                                              "ONESTACK_NETWORK_DEMO_TOPOLOGY": "false"})
    lab = Lab()
    made: dict = {}
    with running(cloud):
        try:
            api = Api(cloud)
            host = wait_agent(api, cloud)
            api.call("PUT", f"quotas/{api.project_id}", {"quota": {"port": -1, "network": -1, "subnet": -1,
                                                                   "router": -1, "floatingip": -1}})
            public = next(n for n in api.call("GET", "networks")["networks"] if n["name"] == "public")
            print(f"network agent on {host}; {args.rounds} rounds")

            rounds = [topology_round(api, lab, host, public["id"], i) for i in range(1, args.rounds + 1)]
            for i, r in enumerate(rounds, 1):
                print(f"  round {i}: API {r['api'] * 1000:.0f} ms, DHCPOFFER at {r['offer'] * 1000:.0f} ms, "
                      f"udhcpc lease {r['lease'] * 1000:.0f} ms more, router answers at {r['router'] * 1000:.0f} ms")
            med = {k: statistics.median(r[k] for r in rounds) * 1000 for k in ("api", "offer", "lease", "router")}
            print(f"network+subnet+router+gateway+interface+port through the API: {med['api']:.0f} ms median; "
                  f"DHCP serving the guest (first offer) {med['offer']:.0f} ms after the first request "
                  f"(target < 1000 ms); full udhcpc lease then {med['lease']:.0f} ms; router answering "
                  f"the guest's ping {med['router']:.0f} ms")

            port_throughput(api, args.ports, args.clients)

            first = rounds[0]
            sg = first["port"]["security_groups"][0]
            api.call("POST", "security-group-rules", {"security_group_rule": {
                "security_group_id": sg, "direction": "ingress", "ethertype": "IPv4", "protocol": "icmp"}})
            time.sleep(2)  # the agent applies the rule (not part of any figure)
            fips = fip_rounds(api, public["id"], first["port"], args.rounds)
            for i, (t_api, t_ping) in enumerate(fips, 1):
                print(f"  floating IP {i}: association {t_api * 1000:.0f} ms, first ping answered "
                      f"{t_ping * 1000:.0f} ms after the request")
            print(f"floating IP association to first ping from {PUBLIC_NS}: "
                  f"{statistics.median(t for _, t in fips) * 1000:.0f} ms median (target < 1000 ms)")

            tcp_compare(api, lab, host, first, args.seconds)
        finally:
            lab.cleanup()
            ledger = cloud.state / "network" / "kernel.json"
            if ledger.exists():
                made = json.loads(ledger.read_text())
    left = lab.left() + [n for n in made.get("netns", []) if iplib.netns_exists(n)]
    left += [d for d in made.get("link", []) if iplib.link_exists(d)]
    print("clean-up: every namespace and device removed" if not left else f"clean-up: LEFT BEHIND {left}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
