"""The network agent end to end: what the real `openstack` CLI asks for becomes kernel
state, and goes away again.

A cloud with the agent on (its own state dir and port) gets a network, subnet, router
with gateway and interface through the CLI. The "guest" is a namespace this test makes,
with a veth whose root-namespace end is named as compute's tap would be
(``tap<port id>``) for a port bound to this host: the agent puts it on the network's
bridge and sets the port ACTIVE, dnsmasq leases it its address (busybox udhcpc), it
pings its router, the external namespace (``onestack netns exec public``) pings its
floating IP as security group rules allow, the metadata proxy signs its identity, and
deleting everything removes every kernel object. Traffic goes only to addresses inside
these namespaces; every wait is bounded.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socketserver
import sys
import threading
import time

import httpx
import pytest

from onestack.network.linux import dhcp, metadata, nft, secgroups
from onestack.network.linux import ip as iplib
from tests.cloud import Cloud

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120), pytest.mark.root, pytest.mark.netns]

TOOLS = ["ip", "bridge", "nft", "dnsmasq", "busybox", "ping", "sysctl"]
if os.geteuid() != 0:
    pytest.skip("the network agent tests need root", allow_module_level=True)
if [t for t in TOOLS if not shutil.which(t)]:
    pytest.skip("missing data plane tools (scripts/install.sh test)", allow_module_level=True)

from tests.e2e.test_network_linux import dhcp_client, lab, ping  # noqa: E402 (after the skips)

CIDR, GW = "10.93.0.0/24", "10.93.0.1"
GUEST_MAC = "fa:16:3e:93:00:11"
INSTANCE = "5b3c1d2e-0000-4000-8000-00000000e2e1"


def wait_for(fn, timeout: float = 10.0, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


class _Echo(http.server.BaseHTTPRequestHandler):
    """Stands in for the compute metadata API: answers with the identity headers."""

    def do_GET(self):
        body = json.dumps({"path": self.path, **{k.lower(): v for k, v in self.headers.items()
                                                 if k.lower().startswith("x-")}}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True


@pytest.fixture(scope="module")
def upstream():
    srv = _Server(("127.0.0.1", 0), _Echo)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/metadata"
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def cloud(upstream):
    c = Cloud("netagent", extra_env={"ONESTACK_NETWORK_AGENT": "true",
                                     "ONESTACK_NETWORK_DEMO_TOPOLOGY": "false",
                                     "ONESTACK_NETWORK_RESYNC_INTERVAL": "2",
                                     "ONESTACK_NETWORK_METADATA_URL": upstream})
    ledger = c.state / "network" / "kernel.json"
    made: dict = {}
    try:
        c.start()
        if not wait_for(lambda: c.os_json("network", "agent", "list"), 10):
            log = (c.state / "onestack.log").read_text()
            if "another onestack network agent runs on this host" in log:
                pytest.skip("another onestack's network agent runs on this host")
            raise AssertionError(f"the network agent did not report:\n{log[-3000:]}")
        yield c
    finally:
        if ledger.exists():
            made = json.loads(ledger.read_text())
        c.stop()
        # `down --purge` removed every namespace and device the agent had made
        left = [n for n in made.get("netns", []) if iplib.netns_exists(n)]
        left += [d for d in made.get("link", []) if iplib.link_exists(d)]
        assert not left, f"left behind by down --purge: {left}"
        assert not [t for t in nft.list_tables() if t[1].startswith("onestack-sg")]


class Admin:
    """The real CLI as admin (its environment read once), and a token for quick polls."""

    def __init__(self, cloud: Cloud):
        self.cloud, self.env = cloud, cloud.openrc("admin")
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": self.env["OS_PASSWORD"]}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
        r = httpx.post(f"{cloud.url}/identity/v3/auth/tokens", json=body, timeout=30)
        self.token = r.headers["X-Subject-Token"]

    def cli(self, *args: str, check: bool = True):
        return self.cloud.openstack(*args, env=self.env, check=check)

    def json(self, *args: str):
        return json.loads(self.cli(*args, "-f", "json").stdout)

    def status(self, port_id: str) -> str:
        r = httpx.get(f"{self.cloud.url}/networking/v2.0/ports/{port_id}",
                      headers={"X-Auth-Token": self.token}, timeout=30)
        return r.json()["port"]["status"]


def _public_ping(addr: str) -> bool:
    return ping("onestack-public", addr)


def test_cli_state_becomes_kernel_state_and_goes_away(cloud, upstream):
    t0 = time.monotonic()
    admin = Admin(cloud)
    net = admin.json("network", "create", "e2e-net")
    sub = admin.json("subnet", "create", "--network", net["id"], "--subnet-range", CIDR, "e2e-sub")
    router = admin.json("router", "create", "e2e-router")
    admin.cli("router", "set", "--external-gateway", "public", router["id"])
    admin.cli("router", "add", "subnet", router["id"], sub["id"])
    qdhcp, qrouter = f"qdhcp-{net['id']}", f"qrouter-{router['id']}"
    bridge = iplib.device_name("brq", net["id"])
    vni = admin.json("network", "show", net["id"])["provider:segmentation_id"]

    # L2: the network's bridge with its VXLAN device; DHCP: dnsmasq in qdhcp; L3: qrouter
    assert wait_for(lambda: iplib.netns_exists(qdhcp) and iplib.netns_exists(qrouter))
    files = dhcp.files_for(cloud.state, net["id"])
    assert wait_for(lambda: dhcp.running_pid(files))
    assert iplib.get_link(bridge)["mtu"] == 1450
    assert iplib.get_link(f"vxlan-{vni}")["master"] == bridge
    gw_port = admin.json("port", "list", "--router", router["id"], "--device-owner",
                            "network:router_gateway")[0]
    router_gw_ip = gw_port["Fixed IP Addresses"][0]["ip_address"]
    qg = iplib.device_name("qg-", gw_port["ID"])
    assert f"{router_gw_ip}/24" in iplib.list_addresses(qg, qrouter)
    # the external network's namespace holds the subnet's gateway, as DevStack's br-ex
    assert iplib.netns_exists("onestack-public")
    assert wait_for(lambda: _public_ping(router_gw_ip), 8)
    dhcp_ports = admin.json("port", "list", "--network", net["id"], "--device-owner", "network:dhcp")
    assert len(dhcp_ports) == 1
    assert wait_for(lambda: admin.status(dhcp_ports[0]["ID"]) == "ACTIVE")

    # the guest: a port bound to this host, then its "tap" appears as compute would make it
    port = admin.json("port", "create", "--network", net["id"], "--host", admin.json("network", "agent", "list")[0]["Host"],
                         "--mac-address", GUEST_MAC, "--device-owner", "compute:nova",
                         "--device", INSTANCE, "e2e-guest")
    guest_ip = port["fixed_ips"][0]["ip_address"]
    assert port["status"] == "DOWN"
    tap = iplib.device_name("tap", port["id"])
    with lab() as lb:
        guest = lb.ns("guest")
        iplib.ensure_veth("eth0", tap, netns=guest, peer_netns=None, address=GUEST_MAC)
        assert wait_for(lambda: admin.status(port["id"]) == "ACTIVE", 10)
        assert iplib.get_link(tap)["master"] == bridge
        lease = dhcp_client(lb, guest)
        assert lease["ip"] == guest_ip and lease["router"] == GW and lease["mtu"] == "1450"
        assert wait_for(lambda: ping(guest, GW), 8)

        # the metadata proxy in the router namespace signs the guest's identity
        code = ("import urllib.request; print(urllib.request.urlopen("
                "'http://169.254.169.254/latest/meta-data/instance-id', timeout=5).read().decode())")
        out = iplib.netns_exec(guest, [sys.executable, "-c", code], check=False, timeout=20)
        assert out.returncode == 0, out.stderr
        got = json.loads(out.stdout)
        secret = (cloud.state / "network" / "metadata_secret").read_text().strip()
        assert got["path"] == "/metadata/latest/meta-data/instance-id"
        assert got["x-instance-id"] == INSTANCE and got["x-forwarded-for"] == guest_ip
        assert got["x-instance-id-signature"] == metadata.sign(INSTANCE, secret)
        assert got["x-neutron-router-id"] == router["id"]

        # a floating IP, reached from the external namespace as security groups allow
        fip = admin.json("floating", "ip", "create", "public")["floating_ip_address"]
        admin.cli("floating", "ip", "set", "--port", port["id"], fip)

        def fip_answers() -> bool:
            return _public_ping(fip)

        assert wait_for(lambda: f"{fip}/32" in iplib.list_addresses(qg, qrouter))
        assert not fip_answers()  # the default group lets in only its own members
        sg = port["security_group_ids"][0]
        rule = admin.json("security", "group", "rule", "create", "--protocol", "icmp", sg)
        assert wait_for(fip_answers, 10)
        # ... and the same through the CLI admins use
        assert cloud.onestack("netns", "exec", "public", "--", "ping", "-c1", "-W2", fip,
                              check=False).returncode == 0
        admin.cli("security", "group", "rule", "delete", rule["id"])
        assert wait_for(lambda: not fip_answers(), 10)

        # drift is repaired: dnsmasq killed, it runs again by the next resync
        os.kill(dhcp.running_pid(files), 9)
        assert wait_for(lambda: dhcp.running_pid(files), 10)

        # the guest's tap goes away (the guest stopped): the port goes DOWN
        iplib.delete_link(tap)
        assert wait_for(lambda: admin.status(port["id"]) == "DOWN", 10)

        # deleting it all removes the kernel objects
        admin.cli("floating", "ip", "delete", fip)
        admin.cli("port", "delete", port["id"])
        assert wait_for(lambda: not [t for t in nft.list_tables() if t[1] == secgroups.TABLE])
    admin.cli("router", "remove", "subnet", router["id"], sub["id"])
    admin.cli("router", "delete", router["id"])
    assert wait_for(lambda: not iplib.netns_exists(qrouter))
    admin.cli("network", "delete", net["id"])
    assert wait_for(lambda: not iplib.netns_exists(qdhcp) and not iplib.link_exists(bridge))
    assert not iplib.link_exists(f"vxlan-{vni}") and dhcp.running_pid(files) is None
    print(f"agent e2e: {time.monotonic() - t0:.1f} s")
