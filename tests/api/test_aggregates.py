"""Host aggregates and availability zones on three compute hosts (this one and two
simulated), driven with the openstack CLI: aggregate CRUD, hosts and properties,
zones in `availability zone list` and `compute service list`, servers kept in
their zone (and forced hosts), flavor extra specs matched against aggregate
metadata, and the refusals (404, 409, 400, 403)."""

from __future__ import annotations

import subprocess

import pytest

from tests.cloud import Cloud, wait_for


@pytest.fixture(scope="module")
def cloud():
    c = Cloud("aggr", extra_env={"ONESTACK_COMPUTE_FAKE_HOSTS": "2"})
    try:
        c.start()
        wait_for(lambda: len(_up_hosts(c)) >= 3, 60, "three compute hosts up")
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def image(cloud, tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "a.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "16M"], check=True)
    return cloud.os_json("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                         "--public", "--file", str(path), "aggr")["id"]


def _up_hosts(cloud: Cloud) -> list[str]:
    rows = cloud.os_json("compute", "service", "list", "--service", "nova-compute")
    return [r["Host"] for r in rows if r["State"] == "up" and r["Status"] == "enabled"]


def _fails(cloud: Cloud, *args: str, user: str = "admin", env: dict | None = None) -> str:
    r = cloud.openstack(*args, user=user, env=env, check=False)
    assert r.returncode != 0, f"openstack {' '.join(args)} succeeded: {r.stdout}"
    return r.stderr


def _zones(cloud: Cloud, user: str = "admin") -> dict[str, str]:
    rows = cloud.os_json("availability", "zone", "list", "--compute", user=user)
    return {r["Zone Name"]: r["Zone Status"] for r in rows if r["Zone Name"] != "internal"}


def _service_zones(cloud: Cloud) -> dict[str, str]:
    rows = cloud.os_json("compute", "service", "list", "--service", "nova-compute")
    return {r["Host"]: r["Zone"] for r in rows}


def _server(cloud: Cloud, name: str) -> dict:
    return wait_for(lambda: (s := cloud.os_json("server", "show", name))["status"] in ("ACTIVE", "ERROR") and s,
                    60, f"server {name} settled")


def _delete_servers(cloud: Cloud, *names: str) -> None:
    cloud.openstack("server", "delete", "--wait", *names)


def test_aggregate_crud_hosts_and_properties(cloud):
    agg = cloud.os_json("aggregate", "create", "--zone", "az1", "agg1")
    assert agg["name"] == "agg1" and agg["availability_zone"] == "az1"
    assert "409" in _fails(cloud, "aggregate", "create", "agg1")

    shown = cloud.os_json("aggregate", "add", "host", "agg1", "fake-1")
    assert shown["hosts"] == ["fake-1"] and shown["availability_zone"] == "az1"
    err = _fails(cloud, "aggregate", "add", "host", "agg1", "no-such-host")
    assert "404" in err and "no-such-host" in err
    assert "409" in _fails(cloud, "aggregate", "add", "host", "agg1", "fake-1")

    cloud.openstack("aggregate", "set", "--property", "ssd=true", "--property", "rack=r1", "agg1")
    shown = cloud.os_json("aggregate", "show", "agg1")
    assert shown["properties"] == {"ssd": "true", "rack": "r1"}
    assert shown["availability_zone"] == "az1" and shown["hosts"] == ["fake-1"]
    cloud.openstack("aggregate", "unset", "--property", "rack", "agg1")
    assert cloud.os_json("aggregate", "show", "agg1")["properties"] == {"ssd": "true"}
    listed = {a["Name"]: a for a in cloud.os_json("aggregate", "list", "--long")}
    assert listed["agg1"]["Availability Zone"] == "az1" and listed["agg1"]["Hosts"] == ["fake-1"]

    # the host's zone is the aggregate's, everywhere a zone shows
    assert _service_zones(cloud)["fake-1"] == "az1"
    assert {"az1", "nova"} <= set(_zones(cloud))

    # one zone per host: another zone's aggregate cannot take it
    cloud.openstack("aggregate", "create", "--zone", "az2", "agg2")
    err = _fails(cloud, "aggregate", "add", "host", "agg2", "fake-1")
    assert "409" in err and "az1" in err
    # ... nor can this aggregate move into a zone its hosts have elsewhere
    cloud.openstack("aggregate", "add", "host", "agg2", "fake-2")
    cloud.openstack("aggregate", "create", "agg3")
    cloud.openstack("aggregate", "add", "host", "agg3", "fake-1")
    cloud.openstack("aggregate", "add", "host", "agg3", "fake-2")
    assert "400" in _fails(cloud, "aggregate", "set", "--zone", "az1", "agg3")

    # renaming a zone without servers in it is fine
    cloud.openstack("aggregate", "set", "--zone", "az1b", "--name", "agg1b", "agg1")
    shown = cloud.os_json("aggregate", "show", "agg1b")
    assert shown["availability_zone"] == "az1b"
    assert _service_zones(cloud)["fake-1"] == "az1b"

    # an aggregate with hosts stays; a host not in it cannot leave it
    assert "400" in _fails(cloud, "aggregate", "delete", "agg1b")
    assert "404" in _fails(cloud, "aggregate", "remove", "host", "agg1b", "fake-2")
    for name, hosts in (("agg1b", ["fake-1"]), ("agg2", ["fake-2"]), ("agg3", ["fake-1", "fake-2"])):
        for host in hosts:
            cloud.openstack("aggregate", "remove", "host", name, host)
        cloud.openstack("aggregate", "delete", name)
    assert cloud.os_json("aggregate", "list") == []
    assert "No Aggregate found" in _fails(cloud, "aggregate", "show", "agg1b")
    assert _service_zones(cloud)["fake-1"] == "nova"
    assert set(_zones(cloud)) == {"nova"}


def test_servers_land_in_their_zone(cloud, image):
    cloud.openstack("aggregate", "create", "--zone", "east", "east")
    cloud.openstack("aggregate", "add", "host", "east", "fake-2")
    try:
        cloud.openstack("server", "create", "--flavor", "m1.nano", "--image", image, "--nic", "none",
                        "--availability-zone", "east", "--min", "2", "--max", "2", "inz")
        for name in ("inz-1", "inz-2"):
            s = _server(cloud, name)
            assert s["status"] == "ACTIVE"
            assert s["OS-EXT-SRV-ATTR:host"] == "fake-2"
            assert s["OS-EXT-AZ:availability_zone"] == "east"

        # a server that asks for no zone takes its host's
        cloud.openstack("server", "create", "--flavor", "m1.nano", "--image", image, "--nic", "none", "anyz")
        s = _server(cloud, "anyz")
        assert s["OS-EXT-AZ:availability_zone"] == ("east" if s["OS-EXT-SRV-ATTR:host"] == "fake-2" else "nova")

        # an admin forces a host with ZONE:HOST
        cloud.openstack("server", "create", "--flavor", "m1.nano", "--image", image, "--nic", "none",
                        "--availability-zone", "nova:fake-1", "forced")
        s = _server(cloud, "forced")
        assert s["OS-EXT-SRV-ATTR:host"] == "fake-1" and s["OS-EXT-AZ:availability_zone"] == "nova"

        err = _fails(cloud, "server", "create", "--flavor", "m1.nano", "--image", image, "--nic", "none",
                     "--availability-zone", "atlantis", "lost")
        assert "400" in err and "availability zone" in err
        assert cloud.os_json("server", "list", "--name", "lost") == []

        # a host with servers keeps its zone: it cannot leave, nor the zone be renamed
        err = _fails(cloud, "aggregate", "remove", "host", "east", "fake-2")
        assert "409" in err and "instance" in err
        assert "400" in _fails(cloud, "aggregate", "set", "--zone", "west", "east")
        with cloud.new_member("azuser") as member:
            err = _fails(cloud, "server", "create", "--flavor", "m1.nano", "--image", image, "--nic", "none",
                         "--availability-zone", "nova:fake-1", "sneaky", env=member)
            assert "403" in err
        _delete_servers(cloud, "inz-1", "inz-2", "anyz", "forced")
        cloud.openstack("aggregate", "remove", "host", "east", "fake-2")
    finally:
        cloud.openstack("server", "delete", "--wait", "inz-1", "inz-2", "anyz", "forced", check=False)
        cloud.openstack("aggregate", "remove", "host", "east", "fake-2", check=False)
        cloud.openstack("aggregate", "delete", "east", check=False)


def test_flavor_extra_specs_match_aggregate_metadata(cloud, image):
    cloud.openstack("aggregate", "create", "fast")
    cloud.openstack("aggregate", "add", "host", "fast", "fake-1")
    cloud.openstack("aggregate", "set", "--property", "disk=ssd", "--property", "tier=3", "fast")
    cloud.openstack("flavor", "create", "--ram", "128", "--disk", "1", "--vcpus", "1",
                    "--property", "aggregate_instance_extra_specs:disk=ssd",
                    "--property", "aggregate_instance_extra_specs:tier=>= 2", "ssd.nano")
    cloud.openstack("flavor", "create", "--ram", "128", "--disk", "1", "--vcpus", "1",
                    "--property", "aggregate_instance_extra_specs:disk=nvme", "nvme.nano")
    try:
        cloud.openstack("server", "create", "--flavor", "ssd.nano", "--image", image, "--nic", "none",
                        "--min", "2", "--max", "2", "onssd")
        for name in ("onssd-1", "onssd-2"):
            assert _server(cloud, name)["OS-EXT-SRV-ATTR:host"] == "fake-1"
        cloud.openstack("server", "create", "--flavor", "nvme.nano", "--image", image, "--nic", "none", "nowhere")
        s = _server(cloud, "nowhere")
        assert s["status"] == "ERROR" and "No valid host" in s["fault"]["message"]
    finally:
        cloud.openstack("server", "delete", "--wait", "onssd-1", "onssd-2", "nowhere", check=False)
        cloud.openstack("flavor", "delete", "ssd.nano", "nvme.nano", check=False)
        cloud.openstack("aggregate", "remove", "host", "fast", "fake-1", check=False)
        cloud.openstack("aggregate", "delete", "fast", check=False)


def test_members_are_refused_and_see_zones(cloud):
    cloud.openstack("aggregate", "create", "--zone", "south", "admins-only")
    try:
        with cloud.new_member("agguser") as member:
            for args in (("aggregate", "list"), ("aggregate", "create", "mine"),
                         ("aggregate", "show", "admins-only"), ("aggregate", "delete", "admins-only")):
                assert "403" in _fails(cloud, *args, env=member), args
            # the zone list is for everyone (without hosts)
            rows = cloud.os_json("availability", "zone", "list", "--compute", env=member)
            assert {r["Zone Name"] for r in rows} == {"nova"}
        assert [a["Name"] for a in cloud.os_json("aggregate", "list")] == ["admins-only"]
    finally:
        cloud.openstack("aggregate", "delete", "admins-only", check=False)


def test_wire_format_and_bad_input(cloud):
    """What the CLI cannot send or does not show: 2.41's uuid, metadata nulls, bad bodies."""
    conn = cloud.sdk()
    try:
        compute = conn.compute
        r = compute.post("/os-aggregates", json={"aggregate": {"name": "wire", "availability_zone": "wz"}},
                         microversion="2.1")
        assert r.status_code == 200, r.text
        agg = r.json()["aggregate"]
        assert "uuid" not in agg and "hosts" not in agg and agg["deleted"] is False
        agg_id = agg["id"]
        shown = compute.get(f"/os-aggregates/{agg_id}", microversion="2.41").json()["aggregate"]
        assert len(shown["uuid"]) == 36 and shown["metadata"] == {"availability_zone": "wz"}

        def act(body, status, version="2.41"):
            r = compute.post(f"/os-aggregates/{agg_id}/action", json=body, microversion=version)
            assert r.status_code == status, r.text
            return r.json()

        meta = act({"set_metadata": {"metadata": {"a": "1", "b": "2"}}}, 200)["aggregate"]["metadata"]
        assert meta == {"availability_zone": "wz", "a": "1", "b": "2"}
        meta = act({"set_metadata": {"metadata": {"a": None, "zz": None}}}, 200)["aggregate"]["metadata"]
        assert meta == {"availability_zone": "wz", "b": "2"}
        # Nova has no zone-less update of a zone, and a zone name cannot hold ':'
        assert "empty" in act({"set_metadata": {"metadata": {"availability_zone": None}}}, 400)[
            "badRequest"]["message"]
        assert compute.put(f"/os-aggregates/{agg_id}", json={"aggregate": {"availability_zone": "a:b"}},
                           microversion="2.41").status_code == 400
        act({"set_metadata": {"metadata": {"bad/key": "x"}}}, 400)
        act({"add_host": {"host": "fake-1"}, "remove_host": {"host": "fake-1"}}, 400)
        act({"frobnicate": {}}, 400)
        act({"add_host": {}}, 400)
        assert compute.put(f"/os-aggregates/{agg_id}", json={"aggregate": {}},
                           microversion="2.41").status_code == 400
        assert compute.post("/os-aggregates", json={"aggregate": {"name": " padded"}},
                            microversion="2.41").status_code == 400
        assert compute.post("/os-aggregates", json={"aggregate": {"name": "x" * 256}},
                            microversion="2.41").status_code == 400
        r = compute.get("/os-aggregates/not-a-number")
        assert r.status_code == 400 and "badRequest" in r.json()
        for bad in ("-1", "99999999999999999999"):
            assert compute.get(f"/os-aggregates/{bad}").status_code == 404
        assert compute.delete(f"/os-aggregates/{agg_id}").status_code == 200
        assert compute.delete(f"/os-aggregates/{agg_id}").status_code == 404
        # the admin's detailed zone list shows each host's services
        info = compute.get("/os-availability-zone/detail").json()["availabilityZoneInfo"]
        nova = next(z for z in info if z["zoneName"] == "nova")
        assert {"fake-1", "fake-2"} <= set(nova["hosts"])
    finally:
        conn.close()
