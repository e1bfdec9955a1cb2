"""The scheduler on simulated hosts: spread across many, and server-group policies."""

from __future__ import annotations

import collections
import subprocess
import time

import openstack
import pytest

from tests.cloud import Cloud


def _conn(cloud: Cloud):
    rc = cloud.openrc("admin")
    return openstack.connect(auth_url=rc["OS_AUTH_URL"], username=rc["OS_USERNAME"], password=rc["OS_PASSWORD"],
                             project_name=rc["OS_PROJECT_NAME"], user_domain_name="Default",
                             project_domain_name="Default", compute_api_version="2.79")


def _image(cloud: Cloud, tmp_path) -> str:
    path = tmp_path / "s.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "16M"], check=True)
    return cloud.os_json("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                         "--public", "--file", str(path), "sched")["id"]


def _wait_settled(conn, count: int, timeout: float = 60) -> list:
    deadline = time.monotonic() + timeout
    while True:
        servers = list(conn.compute.servers(details=True, all_projects=True))
        if len(servers) >= count and all(s.status in ("ACTIVE", "ERROR") for s in servers):
            return servers
        assert time.monotonic() < deadline, [s.status for s in servers]
        time.sleep(0.3)


@pytest.fixture
def many_hosts():
    c = Cloud("sched", extra_env={"ONESTACK_COMPUTE_FAKE_HOSTS": "19"}).start()
    yield c
    c.stop()


def test_fifty_servers_spread_over_twenty_hosts(many_hosts, tmp_path):
    cloud = many_hosts
    image = _image(cloud, tmp_path)
    cloud.openstack("quota", "set", "--instances", "-1", "--cores", "-1", "--ram", "-1", "admin")
    conn = _conn(cloud)
    deadline = time.monotonic() + 60  # every simulated host has reported in
    while len(list(conn.compute.hypervisors())) < 20:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    conn.compute.post("/servers", json={"server": {"name": "spread", "imageRef": image, "flavorRef": "42",
                                                   "networks": "none", "min_count": 50, "max_count": 50}},
                      microversion="2.37")
    servers = _wait_settled(conn, 50)
    assert [s.status for s in servers].count("ACTIVE") == 50
    per_host = collections.Counter(s.compute_host for s in servers)
    assert len(per_host) == 20, per_host
    assert max(per_host.values()) - min(per_host.values()) <= 1, per_host
    stats = cloud.os_json("hypervisor", "stats", "show", "--os-compute-api-version", "2.1")
    assert stats["running_vms"] == 50


@pytest.fixture
def two_hosts():
    c = Cloud("aa", extra_env={"ONESTACK_COMPUTE_FAKE_HOSTS": "1"}).start()
    yield c
    c.stop()


def test_anti_affinity_refuses_a_third_server_on_two_hosts(two_hosts, tmp_path):
    cloud = two_hosts
    image = _image(cloud, tmp_path)
    group = cloud.os_json("server", "group", "create", "--policy", "anti-affinity", "apart")
    conn = _conn(cloud)
    deadline = time.monotonic() + 30
    while len(list(conn.compute.hypervisors())) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    for i in range(3):
        cloud.openstack("server", "create", "--flavor", "m1.nano", "--image", image, "--nic", "none",
                        "--os-compute-api-version", "2.37", "--hint", f"group={group['id']}", f"apart-{i}")
        _wait_settled(conn, i + 1)
    servers = {s.name: s for s in conn.compute.servers(details=True)}
    assert servers["apart-0"].status == servers["apart-1"].status == "ACTIVE"
    assert servers["apart-0"].compute_host != servers["apart-1"].compute_host
    third = servers["apart-2"]
    assert third.status == "ERROR"
    assert "No valid host was found" in third.fault["message"]
    assert "anti-affinity" in third.fault["message"]
    members = cloud.os_json("server", "group", "show", "apart")["members"]
    assert len(members) == 3 or isinstance(members, str)
