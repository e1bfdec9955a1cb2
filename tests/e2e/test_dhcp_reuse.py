"""A fixed IP handed to a new port (a new MAC) is leased at once (issue 17).

dnsmasq keeps its leases in memory (and reads its lease file only at start): while
it holds the lease of a deleted port's IP for the old MAC, it refuses that IP to
the new port's MAC, and a new guest with the reused address gets no DHCP lease.
The DHCP sync releases such leases (``dhcp_release``, or a restart with a cleaned
lease file).

First the data plane library alone, with namespaces as guests (busybox udhcpc),
then the whole cloud with real guests: one on `private` with a fixed IP, deleted,
and a second one given the same IP, which leases it on its first boot. All traffic
stays inside namespaces these tests make; every wait is bounded.
"""

from __future__ import annotations

import os
import re
import shutil

import pytest

from onestack.network.linux import dhcp
from onestack.network.linux import ip as iplib
from tests.cloud import Cloud
from tests.e2e.guests import IMAGE, wait_console, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

if os.geteuid() != 0:
    pytest.skip("the DHCP tests need root", allow_module_level=True)
if [t for t in ("ip", "dnsmasq", "busybox") if not shutil.which(t)]:
    pytest.skip("missing data plane tools (scripts/install.sh test)", allow_module_level=True)

from tests.e2e.test_network_linux import dhcp_client, lab, mac  # noqa: E402 (after the skips)

CIDR, GW, DHCP_IP, IP = "10.78.0.0/24", "10.78.0.1", "10.78.0.2", "10.78.0.20"


def _guest(lb, name: str, address: str, host: str, bridge: str) -> str:
    """A guest namespace whose eth0 (MAC ``address``) is on the bridge."""
    ns = lb.ns(name)
    iplib.ensure_veth("eth0", iplib.device_name("tap", lb.port(name)), netns=ns, peer_netns=host,
                      peer_master=bridge, address=address)
    return ns


@pytest.mark.parametrize("release_tool", ["dhcp_release", "onestack-no-such-tool"])
def test_a_reused_address_is_leased_to_the_new_mac(release_tool, monkeypatch):
    if release_tool == "dhcp_release" and not shutil.which(release_tool):
        pytest.skip("dhcp_release missing (dnsmasq-utils, scripts/install.sh)")
    # without the tool, dnsmasq restarts with a lease file cleaned of the old lease
    monkeypatch.setattr(dhcp, "RELEASE_TOOL", release_tool)
    after_delete = "reloaded" if release_tool == "dhcp_release" else "restarted"
    with lab() as lb:
        host, bridge = lb.ns("host"), "brqreuse"
        iplib.ensure_bridge(bridge, host)
        net = dhcp.DhcpNetwork(id=lb.ident("net"), port_id=lb.port("dhcp"), port_mac=mac(2),
                               port_ips=[DHCP_IP], bridge=bridge, bridge_netns=host,
                               subnets=[dhcp.DhcpSubnet(id="s1", cidr=CIDR, gateway_ip=GW)],
                               hosts=[dhcp.DhcpHost(mac(11), IP)])
        files = dhcp.files_for(lb.state_dir, net.id)
        assert dhcp.sync(net, lb.state_dir) == "started"
        g1 = _guest(lb, "g1", mac(11), host, bridge)
        assert dhcp_client(lb, g1)["ip"] == IP
        assert f"{mac(11)} {IP}" in files.leases.read_text()

        # the guest is deleted, a new port gets its IP with another MAC
        iplib.delete_netns(g1)
        net.hosts = [dhcp.DhcpHost(mac(12), IP)]
        assert dhcp.sync(net, lb.state_dir) == after_delete
        assert mac(11) not in files.leases.read_text()
        g2 = _guest(lb, "g2", mac(12), host, bridge)
        assert dhcp_client(lb, g2)["ip"] == IP
        assert dhcp.sync(net, lb.state_dir) == "unchanged"  # the new lease is a wanted one

        # dnsmasq gone while the port changed again (an agent restart after a crash): it
        # starts with a lease file without the old lease
        dhcp.stop(files)
        iplib.delete_netns(g2)
        net.hosts = [dhcp.DhcpHost(mac(13), IP)]
        assert f"{mac(12)} {IP}" in files.leases.read_text()
        assert dhcp.sync(net, lb.state_dir) == "started"
        assert mac(12) not in files.leases.read_text()
        g3 = _guest(lb, "g3", mac(13), host, bridge)
        assert dhcp_client(lb, g3)["ip"] == IP


# ------------------------------------------------------------------ real guests

REUSED = "10.0.0.40"  # in the demo topology's private-subnet (10.0.0.0/26)
READY = r"onestack-tiny: ready\. hostname=\S+ addresses: (\S+)"


@pytest.fixture(scope="module")
def cloud():
    if not shutil.which("virsh") or not shutil.which("qemu-system-x86_64"):
        pytest.skip("libvirt/QEMU missing (scripts/install.sh)")
    c = Cloud("dhcpreuse", extra_env={"ONESTACK_NETWORK_AGENT": "true",
                                      "ONESTACK_COMPUTE_DRIVER": "libvirt"})
    try:
        c.start()

        def agents():
            if "another onestack network agent runs on this host" in (c.state / "onestack.log").read_text():
                return "busy"
            return c.os_json("network", "agent", "list")
        if wait_for(agents, 15, "network agents") == "busy":
            pytest.skip("another onestack's network agent runs on this host")
        c.onestack("image", "register", "tiny", timeout=600)
        yield c
    finally:
        c.stop()


def test_a_new_guest_leases_the_fixed_ip_of_a_deleted_one(cloud):
    demo = {"user": "demo"}
    net = cloud.os_json("network", "show", "private", **demo)["id"]
    leases = cloud.state / "dhcp" / net / "leases"

    def boot(name: str) -> tuple[str, str]:
        """The new server's id (the admin's console calls take ids) and its port's MAC."""
        sid = cloud.os_json("server", "create", "--flavor", "m1.nano", "--image", IMAGE, "--nic",
                            f"net-id={net},v4-fixed-ip={REUSED}", name, **demo)["id"]
        wait_for(lambda: cloud.os_json("server", "show", sid, **demo)["status"] in ("ACTIVE", "ERROR"),
                 240, f"{name} built")
        ports = cloud.os_json("port", "list", "--server", sid, **demo)
        assert [p["Fixed IP Addresses"][0]["ip_address"] for p in ports] == [REUSED]
        return sid, ports[0]["MAC Address"]

    old, old_mac = boot("reuse-1")
    assert wait_console(cloud, old, READY, timeout=240).group(1).startswith(f"eth0={REUSED}/")
    assert f"{old_mac} {REUSED}" in leases.read_text()
    cloud.openstack("server", "delete", "--wait", old, **demo)

    new, new_mac = boot("reuse-2")
    assert new_mac != old_mac
    # the guest's udhcpc tries for 10 s after boot: its ready line shows whether it got the IP
    ready = wait_console(cloud, new, READY, timeout=240)
    log = cloud.openstack("console", "log", "show", new).stdout
    assert ready.group(1).startswith(f"eth0={REUSED}/"), log[-2000:]
    assert re.search(rf"lease of {re.escape(REUSED)} obtained", log)
    text = leases.read_text()
    assert f"{new_mac} {REUSED}" in text and old_mac not in text
    cloud.openstack("server", "delete", "--wait", new, **demo)
