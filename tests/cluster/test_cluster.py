"""Across the nodes of a real multi-node cloud (tests/cluster/conftest.py): services
register from their own nodes, guests on two compute nodes share a tenant network over
VXLAN on the management network, the router and floating IPs on a network node reach
a guest on either node from the external namespace, a volume of the storage node is
attached to a guest of a compute node, and a dead compute node is seen down and is
not scheduled to. Every wait is bounded; all traffic stays in the cluster's namespaces."""

from __future__ import annotations

import re
import sys

from tests.cloud import wait_for
from tests.cluster.conftest import MARKS
from tests.e2e.test_compute_guests import SSH
from tests.e2e.test_volume_guests import PROBE

pytestmark = MARKS

READY = re.compile(r"onestack-tiny: ready\. hostname=(\S+) addresses: eth0=([\d.]+)/")
DEMO = {"user": "demo"}


def _in_public(cluster, *argv: str, timeout: float = 40):
    return cluster.on("public", *argv, timeout=timeout)


def _ssh(cluster, host: str, key: str, cmd: str):
    return _in_public(cluster, sys.executable, "-c", SSH, host, key, cmd)


def _ready(cluster, server: str, timeout: float = 300) -> re.Match:
    def check():  # (409 while the server builds)
        return READY.search(cluster.openstack("console", "log", "show", server, check=False, **DEMO).stdout)
    return wait_for(check, timeout, f"the ready line of {server}", step=1)


def _boot(cluster, name: str, host: str, *extra: str) -> str:
    """As admin in the demo project: a tiny guest forced onto ``host`` (nova:HOST)."""
    env = {**cluster.openrc("admin"), "OS_PROJECT_NAME": "demo"}
    return cluster.os_json("server", "create", "--flavor", "m1.nano", "--image", "onestack-tiny-x86_64",
                           "--network", "private", "--availability-zone", f"nova:{host}", *extra, name,
                           env=env)["id"]


def _host_of(cluster, server: str) -> str:
    return cluster.os_json("server", "show", server)["OS-EXT-SRV-ATTR:host"]


def test_every_service_runs_on_its_node(cluster):
    services = {(r["Binary"], r["Host"]): r["State"] for r in cluster.os_json("compute", "service", "list")}
    assert services.get(("nova-compute", "c1")) == services.get(("nova-compute", "c2")) == "up", services
    assert services.get(("nova-scheduler", "ctl")) == "up", services
    hyps = {h["Hypervisor Hostname"]: h for h in cluster.os_json("hypervisor", "list")}
    assert hyps["c1"]["Host IP"] == "10.250.0.11" and hyps["c2"]["Host IP"] == "10.250.0.12", hyps
    agents = {(a["Agent Type"], a["Host"]) for a in cluster.os_json("network", "agent", "list")}
    assert {("L3 agent", "c1"), ("L3 agent", "c2"), ("DHCP agent", "c1"), ("Linux bridge agent", "c2")} <= agents
    volume = {(r["Binary"], r["Host"]): r["State"] for r in cluster.os_json("volume", "service", "list")}
    assert volume.get(("cinder-volume", "s1@filedriver-1")) == "up", volume
    assert volume.get(("cinder-scheduler", "ctl")) == "up", volume
    # the controller runs no agent; the nodes hold no admin password
    assert not [h for (b, h) in services if b == "nova-compute" and h == "ctl"]
    for node in ("c1", "c2", "s1"):
        creds = (cluster.nodes_dir / node / "state" / "credentials.toml").read_text()
        assert cluster.password("admin") not in creds


def test_guests_on_two_nodes_talk_through_vxlan_and_a_floating_ip(cluster, tmp_path):
    key = tmp_path / "k.pem"
    key.write_text(cluster.openstack("keypair", "create", "cluster-key").stdout)  # (the booting user's)
    key.chmod(0o600)
    for rule in (("--proto", "tcp", "--dst-port", "22"), ("--proto", "icmp")):
        cluster.openstack("security", "group", "rule", "create", *rule, "default", **DEMO)
    a = _boot(cluster, "vx-a", "c1", "--key-name", "cluster-key")
    b = _boot(cluster, "vx-b", "c2", "--key-name", "cluster-key")
    assert (_host_of(cluster, a), _host_of(cluster, b)) == ("c1", "c2")
    ready_a, ready_b = _ready(cluster, a), _ready(cluster, b)  # both leased from one DHCP server
    # the router lives on one network node; a guest on each node is reached through it
    for server, ready in ((a, ready_a), (b, ready_b)):
        fip = cluster.os_json("floating", "ip", "create", "public", **DEMO)["floating_ip_address"]
        cluster.openstack("server", "add", "floating", "ip", server, fip, **DEMO)
        wait_for(lambda f=fip: _in_public(cluster, "ping", "-c", "1", "-W", "1", f).returncode == 0, 30,
                 f"ping to {fip}")
        other = (ready_b if server == a else ready_a).group(2)
        out = wait_for(lambda f=fip, o=other: _ssh(cluster, f, str(key), f"hostname; ping -c 1 -W 2 {o} >/dev/null"
                                                    f" && echo peer-ok").stdout, 60, f"SSH to {fip}")
        assert out.split() == [ready.group(1), "peer-ok"], out
    for server in (a, b):
        cluster.openstack("server", "delete", "--wait", server, **DEMO)
    # their taps are gone from their nodes (veths, with an @, are DHCP and router ports)
    for node in ("c1", "c2"):
        links = [x.split()[0] for x in cluster.on(node, "ip", "-br", "link").stdout.splitlines() if x.strip()]
        assert not [x for x in links if x.startswith("tap") and "@" not in x], (node, links)


def test_volume_of_the_storage_node_in_a_guest_of_a_compute_node(cluster, tmp_path):
    """Attached over NBD across the management network, written by the guest, detached,
    attached again: the guest reads what it wrote."""
    vol = cluster.os_json("volume", "create", "--size", "1", "cluster-vol", **DEMO)["id"]
    wait_for(lambda: cluster.os_json("volume", "show", vol, **DEMO)["status"] == "available", 60, "volume")
    assert cluster.os_json("volume", "show", vol)["os-vol-host-attr:host"].startswith("s1@")
    probe = tmp_path / "probe.sh"
    probe.write_text(PROBE.format(write="cluster"))
    server = _boot(cluster, "vol-guest", "c2", "--user-data", str(probe))
    _ready(cluster, server)

    def console(pattern: str, timeout: float = 120):
        def check():
            return re.search(pattern, cluster.openstack("console", "log", "show", server, **DEMO).stdout)
        return wait_for(check, timeout, f"{pattern!r} on the console", step=1)

    for n in (1, 2):
        cluster.openstack("server", "add", "volume", server, vol, **DEMO)
        wait_for(lambda: cluster.os_json("volume", "show", vol, **DEMO)["status"] == "in-use", 90, "attached")
        seen = console(rf"volprobe: {n} appeared read=\[([a-z0-9-]*)\]")
        assert seen.group(1) == ("" if n == 1 else "cluster-1"), seen.group(0)
        console(rf"volprobe: {n} wrote cluster-{n}")
        cluster.openstack("server", "remove", "volume", server, vol, **DEMO)
        wait_for(lambda: cluster.os_json("volume", "show", vol, **DEMO)["status"] == "available", 120, "detached")
        console(rf"volprobe: {n} gone")
    cluster.openstack("server", "delete", "--wait", server, **DEMO)
    cluster.openstack("volume", "delete", vol, **DEMO)


def test_a_dead_compute_node_is_down_and_not_scheduled_to(cluster):
    cluster.kill_node("c2")
    try:
        wait_for(lambda: {r["Host"]: r["State"] for r in cluster.os_json(
            "compute", "service", "list", "--service", "nova-compute")}.get("c2") == "down", 60, "c2 down")
        ids = [cluster.os_json("server", "create", "--flavor", "m1.nano", "--image", "onestack-tiny-x86_64",
                               "--network", "private", f"while-c2-down-{i}", **DEMO)["id"] for i in range(3)]
        for i in ids:
            wait_for(lambda s=i: cluster.os_json("server", "show", s, **DEMO)["status"] in ("ACTIVE", "ERROR"),
                     240, f"server {i} built")
            assert _host_of(cluster, i) == "c1"
        for i in ids:
            cluster.openstack("server", "delete", "--wait", i, **DEMO)
    finally:
        cluster.restart_node("c2")
    wait_for(lambda: {r["Host"]: r["State"] for r in cluster.os_json(
        "compute", "service", "list", "--service", "nova-compute")}.get("c2") == "up", 60, "c2 up again")
