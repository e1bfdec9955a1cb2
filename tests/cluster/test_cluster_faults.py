"""The controller's infrastructure failing under a running multi-node cloud: RabbitMQ
stopped for 15 s while ten servers are asked for (afterwards each is ACTIVE, or ERROR
with a fault; none is stuck building, and deleting them leaves nothing behind), and
PostgreSQL restarted (the APIs answer again by themselves)."""

from __future__ import annotations

import sys
import time

from tests.cloud import wait_for
from tests.cluster.conftest import MARKS
from tests.cluster.test_cluster import DEMO

pytestmark = MARKS

# a managed server of the controller, stopped or started on the controller's node
SERVER = ("import sys; from onestack import infra; from onestack.config import load; "
          "conf = load(sys.argv[3]); s = infra.broker(conf) if sys.argv[1] == 'rabbitmq' else infra.database(conf); "
          "getattr(s, sys.argv[2])()")
OUTAGE = 15  # seconds: the fault injected, not a timing expectation


def _managed(cluster, server: str, action: str) -> None:
    r = cluster.on("ctl", sys.executable, "-c", SERVER, server, action,
                   str(cluster.state / "cluster-controller.toml"), timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr


def _compute_ports(cluster) -> list[dict]:
    return [p for p in cluster.os_json("port", "list", "--long") if str(p.get("Device Owner")).startswith("compute:")]


def test_rabbitmq_outage_during_ten_boots(cluster):
    before = {p["ID"] for p in _compute_ports(cluster)}
    _managed(cluster, "rabbitmq", "stop")
    stopped = time.monotonic()
    asked = []
    try:
        for i in range(10):
            r = cluster.openstack("server", "create", "--flavor", "m1.nano", "--image", "onestack-tiny-x86_64",
                                  "--network", "private", "-f", "value", "-c", "id", f"outage-{i}",
                                  check=False, **DEMO)
            if r.returncode == 0:
                asked.append(r.stdout.strip())
            else:  # refused at once is fine; a 500 is not
                assert "500" not in r.stderr, r.stderr
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - stopped)))
    finally:
        _managed(cluster, "rabbitmq", "start")
    servers = {s["ID"]: s for s in cluster.os_json("server", "list", **DEMO) if s["Name"].startswith("outage-")}
    assert set(asked) <= set(servers), (asked, servers)

    def settled():
        now = {s: cluster.os_json("server", "show", s, **DEMO) for s in servers}
        return now if all(x["status"] in ("ACTIVE", "ERROR") for x in now.values()) else None

    final = wait_for(settled, 300, "every server ACTIVE or ERROR", step=2)
    for s, shown in final.items():
        if shown["status"] == "ERROR":
            assert shown.get("fault"), (s, shown)
    # the cloud works after the outage
    compute_up = {r["Host"]: r["State"] for r in cluster.os_json("compute", "service", "list", "--service",
                                                                "nova-compute")}
    wait_for(lambda: all(v == "up" for v in {r["Host"]: r["State"] for r in cluster.os_json(
        "compute", "service", "list", "--service", "nova-compute")}.values()), 60, f"computes up ({compute_up})")
    for s in servers:
        cluster.openstack("server", "delete", "--wait", s, **DEMO)
    wait_for(lambda: {p["ID"] for p in _compute_ports(cluster)} <= before, 60, "no port left behind")
    for node in ("c1", "c2"):
        domains = cluster.on(node, "virsh", "-c", "qemu:///system", "list", "--all", "--name").stdout
        assert not [s for s in servers if s in domains], (node, domains)


def test_postgresql_restart(cluster):
    _managed(cluster, "postgres", "stop")
    try:
        r = cluster.openstack("server", "list", check=False, **DEMO)
        assert r.returncode != 0 and "500" not in r.stderr, r.stderr
    finally:
        _managed(cluster, "postgres", "start")
    wait_for(lambda: cluster.openstack("server", "list", check=False, **DEMO).returncode == 0, 60,
             "the APIs answering again")
    assert cluster.os_json("network", "show", "private", **DEMO)["name"] == "private"
