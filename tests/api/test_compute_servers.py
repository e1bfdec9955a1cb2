"""Servers through the real clients, on simulated (fake-driver) compute hosts.

The book's compute lab, the actions, and the refusals, driven by the
`openstack` CLI and openstacksdk against a running onestack. Real guests
(libvirt) are in tests/e2e/test_compute_guests.py.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import openstack
import pytest

from tests.cloud import Cloud, wait_for


def server_status(cloud: Cloud, name: str, **kw) -> dict:
    return cloud.os_json("server", "show", name, **kw)


def wait_status(cloud: Cloud, name: str, status: str, timeout: float = 30, **kw) -> dict:
    seen = {}

    def check():
        seen.update(server_status(cloud, name, **kw))
        if seen["status"] == "ERROR" and status != "ERROR":
            raise AssertionError(f"server {name} went to ERROR: {seen.get('fault')}")
        return seen["status"] == status and not seen.get("OS-EXT-STS:task_state")

    wait_for(check, timeout, what=f"{name} to be {status} (last: {seen.get('status')})")
    return seen


@pytest.fixture(scope="module")
def image(cloud, tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "small.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    name = f"small-{uuid.uuid4().hex[:6]}"
    img = cloud.os_json("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                        "--public", "--file", str(path), name)
    yield img
    cloud.openstack("image", "delete", img["id"], check=False)


@pytest.fixture(scope="module")
def net(cloud):
    name = f"n-{uuid.uuid4().hex[:6]}"
    n = cloud.os_json("network", "create", name)
    cloud.openstack("subnet", "create", "--network", name, "--subnet-range", "192.168.77.0/24", name + "-sn")
    yield n
    for _ in range(20):  # ports of deleted servers go away with them
        if cloud.openstack("network", "delete", n["id"], check=False).returncode == 0:
            break
        time.sleep(0.5)


def test_boot_lab_flow(cloud, image):
    """keypair, security group rule, server create/list/show, console log, delete: the book's lab, as demo."""
    demo = {"user": "demo"}
    key = f"k-{uuid.uuid4().hex[:6]}"
    private = cloud.openstack("keypair", "create", key, **demo).stdout
    assert "PRIVATE KEY" in private
    cloud.openstack("security", "group", "rule", "create", "--proto", "tcp", "--dst-port", "22", "default",
                    **demo)
    netname = f"lab-{uuid.uuid4().hex[:6]}"
    net = cloud.os_json("network", "create", netname, **demo)
    cloud.openstack("subnet", "create", "--network", netname, "--subnet-range", "192.12.10.0/24",
                    "--dns-nameserver", "8.8.8.8", netname + "-sn", **demo)
    name = f"vm-{uuid.uuid4().hex[:6]}"
    created = cloud.os_json("server", "create", "--flavor", "m1.nano", "--image", image["id"], "--nic",
                            f"net-id={net['id']}", "--security-group", "default", "--key-name", key,
                            "--property", "role=web", name, **demo)
    assert created["status"] == "BUILD"
    s = wait_status(cloud, name, "ACTIVE", **demo)
    assert s["key_name"] == key
    assert s["hostId"]
    assert "OS-EXT-SRV-ATTR:host" not in s or not s["OS-EXT-SRV-ATTR:host"]  # admin-only
    assert s["properties"] == {"role": "web"}
    addrs = s["addresses"]
    assert netname in addrs and addrs[netname][0].startswith("192.12.10.")
    ports = cloud.os_json("port", "list", "--server", s["id"], **demo)
    assert len(ports) == 1 and ports[0]["MAC Address"]
    port = cloud.os_json("port", "show", ports[0]["ID"])
    assert port["device_owner"].startswith("compute:")
    assert port["binding_host_id"] == cloud.os_json("server", "show", s["id"])["OS-EXT-SRV-ATTR:host"]
    listed = cloud.os_json("server", "list", "--name", name, **demo)
    assert [x["Name"] for x in listed] == [name]
    log = cloud.openstack("console", "log", "show", name, **demo).stdout
    assert log.strip()
    actions = cloud.os_json("server", "event", "list", name, **demo)
    assert [a["Action"] for a in actions] == ["create"]
    cloud.openstack("server", "delete", "--wait", name, **demo)
    assert cloud.os_json("port", "list", "--device-id", s["id"], **demo) == []
    cloud.openstack("keypair", "delete", key, **demo)
    cloud.openstack("network", "delete", netname, **demo)


def test_actions(cloud, image, net):
    name = f"act-{uuid.uuid4().hex[:6]}"
    cloud.openstack("server", "create", "--flavor", "m1.nano", "--image", image["id"], "--nic",
                    f"net-id={net['id']}", "--wait", name)
    try:
        cloud.openstack("server", "stop", name)
        wait_status(cloud, name, "SHUTOFF")
        cloud.openstack("server", "start", name)
        wait_status(cloud, name, "ACTIVE")
        cloud.openstack("server", "reboot", "--hard", name)
        wait_status(cloud, name, "ACTIVE")
        cloud.openstack("server", "reboot", name)
        wait_status(cloud, name, "ACTIVE")
        cloud.openstack("server", "pause", name)
        wait_status(cloud, name, "PAUSED")
        cloud.openstack("server", "unpause", name)
        wait_status(cloud, name, "ACTIVE")
        cloud.openstack("server", "suspend", name)
        wait_status(cloud, name, "SUSPENDED")
        cloud.openstack("server", "resume", name)
        wait_status(cloud, name, "ACTIVE")
        cloud.openstack("server", "rescue", name)
        wait_status(cloud, name, "RESCUE")
        cloud.openstack("server", "unrescue", name)
        wait_status(cloud, name, "ACTIVE")
        # resize: VERIFY_RESIZE, then confirm; again, then revert
        cloud.openstack("server", "resize", "--flavor", "m1.micro", name)
        s = wait_status(cloud, name, "VERIFY_RESIZE")
        assert s["flavor"]["name"] == "m1.micro" if isinstance(s["flavor"], dict) else "m1.micro" in s["flavor"]
        cloud.openstack("server", "resize", "confirm", name)
        wait_status(cloud, name, "ACTIVE")
        cloud.openstack("server", "resize", "--flavor", "m1.tiny", name)
        wait_status(cloud, name, "VERIFY_RESIZE")
        cloud.openstack("server", "resize", "revert", name)
        s = wait_status(cloud, name, "ACTIVE")
        assert "m1.micro" in json.dumps(s["flavor"])
        cloud.openstack("server", "rebuild", "--image", image["id"], name)
        wait_status(cloud, name, "ACTIVE")
        # lock: the owner (a member of another project here: admin's server) is refused
        cloud.openstack("server", "lock", "--reason", "maintenance", name)
        s = server_status(cloud, name)
        assert s["locked"] in (True, "True")
        cloud.openstack("server", "unlock", name)
        events = [a["Action"] for a in cloud.os_json("server", "event", "list", name)]
        for a in ("create", "stop", "start", "reboot", "pause", "resize", "confirmResize", "rebuild", "lock"):
            assert a in events, (a, events)
    finally:
        cloud.openstack("server", "delete", "--wait", name)


def test_snapshot_boot_and_shelve(cloud, image, net):
    name = f"snap-{uuid.uuid4().hex[:6]}"
    cloud.openstack("server", "create", "--flavor", "m1.nano", "--image", image["id"], "--nic",
                    f"net-id={net['id']}", "--wait", name)
    snap = f"{name}-img"
    try:
        cloud.openstack("server", "image", "create", "--name", snap, "--wait", name)
        img = cloud.os_json("image", "show", snap)
        assert img["status"] == "active"
        assert img["properties"]["image_type"] == "snapshot"
        assert img["properties"]["instance_uuid"] == server_status(cloud, name)["id"]
        cloud.openstack("server", "create", "--flavor", "m1.nano", "--image", snap, "--nic",
                        f"net-id={net['id']}", "--wait", name + "-2")
        cloud.openstack("server", "delete", "--wait", name + "-2")
        cloud.openstack("server", "shelve", name)
        wait_status(cloud, name, "SHELVED_OFFLOADED")
        assert not server_status(cloud, name)["OS-EXT-SRV-ATTR:host"]
        cloud.openstack("server", "unshelve", name)
        wait_status(cloud, name, "ACTIVE")
    finally:
        cloud.openstack("server", "delete", "--wait", name, check=False)
        cloud.openstack("image", "delete", snap, check=False)


def test_snapshot_inherits_min_ram_and_min_disk(cloud, net, tmp_path):
    """A snapshot keeps its base image's min_ram and min_disk (the disk at least the flavor's
    root disk), as Nova's does: Tempest's test_create_delete_image with such an image."""
    path = tmp_path / "min.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    name = f"min-{uuid.uuid4().hex[:6]}"
    base = cloud.os_json("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                         "--min-ram", "64", "--min-disk", "1", "--file", str(path), name)
    try:
        # root disk 0 (the image's size decides): min_disk comes from the image alone
        cloud.openstack("flavor", "create", "--ram", "128", "--disk", "0", "--vcpus", "1", name)
        cloud.openstack("server", "create", "--flavor", name, "--image", base["id"], "--nic",
                        f"net-id={net['id']}", "--wait", name)
        cloud.openstack("server", "stop", name)
        wait_status(cloud, name, "SHUTOFF")
        snap = cloud.os_json("server", "image", "create", "--name", f"{name}-snap", "--wait", name)
        img = cloud.os_json("image", "show", snap["id"])
        assert (img["min_ram"], img["min_disk"]) == (64, 1), img
    finally:
        cloud.openstack("server", "delete", "--wait", name, check=False)
        cloud.openstack("image", "delete", f"{name}-snap", check=False)
        cloud.openstack("image", "delete", base["id"], check=False)
        cloud.openstack("flavor", "delete", name, check=False)


def test_refusals(cloud, image, net, tmp_path):
    r = cloud.openstack("server", "create", "--flavor", "no-such-flavor", "--image", image["id"],
                        "--network", net["id"], "x", check=False)
    assert r.returncode != 0
    bad = cloud.openstack("server", "create", "--flavor", "m1.nano", "--image", str(uuid.uuid4()),
                          "--network", net["id"], "x", check=False)
    assert bad.returncode != 0
    conn = openstack.connect(**_sdk_args(cloud))
    with pytest.raises(openstack.exceptions.BadRequestException, match="Image .* could not be found"):
        conn.compute.create_server(name="x", flavor_id="42", image_id=str(uuid.uuid4()),
                                   networks=[{"uuid": net["id"]}])
    with pytest.raises(openstack.exceptions.BadRequestException, match="Network .* could not be found"):
        conn.compute.create_server(name="x", flavor_id="42", image_id=image["id"],
                                   networks=[{"uuid": str(uuid.uuid4())}])
    # an image needing more memory than the flavor has
    path = tmp_path / "big.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "2G"], check=True)
    big = cloud.os_json("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                        "--min-ram", "4096", "--file", str(path), f"big-{uuid.uuid4().hex[:6]}")
    try:
        r = cloud.openstack("server", "create", "--flavor", "m1.nano", "--image", big["id"],
                            "--network", net["id"], "x", check=False)
        assert r.returncode != 0 and "Flavor's memory is too small" in r.stderr
        cloud.openstack("image", "set", "--min-ram", "0", big["id"])
        r = cloud.openstack("server", "create", "--flavor", "m1.nano", "--image", big["id"],
                            "--network", net["id"], "x", check=False)
        assert r.returncode != 0 and "Flavor's disk is too small" in r.stderr
    finally:
        cloud.openstack("image", "delete", big["id"])
    with pytest.raises(openstack.exceptions.NotFoundException):
        conn.compute.get_server(str(uuid.uuid4()))
    assert not [s for s in conn.compute.servers() if s.name == "x"]


def test_other_projects_cannot_see(cloud, image, net):
    name = f"priv-{uuid.uuid4().hex[:6]}"
    with cloud.new_member("cmp") as env:
        mine = cloud.os_json("server", "create", "--flavor", "m1.nano", "--image", image["id"],
                             "--nic", "none", "--os-compute-api-version", "2.37", "--wait", name, env=env)
        try:
            with cloud.new_member("cmp2") as other:
                r = cloud.openstack("server", "show", mine["id"], env=other, check=False)
                assert r.returncode != 0 and "No Server found" in r.stderr
                r = cloud.openstack("server", "delete", mine["id"], env=other, check=False)
                assert r.returncode != 0
                assert cloud.os_json("server", "list", env=other) == []
            # admin sees it with --all-projects
            assert any(s["ID"] == mine["id"] for s in cloud.os_json("server", "list", "--all-projects"))
            # a lock set by the admin keeps the owner out
            cloud.openstack("server", "lock", mine["id"])
            r = cloud.openstack("server", "stop", mine["id"], env=env, check=False)
            assert r.returncode != 0 and "locked" in r.stderr
            cloud.openstack("server", "unlock", mine["id"])
        finally:
            cloud.openstack("server", "delete", "--wait", mine["id"], env=env, check=False)


def _sdk_args(cloud: Cloud, user: str = "admin") -> dict:
    rc = cloud.openrc(user)
    return {"auth_url": rc["OS_AUTH_URL"], "username": rc["OS_USERNAME"], "password": rc["OS_PASSWORD"],
            "project_name": rc["OS_PROJECT_NAME"], "user_domain_name": "Default",
            "project_domain_name": "Default"}


def test_sdk_metadata_tags_and_filters(cloud, image, net):
    conn = openstack.connect(**_sdk_args(cloud))
    name = f"sdk-{uuid.uuid4().hex[:6]}"
    s = conn.compute.create_server(name=name, flavor_id="42", image_id=image["id"],
                                   networks=[{"uuid": net["id"]}], metadata={"a": "1"})
    s = conn.compute.wait_for_server(s, status="ACTIVE", wait=30, interval=0.2)
    try:
        conn.compute.set_server_metadata(s, b="2")
        assert conn.compute.get_server_metadata(s).metadata == {"a": "1", "b": "2"}
        conn.compute.delete_server_metadata(s, ["a"])
        assert conn.compute.get_server_metadata(s).metadata == {"b": "2"}
        conn.compute.update_server(s, name=name + "-x")
        assert conn.compute.get_server(s.id).name == name + "-x"
        cloud.openstack("server", "set", "--tag", "blue", s.id)
        assert "blue" in cloud.os_json("server", "show", s.id)["tags"]
        found = list(conn.compute.servers(name=name + "-x", status="ACTIVE"))
        assert [x.id for x in found] == [s.id]
        assert list(conn.compute.servers(status="SHUTOFF", name=name)) == []
        found = list(conn.compute.servers(image=image["id"], flavor="42", name=name))
        assert [x.id for x in found] == [s.id]
    finally:
        conn.compute.delete_server(s)
        conn.compute.wait_for_delete(s, wait=30, interval=0.2)


def test_multiple_create_and_quota(cloud, image, net):
    conn = openstack.connect(**_sdk_args(cloud))
    with cloud.new_member("q") as env:
        project = env["OS_PROJECT_NAME"]
        cloud.openstack("quota", "set", "--instances", "2", project)
        r = cloud.openstack("server", "create", "--flavor", "m1.nano", "--image", image["id"], "--nic",
                            "none", "--os-compute-api-version", "2.37", "--min", "3", "--max", "3", "many",
                            env=env, check=False)
        assert r.returncode != 0 and "Quota exceeded for instances" in r.stderr
        cloud.openstack("server", "create", "--flavor", "m1.nano", "--image", image["id"], "--nic",
                        "none", "--os-compute-api-version", "2.37", "--min", "1", "--max", "2", "--wait",
                        "many", env=env)
        names = sorted(s["Name"] for s in cloud.os_json("server", "list", env=env))
        assert names == ["many-1", "many-2"]
        for n in names:
            cloud.openstack("server", "delete", "--wait", n, env=env)
    del conn


def test_pages_sorted_with_markers(cloud, image):
    """Pages are cut in SQL: openstacksdk walks them by their next links (here with a sort key
    and a regular-expression name filter); a deleted server still marks a place, as in Nova;
    a marker that names no server is a 400."""
    conn = openstack.connect(**_sdk_args(cloud))
    name = f"page-{uuid.uuid4().hex[:6]}"
    cloud.openstack("server", "create", "--flavor", "m1.nano", "--image", image["id"], "--nic", "none",
                    "--os-compute-api-version", "2.37", "--min", "5", "--max", "5", "--wait", name)
    mine = list(conn.compute.servers(name=f"^{name}-", sort_key="display_name", sort_dir="asc", limit=2))
    try:
        assert [s.name for s in mine] == [f"{name}-{i}" for i in range(1, 6)]
        conn.compute.delete_server(mine[1])
        conn.compute.wait_for_delete(mine[1], wait=30, interval=0.2)
        after = conn.compute.servers(name=f"^{name}-", sort_key="display_name", sort_dir="asc", limit=2,
                                     marker=mine[1].id)
        assert [s.name for s in after] == [f"{name}-{i}" for i in range(3, 6)]
        missing = str(uuid.uuid4())  # (the CLI looks a marker up itself first: the SDK sends it as it is)
        with pytest.raises(openstack.exceptions.BadRequestException, match=rf"marker \[{missing}\] not found"):
            list(conn.compute.servers(limit=2, marker=missing))
    finally:
        for s in mine:
            cloud.openstack("server", "delete", "--wait", s.id, check=False)
