"""Servers moving between the compute nodes of the multi-node cloud: live migration
(libvirtd to libvirtd over the management network) while the guest answers ping
through its floating IP, cold migration with confirm, and a node that dies: seen down,
not scheduled to, its guest evacuated (and the stale copy removed when it comes back). Bounded waits only."""

from __future__ import annotations

import re
import signal
import subprocess

from tests.cloud import BIN, wait_for
from tests.cluster.conftest import MARKS
from tests.cluster.test_cluster import DEMO, _boot, _host_of, _in_public, _ready

pytestmark = MARKS

ADMIN_27 = ("--os-compute-api-version", "2.56")
PING_INTERVAL = 0.2


def _status(cluster, server: str, wanted: str, timeout: float = 300) -> dict:
    def check():
        shown = cluster.os_json("server", "show", server)
        assert shown["status"] != "ERROR", shown.get("fault")
        return shown if shown["status"] == wanted else None
    return wait_for(check, timeout, f"{server} {wanted}", step=1)


def _domains(cluster, node: str) -> str:
    return cluster.on(node, "virsh", "-c", "qemu:///system", "list", "--all", "--name").stdout


def _ready_count(cluster, server: str) -> int:
    out = cluster.openstack("console", "log", "show", server, check=False, **DEMO).stdout
    return len(re.findall(r"onestack-tiny: ready\. hostname=\S+ addresses: eth0=", out))


def test_live_migration_keeps_the_guest_answering(cluster):
    cluster.openstack("security", "group", "rule", "create", "--proto", "icmp", "default", **DEMO, check=False)
    server = _boot(cluster, "live", "c1")
    _ready(cluster, server)
    fip = cluster.os_json("floating", "ip", "create", "public", **DEMO)["floating_ip_address"]
    cluster.openstack("server", "add", "floating", "ip", server, fip, **DEMO)
    wait_for(lambda: _in_public(cluster, "ping", "-c", "1", "-W", "1", fip).returncode == 0, 30, "ping")
    pinger = subprocess.Popen([str(BIN / "onestack"), "netns", "exec", "public", "--", "ping", "-i", str(PING_INTERVAL),
                               "-W", "1", "-w", "90", fip], env=cluster.env, stdout=subprocess.PIPE, text=True)
    try:
        cluster.openstack("server", "migrate", "--live-migration", "--host", "c2", "--os-compute-api-version",
                          "2.30", server)
        _status(cluster, server, "ACTIVE")
        wait_for(lambda: _host_of(cluster, server) == "c2" and
                 cluster.os_json("server", "show", server)["OS-EXT-STS:task_state"] is None, 300, "on c2")
        wait_for(lambda: _in_public(cluster, "ping", "-c", "1", "-W", "1", fip).returncode == 0, 30,
                 "ping after the move")
    finally:
        pinger.send_signal(signal.SIGINT)  # (ping prints its summary on SIGINT)
        out = pinger.communicate(timeout=10)[0]
    # a blip while the guest and its port move to c2, not an outage: the longest run of
    # lost replies (pings every 0.2 s) stays under 5 s of packets
    seqs = sorted(int(x) for x in re.findall(r"icmp_seq=(\d+)", out))
    assert seqs, out[-400:]
    longest = max([b - a - 1 for a, b in zip(seqs, seqs[1:], strict=False)] or [0])
    assert longest * PING_INTERVAL <= 5, out[-600:]
    assert server not in _domains(cluster, "c1")  # (domains are onestack-<server id>)
    migrations = cluster.os_json("server", "migration", "list", "--server", server, "--os-compute-api-version",
                                 "2.59")
    assert migrations and migrations[0]["Status"] == "completed", migrations
    cluster.openstack("server", "delete", "--wait", server, **DEMO)


def test_cold_migration_and_confirm(cluster):
    server = _boot(cluster, "cold", "c2")
    _ready(cluster, server)
    cluster.openstack("server", "migrate", "--host", "c1", *ADMIN_27, server)
    _status(cluster, server, "VERIFY_RESIZE")
    assert _host_of(cluster, server) == "c1"
    cluster.openstack("server", "migration", "confirm", server)  # (osc: `server resize confirm` too)
    _status(cluster, server, "ACTIVE")
    wait_for(lambda: _ready_count(cluster, server) >= 1, 240, "the guest booted on c1", step=1)
    cluster.openstack("server", "delete", "--wait", server, **DEMO)


def _services(cluster) -> dict[str, str]:
    return {r["Host"]: r["State"] for r in cluster.os_json("compute", "service", "list", "--service", "nova-compute")}


def test_a_dead_node_is_down_not_scheduled_to_and_its_guest_evacuated(cluster):
    """One node death for both: c2 is seen down, new servers go to c1 only, and c2's guest is
    rebuilt on c1 by evacuate (the boots and the rebuild run at once)."""
    server = _boot(cluster, "evac", "c2")
    _ready(cluster, server)
    cluster.kill_node("c2")
    try:
        wait_for(lambda: _services(cluster).get("c2") == "down", 60, "c2 down")
        ids = [cluster.os_json("server", "create", "--flavor", "m1.nano", "--image", "onestack-tiny-x86_64",
                               "--network", "private", f"while-c2-down-{i}", **DEMO)["id"] for i in range(2)]
        cluster.openstack("server", "evacuate", server)
        for i in ids:
            wait_for(lambda s=i: cluster.os_json("server", "show", s, **DEMO)["status"] in ("ACTIVE", "ERROR"),
                     240, f"server {i} built")
            assert _host_of(cluster, i) == "c1"
        _status(cluster, server, "ACTIVE")
        assert _host_of(cluster, server) == "c1"
        wait_for(lambda: _ready_count(cluster, server) >= 1, 240, "the guest rebuilt on c1", step=1)
        for i in ids:
            cluster.openstack("server", "delete", "--wait", i, **DEMO)
    finally:
        cluster.restart_node("c2")
    # back, c2 removes its stale copy of the evacuated guest
    wait_for(lambda: server not in _domains(cluster, "c2"), 120, "the stale guest gone from c2", step=1)
    wait_for(lambda: _services(cluster).get("c2") == "up", 60, "c2 up again")
    cluster.openstack("server", "delete", "--wait", server, **DEMO)
