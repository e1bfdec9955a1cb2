"""Quotas kept in identity's unified limits: each service's quota API reads and writes
the project's limits there (``openstack quota set`` shows in ``openstack limit list``
and the other way round), creates are refused past them, also when they race."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import openstack.exceptions as sdkexc
import pytest

from onestack.common import errors
from onestack.common.clients import ServiceAuth
from onestack.common.limits import Limits
from tests.cloud import free_port, wait_for


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def member(cloud):
    """A member of a project of its own: (its OS_* env, its project id)."""
    with cloud.new_member("ql") as env:
        pid = cloud.os_json("project", "show", env["OS_PROJECT_NAME"])["id"]
        yield env, pid


def _limits(cloud, project: str, service: str) -> dict[str, int]:
    rows = cloud.os_json("limit", "list", "--project", project, "--service", service)
    return {r["Resource Name"]: r["Resource Limit"] for r in rows}


def _quota(cloud, *args: str) -> dict[str, int]:
    q = cloud.os_json("quota", "show", *args)
    return dict(q) if isinstance(q, dict) else {r["Resource"]: r["Limit"] for r in q}


def test_registered_limits_hold_the_defaults(cloud):
    services = {s["Type"]: s["ID"] for s in cloud.os_json("service", "list", "--long")}

    def registered():  # (the services register them just after start)
        rows = cloud.os_json("registered", "limit", "list")
        have = {(r["Service ID"], r["Resource Name"]): r["Default Limit"] for r in rows}
        wanted = [(services[t], n) for t, n in (("network", "port"), ("compute", "servers"),
                                                ("block-storage", "volumes"), ("image", "image_count_total"))]
        return have if all(k in have for k in wanted) else None

    have = wait_for(registered, what="the registered limits of every service")
    assert have[(services["compute"], "class:VCPU")] == 20
    assert have[(services["block-storage"], "gigabytes")] == 1000
    assert have[(services["network"], "port")] == 500
    assert have[(services["network"], "network")] == 100


def test_network_quota_set_is_a_project_limit(cloud, member):
    env, pid = member
    project = env["OS_PROJECT_NAME"]
    cloud.openstack("quota", "set", "--networks", "7", "--ports", "9", project)
    assert _limits(cloud, project, "network") == {"network": 7, "port": 9}
    q = _quota(cloud, "--network", project)
    assert q["networks"] == 7 and q["ports"] == 9 and q["routers"] == 10
    # a limit written in identity is the quota the network API shows and enforces
    limit_id = cloud.os_json("limit", "list", "--project", project, "--service", "network",
                             "--resource-name", "network")[0]["ID"]
    cloud.openstack("limit", "set", "--resource-limit", "1", limit_id)
    cloud.openstack("limit", "create", "--project", project, "--service", "network",
                    "--resource-limit", "2", "router")
    # (services keep what identity said for a few seconds)
    wait_for(lambda: _quota(cloud, "--network", project)["networks"] == 1, what="the new network limit")
    assert _quota(cloud, "--network", project)["routers"] == 2
    conn = cloud.sdk(env=env)
    try:
        first = conn.network.create_network(name=_name("ql"))
        with pytest.raises(sdkexc.ConflictException) as e:
            conn.network.create_network(name=_name("ql"))
        assert e.value.response.json()["NeutronError"]["type"] == "OverQuota"
        conn.network.delete_network(first)
    finally:
        conn.close()
    # quota delete: back to the registered defaults, the project's limits gone
    admin = cloud.sdk()
    try:
        admin.network.delete_quota(pid)
        assert admin.network.get_quota(pid).networks == 100
    finally:
        admin.close()
    assert _limits(cloud, project, "network") == {}


def test_concurrent_port_creates_stop_at_the_limit(any_cloud):
    """On SQLite and on PostgreSQL (its per-project advisory lock)."""
    cloud = any_cloud
    with cloud.new_member("qlc") as env:
        _concurrent_ports(cloud, env)


def _concurrent_ports(cloud, env: dict) -> None:
    project = env["OS_PROJECT_NAME"]
    pid = cloud.os_json("project", "show", project)["id"]
    conn = cloud.sdk(env=env)
    try:
        net = conn.network.create_network(name=_name("qlc"))
        used = len(list(conn.network.ports(project_id=pid)))
        cloud.openstack("quota", "set", "--ports", str(used + 3), project)

        def create(i: int):
            c = cloud.sdk(env=env)
            try:
                return c.network.create_port(network_id=net.id, name=f"qlc-{i}")
            except sdkexc.ConflictException as e:
                return e
            finally:
                c.close()

        with ThreadPoolExecutor(10) as pool:
            results = list(pool.map(create, range(10)))
        made = [r for r in results if not isinstance(r, Exception)]
        refused = [r for r in results if isinstance(r, Exception)]
        assert len(made) == 3 and len(refused) == 7, results
        assert all(e.response.json()["NeutronError"]["type"] == "OverQuota" for e in refused)
        assert len(list(conn.network.ports(project_id=pid))) == used + 3
        for p in made:
            conn.network.delete_port(p)
        conn.network.delete_network(net)
    finally:
        conn.close()
        cloud.openstack("quota", "delete", "--network", project, check=False)


def test_volume_quota_set_is_a_project_limit(cloud, member):
    env, pid = member
    project = env["OS_PROJECT_NAME"]
    cloud.openstack("quota", "set", "--volumes", "4", "--gigabytes", "30", project)
    assert _limits(cloud, project, "block-storage") == {"volumes": 4, "gigabytes": 30}
    cloud.openstack("limit", "create", "--project", project, "--service", "block-storage",
                    "--resource-limit", "2", "snapshots")
    wait_for(lambda: _quota(cloud, "--volume", project)["snapshots"] == 2, what="the new snapshot limit")
    assert _quota(cloud, "--volume", project)["volumes"] == 4
    cloud.openstack("quota", "delete", "--volume", project)
    assert _limits(cloud, project, "block-storage") == {}
    assert _quota(cloud, "--volume", project)["volumes"] == 10


def test_concurrent_volume_creates_stop_at_the_limit(cloud, member):
    env, pid = member
    project = env["OS_PROJECT_NAME"]
    cloud.openstack("quota", "set", "--volumes", "3", project)

    def create(i: int):
        c = cloud.sdk(env=env)
        try:
            return c.block_storage.create_volume(name=f"qlv-{i}", size=1)
        except sdkexc.HttpException as e:
            return e
        finally:
            c.close()

    conn = cloud.sdk(env=env)
    try:
        with ThreadPoolExecutor(10) as pool:
            results = list(pool.map(create, range(10)))
        made = [r for r in results if not isinstance(r, Exception)]
        refused = [r for r in results if isinstance(r, Exception)]
        assert len(made) == 3, results
        assert {e.status_code for e in refused} == {413}
        assert len(list(conn.block_storage.volumes())) == 3
        for v in made:
            conn.block_storage.wait_for_status(v, "available", failures=["error"], wait=60)
            conn.block_storage.delete_volume(v)
        wait_for(lambda: not list(conn.block_storage.volumes()), what="the volumes deleted")
    finally:
        conn.close()
        cloud.openstack("quota", "delete", "--volume", project, check=False)


def test_compute_quota_set_is_a_project_limit(cloud, member):
    env, pid = member
    project = env["OS_PROJECT_NAME"]
    cloud.openstack("quota", "set", "--instances", "2", "--cores", "8", project)
    assert _limits(cloud, project, "compute") == {"servers": 2, "class:VCPU": 8}
    q = _quota(cloud, "--compute", project)
    assert q["instances"] == 2 and q["cores"] == 8 and q["ram"] == 51200
    # a limit written in identity: the compute quota shows it and a 2nd server is refused
    cloud.openstack("quota", "delete", "--compute", project)
    assert _limits(cloud, project, "compute") == {}
    cloud.openstack("limit", "create", "--project", project, "--service", "compute",
                    "--resource-limit", "1", "servers")
    wait_for(lambda: _quota(cloud, "--compute", project)["instances"] == 1, what="the new servers limit")
    admin = cloud.sdk()
    image = admin.image.create_image(name=_name("qli"), data=b"\0" * 65536, disk_format="raw",
                                     container_format="bare", visibility="public")
    try:
        first = cloud.os_json("server", "create", "--flavor", "m1.nano", "--image", image.id, "--nic", "none",
                              _name("qls"), env=env)
        r = cloud.openstack("server", "create", "--flavor", "m1.nano", "--image", image.id, "--nic", "none",
                            _name("qls"), env=env, check=False)
        assert r.returncode != 0 and "Quota exceeded for instances" in r.stderr and "403" in r.stderr
        cloud.openstack("server", "delete", "--wait", first["id"], env=env)
    finally:
        admin.image.delete_image(image, ignore_missing=True)
        admin.close()
        cloud.openstack("quota", "delete", "--compute", project, check=False)


def test_default_quota_class_is_the_registered_limit(cloud):
    cloud.openstack("quota", "set", "--class", "--key-pairs", "77", "default")
    try:
        services = {s["Type"]: s["ID"] for s in cloud.os_json("service", "list", "--long")}
        rows = cloud.os_json("registered", "limit", "list", "--service", services["compute"],
                             "--resource-name", "server_key_pairs")
        assert [r["Default Limit"] for r in rows] == [77]
        q = _quota(cloud, "--compute", "--default", "admin")
        assert q.get("key-pairs", q.get("key_pairs")) == 77
    finally:
        cloud.openstack("quota", "set", "--class", "--key-pairs", "100", "default")


def test_image_count_limit(cloud, member):
    env, pid = member
    project = env["OS_PROJECT_NAME"]
    cloud.openstack("limit", "create", "--project", project, "--service", "image",
                    "--resource-limit", "1", "image_count_total")
    conn = cloud.sdk(env=env)
    try:
        first = conn.image.create_image(name=_name("qlimg"), disk_format="raw", container_format="bare")
        r = cloud.openstack("image", "create", _name("qlimg"), env=env, check=False)
        assert r.returncode != 0 and "413" in r.stderr and "image_count_total" in r.stderr
        assert len(list(conn.image.images(owner=pid))) == 1
        conn.image.delete_image(first)
    finally:
        conn.close()
        for row in cloud.os_json("limit", "list", "--project", project, "--service", "image"):
            cloud.openstack("limit", "delete", row["ID"])


def test_identity_unreachable_is_503_not_a_guess():
    """No answer from identity: no limit is made up (the service answers 503)."""
    auth = ServiceAuth(f"http://127.0.0.1:{free_port()}", "nova", "pw")
    lim = Limits(lambda: auth, "compute", {"instances": "servers"}, {"instances": 10})
    with pytest.raises(errors.ServiceUnavailable, match="identity did not answer"):
        lim.limits("some-project")


def test_concurrent_server_creates_stop_at_the_limit(cloud):
    with cloud.new_member("qls") as env:
        project = env["OS_PROJECT_NAME"]
        cloud.openstack("quota", "set", "--instances", "3", project)
        admin = cloud.sdk()
        image = admin.image.create_image(name=_name("qlc"), data=b"\0" * 65536, disk_format="raw",
                                         container_format="bare", visibility="public")
        flavor = admin.compute.find_flavor("m1.nano")

        def create(i: int):
            c = cloud.sdk(env=env)
            try:
                return c.compute.create_server(name=f"qls-{i}", image_id=image.id, flavor_id=flavor.id,
                                               networks="none")
            except sdkexc.HttpException as e:
                return e
            finally:
                c.close()

        conn = cloud.sdk(env=env)
        try:
            with ThreadPoolExecutor(10) as pool:
                results = list(pool.map(create, range(10)))
            made = [r for r in results if not isinstance(r, Exception)]
            refused = [r for r in results if isinstance(r, Exception)]
            assert len(made) == 3, results
            assert {e.status_code for e in refused} == {403}
            assert all("Quota exceeded for instances" in str(e) for e in refused)
            for s in made:
                conn.compute.delete_server(s)
            for s in made:
                conn.compute.wait_for_delete(s, wait=60)
        finally:
            conn.close()
            admin.image.delete_image(image, ignore_missing=True)
            admin.close()
