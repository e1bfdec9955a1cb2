"""Moving servers between hosts, through the real clients, on simulated compute hosts.

One cloud with three fake-driver hosts (this machine's and ``compute.fake_hosts = 2``) and
``compute.allow_resize_to_same_host = false``, so every resize leaves its host as a cold
migration does: cold migration with confirm and revert, resize to another host, live
migration, evacuation of a server whose host is forced down, ``os-migrations`` (and a
server's migrations), what Placement holds during and after a move (the migration holds
the source's room until the move is confirmed), and the refusals with their messages.
The libvirt side (disk copy over NBD, migrateToURI3) is in tests/unit/test_virt_migration.py.
"""

from __future__ import annotations

import json
import subprocess
import uuid

import httpx
import pytest

from tests.cloud import Cloud, wait_for

LIVE = ("--os-compute-api-version", "2.30")  # live migration to a named host
HOSTS_V = ("--os-compute-api-version", "2.56")  # cold migration to a named host
PAGES = ("--os-compute-api-version", "2.59")  # migrations with uuids, newest first, pages
PLACEMENT = ("--os-placement-api-version", "1.12")


@pytest.fixture(scope="module")
def cloud():
    c = Cloud("moves", extra_env={"ONESTACK_COMPUTE_FAKE_HOSTS": "2",
                                  "ONESTACK_COMPUTE_ALLOW_RESIZE_TO_SAME_HOST": "false"}).start()
    try:
        wait_for(lambda: len(c.os_json("hypervisor", "list")) == 3 and all(
            s["State"] == "up" for s in c.os_json("compute", "service", "list", "--service", "nova-compute")),
            60, what="three compute hosts up")
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def image(cloud, tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "small.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    return cloud.os_json("image", "create", "--disk-format", "qcow2", "--container-format", "bare", "--public",
                         "--file", str(path), f"moves-{uuid.uuid4().hex[:6]}")


@pytest.fixture
def server(cloud, image):
    name = f"mv-{uuid.uuid4().hex[:6]}"
    cloud.openstack("server", "create", "--flavor", "m1.nano", "--image", image["id"], "--nic", "none",
                    "--wait", name)
    yield cloud.os_json("server", "show", name)
    cloud.openstack("server", "delete", "--wait", name, check=False)


def show(cloud: Cloud, sid: str) -> dict:
    return cloud.os_json("server", "show", sid)


def settled(cloud: Cloud, sid: str, status: str, timeout: float = 30) -> dict:
    """The server once it is ``status`` with no task in progress (ERROR fails at once)."""
    seen = {}

    def check():
        seen.update(show(cloud, sid))
        if seen["status"] == "ERROR" and status != "ERROR":
            raise AssertionError(f"server {sid} went to ERROR: {seen.get('fault')}")
        return seen["status"] == status and not seen.get("OS-EXT-STS:task_state")

    wait_for(check, timeout, what=f"{sid} to be {status} (last: {seen.get('status')})")
    return seen


def migrations(cloud: Cloud, sid: str) -> list[dict]:
    """The server's migrations (os-migrations at 2.59), newest first."""
    return cloud.os_json("server", "migration", "list", "--server", sid, *PAGES)


def allocations(cloud: Cloud, consumer: str) -> dict[str, dict]:
    """What ``consumer`` holds in Placement: {provider uuid: resources}."""
    rows = cloud.os_json("resource", "provider", "allocation", "show", consumer, *PLACEMENT)
    return {r["resource_provider"]: r["resources"] for r in rows}


def providers(cloud: Cloud) -> dict[str, str]:
    """Compute node (host) name -> its resource provider uuid."""
    return {p["name"]: p["uuid"] for p in cloud.os_json("resource", "provider", "list")}


def other_host(cloud: Cloud, host: str) -> str:
    return next(h["Hypervisor Hostname"] for h in cloud.os_json("hypervisor", "list")
                if h["Hypervisor Hostname"] != host)


def api(cloud: Cloud, version: str = "2.79") -> httpx.Client:
    """Raw HTTP as admin, for bodies no client sends."""
    token = cloud.os_json("token", "issue")["id"]
    return httpx.Client(base_url=f"{cloud.url}/compute/v2.1", timeout=30,
                        headers={"X-Auth-Token": token, "OpenStack-API-Version": f"compute {version}"})


def test_cold_migration_then_confirm(cloud, server):
    sid, source = server["id"], server["OS-EXT-SRV-ATTR:host"]
    rps = providers(cloud)
    cloud.openstack("server", "migrate", sid)
    s = settled(cloud, sid, "VERIFY_RESIZE")
    dest = s["OS-EXT-SRV-ATTR:host"]
    assert dest != source
    [mig] = migrations(cloud, sid)
    assert (mig["Type"], mig["Status"], mig["Source Compute"], mig["Dest Compute"]) == (
        "migration", "finished", source, dest)
    assert mig["Old Flavor"] == mig["New Flavor"]
    # the migration holds the source's room, the server the destination's (Nova since Queens)
    assert list(allocations(cloud, mig["UUID"])) == [rps[source]]
    assert list(allocations(cloud, sid)) == [rps[dest]]
    cloud.openstack("server", "migration", "confirm", sid)
    s = settled(cloud, sid, "ACTIVE")
    assert s["OS-EXT-SRV-ATTR:host"] == dest
    assert migrations(cloud, sid)[0]["Status"] == "confirmed"
    assert allocations(cloud, mig["UUID"]) == {}
    assert list(allocations(cloud, sid)) == [rps[dest]]
    events = [a["Action"] for a in cloud.os_json("server", "event", "list", sid)]
    assert events[:2] == ["confirmResize", "migrate"]


def test_cold_migration_to_a_host_then_revert(cloud, server):
    sid, source = server["id"], server["OS-EXT-SRV-ATTR:host"]
    target = other_host(cloud, source)
    cloud.openstack("server", "migrate", "--host", target, sid, *HOSTS_V)
    assert settled(cloud, sid, "VERIFY_RESIZE")["OS-EXT-SRV-ATTR:host"] == target
    cloud.openstack("server", "migration", "revert", sid)
    s = settled(cloud, sid, "ACTIVE")
    assert s["OS-EXT-SRV-ATTR:host"] == source
    mig = migrations(cloud, sid)[0]
    assert (mig["Status"], mig["Dest Compute"]) == ("reverted", target)
    assert allocations(cloud, mig["UUID"]) == {}
    assert list(allocations(cloud, sid)) == [providers(cloud)[source]]
    # the server still works where it is: it is stopped and started on its host
    cloud.openstack("server", "stop", sid)
    settled(cloud, sid, "SHUTOFF")
    cloud.openstack("server", "start", sid)
    settled(cloud, sid, "ACTIVE")


def test_resize_to_another_host(cloud, server):
    sid, source = server["id"], server["OS-EXT-SRV-ATTR:host"]
    cloud.openstack("server", "resize", "--flavor", "m1.micro", sid)
    s = settled(cloud, sid, "VERIFY_RESIZE")
    dest = s["OS-EXT-SRV-ATTR:host"]
    assert dest != source  # (this cloud does not resize in place)
    assert "m1.micro" in json.dumps(s["flavor"])
    mig = migrations(cloud, sid)[0]
    assert (mig["Type"], mig["Status"]) == ("resize", "finished")
    assert mig["Old Flavor"] != mig["New Flavor"]
    ram = {f: cloud.os_json("flavor", "show", f)["ram"] for f in ("m1.nano", "m1.micro")}
    rps = providers(cloud)
    assert allocations(cloud, sid)[rps[dest]]["MEMORY_MB"] == ram["m1.micro"]
    assert allocations(cloud, mig["UUID"])[rps[source]]["MEMORY_MB"] == ram["m1.nano"]
    cloud.openstack("server", "resize", "confirm", sid)
    s = settled(cloud, sid, "ACTIVE")
    assert s["OS-EXT-SRV-ATTR:host"] == dest and "m1.micro" in json.dumps(s["flavor"])
    assert allocations(cloud, mig["UUID"]) == {}


def test_a_stopped_server_moves_and_stays_stopped(cloud, server):
    sid, source = server["id"], server["OS-EXT-SRV-ATTR:host"]
    cloud.openstack("server", "stop", sid)
    settled(cloud, sid, "SHUTOFF")
    cloud.openstack("server", "migrate", sid)
    assert settled(cloud, sid, "VERIFY_RESIZE")["OS-EXT-STS:power_state"] in (4, "Shutdown")
    cloud.openstack("server", "migration", "confirm", sid)
    s = settled(cloud, sid, "SHUTOFF")
    assert s["OS-EXT-SRV-ATTR:host"] != source


def test_delete_while_waiting_for_confirmation_frees_both_hosts(cloud, image):
    name = f"mv-{uuid.uuid4().hex[:6]}"
    sid = cloud.os_json("server", "create", "--flavor", "m1.nano", "--image", image["id"], "--nic", "none",
                        "--wait", name)["id"]
    cloud.openstack("server", "migrate", sid)
    settled(cloud, sid, "VERIFY_RESIZE")
    mig = migrations(cloud, sid)[0]
    cloud.openstack("server", "delete", "--wait", sid)
    assert allocations(cloud, sid) == {}
    assert allocations(cloud, mig["UUID"]) == {}


def test_live_migration(cloud, server):
    sid, source = server["id"], server["OS-EXT-SRV-ATTR:host"]
    target = other_host(cloud, source)
    cloud.openstack("server", "migrate", "--live-migration", "--host", target, sid, *LIVE)
    s = settled(cloud, sid, "ACTIVE")
    assert s["OS-EXT-SRV-ATTR:host"] == target
    mig = migrations(cloud, sid)[0]
    assert (mig["Type"], mig["Status"], mig["Source Compute"], mig["Dest Compute"]) == (
        "live-migration", "completed", source, target)
    assert allocations(cloud, mig["UUID"]) == {}
    assert list(allocations(cloud, sid)) == [providers(cloud)[target]]
    # the scheduler's choice, and a paused server stays paused
    cloud.openstack("server", "pause", sid)
    settled(cloud, sid, "PAUSED")
    cloud.openstack("server", "migrate", "--live-migration", sid)
    s = settled(cloud, sid, "PAUSED")
    assert s["OS-EXT-SRV-ATTR:host"] != target
    # none in progress: a server's migrations list is empty, a finished one is not shown
    conn = cloud.sdk()
    try:
        assert list(conn.compute.server_migrations(sid)) == []
    finally:
        conn.close()
    with api(cloud) as c:
        r = c.get(f"/servers/{sid}/migrations/{mig['Id']}")
        assert r.status_code == 404
        assert "is not in progress" in r.json()["itemNotFound"]["message"]


def test_evacuate_from_a_host_forced_down(cloud, server):
    sid, source = server["id"], server["OS-EXT-SRV-ATTR:host"]
    r = cloud.openstack("server", "evacuate", sid, check=False)
    assert r.returncode != 0 and f"Compute service of {source} is still in use" in r.stderr
    cloud.openstack("compute", "service", "set", "--down", source, "nova-compute",
                    "--os-compute-api-version", "2.11")
    try:
        cloud.openstack("server", "evacuate", sid)
        s = settled(cloud, sid, "ACTIVE")
        dest = s["OS-EXT-SRV-ATTR:host"]
        assert dest != source
        mig = migrations(cloud, sid)[0]
        assert (mig["Type"], mig["Status"], mig["Source Compute"], mig["Dest Compute"]) == (
            "evacuation", "done", source, dest)
        # the dead host keeps its room until it comes back and cleans up, as in Nova
        rps = providers(cloud)
        assert set(allocations(cloud, sid)) == {rps[source], rps[dest]}
        events = [a["Action"] for a in cloud.os_json("server", "event", "list", sid)]
        assert events[0] == "evacuate"
    finally:
        cloud.openstack("compute", "service", "set", "--up", source, "nova-compute",
                        "--os-compute-api-version", "2.11")


def test_no_valid_host_leaves_the_server_where_it_was(cloud, server):
    sid, source = server["id"], server["OS-EXT-SRV-ATTR:host"]
    others = [h["Hypervisor Hostname"] for h in cloud.os_json("hypervisor", "list")
              if h["Hypervisor Hostname"] != source]
    for h in others:
        cloud.openstack("compute", "service", "set", "--disable", h, "nova-compute")
    try:
        cloud.openstack("server", "migrate", sid)
        wait_for(lambda: migrations(cloud, sid)[0]["Status"] == "error", 30, what="the migration to fail")
        s = settled(cloud, sid, "ACTIVE")
        assert s["OS-EXT-SRV-ATTR:host"] == source
        [action] = [a for a in cloud.os_json("server", "event", "list", sid) if a["Action"] == "migrate"]
        detail = cloud.os_json("server", "event", "show", sid, action["Request ID"])
        assert {"conductor_migrate_server": "Error"}.items() <= {
            e["event"]: e["result"] for e in detail["events"]}.items(), detail
        assert list(allocations(cloud, sid)) == [providers(cloud)[source]]
    finally:
        for h in others:
            cloud.openstack("compute", "service", "set", "--enable", h, "nova-compute")


def test_refusals(cloud, server, image):
    sid, host = server["id"], server["OS-EXT-SRV-ATTR:host"]

    def refused(*args: str, user: str = "admin") -> str:
        r = cloud.openstack(*args, user=user, check=False)
        assert r.returncode != 0, args
        return r.stderr

    assert "Cannot migrate to the host where the server exists" in refused(
        "server", "migrate", "--host", host, sid, *HOSTS_V)
    assert "Compute host nowhere could not be found" in refused("server", "migrate", "--host", "nowhere", sid,
                                                                *HOSTS_V)
    assert f"Unable to migrate instance ({sid}) to current host ({host})" in refused(
        "server", "migrate", "--live-migration", "--host", host, sid, *LIVE)
    assert "Compute host nowhere could not be found" in refused(
        "server", "migrate", "--live-migration", "--host", "nowhere", sid, *LIVE)
    assert "Compute host nowhere not found" in refused(
        "server", "evacuate", "--host", "nowhere", sid, "--os-compute-api-version", "2.29")
    assert "The target host can't be the same one" in refused(
        "server", "evacuate", "--host", host, sid, "--os-compute-api-version", "2.29")
    # nothing to confirm or revert; an admin action refused to a member
    assert "while it is in vm_state active" in refused("server", "migration", "confirm", sid)
    assert "while it is in vm_state active" in refused("server", "migration", "revert", sid)
    mine = cloud.os_json("server", "create", "--flavor", "m1.nano", "--image", image["id"], "--nic",
                         "none", "--wait", f"mv-{uuid.uuid4().hex[:6]}", user="demo")["id"]
    try:
        for args, rule in ((("server", "migrate", mine), "os-migrate-server:migrate"),
                           (("server", "migrate", "--live-migration", mine), "os-migrate-server:migrate_live"),
                           (("server", "evacuate", mine), "os-evacuate"),
                           (("server", "migration", "list"), "os-migrations:index")):
            assert f"Policy doesn't allow os_compute_api:{rule} to be performed" in refused(*args, user="demo")
    finally:
        cloud.openstack("server", "delete", "--wait", mine, user="demo")
    with api(cloud) as c:
        for body, why in (({"migrate": {"host": host, "extra": 1}}, "Additional properties are not allowed"),
                          ({"migrate": {"host": ""}}, "Invalid input for field/attribute host"),
                          ({"os-migrateLive": {"host": None}}, "'block_migration' is a required property"),
                          ({"os-migrateLive": {"host": None, "block_migration": "maybe"}}, "maybe"),
                          ({"evacuate": {"onSharedStorage": True}}, "Additional properties are not allowed")):
            r = c.post(f"/servers/{sid}/action", json=body)
            assert r.status_code == 400 and why in r.json()["badRequest"]["message"], (body, r.text)
        r = c.post(f"/servers/{sid}/action", json={"os-migrateLive": {"host": None, "block_migration": "auto",
                                                                      "force": True}},
                   headers={"OpenStack-API-Version": "compute 2.30"})
        assert r.status_code == 400 and "Can't force to a non-provided destination" in r.text
        r = c.post(f"/servers/{uuid.uuid4()}/action", json={"migrate": None})
        assert r.status_code == 404
        r = c.get("/os-migrations", params={"marker": str(uuid.uuid4())})
        assert r.status_code == 400 and "could not be found" in r.text
        r = c.get("/os-migrations", params={"changes-since": "yesterday"})
        assert r.status_code == 400 and "changes-since" in r.text
        r = c.get("/os-migrations", params={"colour": "red"})
        assert r.status_code == 400 and "colour" in r.text
        r = c.get(f"/servers/{sid}/migrations", headers={"OpenStack-API-Version": "compute 2.22"})
        assert r.status_code == 404
        r = c.delete(f"/servers/{sid}/migrations/1")
        assert r.status_code == 409 and "task_state None" in r.text
    assert show(cloud, sid)["status"] == "ACTIVE"  # none of it changed the server


def test_migrations_list_filters_and_pages(cloud, server):
    sid = server["id"]
    for _ in range(2):
        cloud.openstack("server", "migrate", sid)
        settled(cloud, sid, "VERIFY_RESIZE")
        cloud.openstack("server", "migration", "confirm", sid)
        settled(cloud, sid, "ACTIVE")
    mine = migrations(cloud, sid)
    assert [m["Status"] for m in mine] == ["confirmed", "confirmed"]
    assert mine[0]["Id"] > mine[1]["Id"]  # newest first (2.59)
    page = cloud.os_json("server", "migration", "list", "--server", sid, "--limit", "1", *PAGES)
    assert [m["UUID"] for m in page] == [mine[0]["UUID"]]
    after = cloud.os_json("server", "migration", "list", "--server", sid, "--marker", mine[0]["UUID"], *PAGES)
    assert [m["UUID"] for m in after] == [mine[1]["UUID"]]
    host = mine[0]["Dest Compute"]
    by_host = cloud.os_json("server", "migration", "list", "--host", host, *PAGES)
    assert mine[0]["UUID"] in {m["UUID"] for m in by_host}
    assert all(host in (m["Source Compute"], m["Dest Compute"]) for m in by_host)
    typed = cloud.os_json("server", "migration", "list", "--type", "cold-migration", "--status", "confirmed", *PAGES)
    assert {m["UUID"] for m in mine} <= {m["UUID"] for m in typed}
    assert not cloud.os_json("server", "migration", "list", "--server", sid, "--type", "live-migration", *PAGES)
    # each microversion's fields: 2.23 adds the type, 2.59 the uuid (and the newest first)
    with api(cloud, "2.1") as c:
        oldest = c.get("/os-migrations", params={"instance_uuid": sid}).json()["migrations"]
    assert [m["id"] for m in oldest] == sorted(m["Id"] for m in mine)
    assert {"migration_type", "uuid"}.isdisjoint(oldest[0])
    assert oldest[0]["instance_uuid"] == sid and oldest[0]["old_instance_type_id"] == oldest[0]["new_instance_type_id"]
    with api(cloud, "2.23") as c:
        typed_only = c.get("/os-migrations", params={"instance_uuid": sid}).json()["migrations"]
    assert typed_only[0]["migration_type"] == "migration" and "uuid" not in typed_only[0]
