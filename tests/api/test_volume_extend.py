"""Online extend of an attached volume, and the compute API's os-server-external-events.

`openstack --os-volume-api-version 3.42 volume set --size N` on an in-use volume:
the volume agent grows the file, then (as Cinder does) posts a ``volume-extended``
event to the compute API with its service user; compute records an ``extend_volume``
instance action and its agent resizes the guest's disk (``compute_extend_volume``
event; on the fake driver the size is recorded, a real guest sees it in
tests/e2e/test_volume_extend_guest.py). The events API itself is driven with
openstacksdk: bad bodies, unknown servers, microversions and policy. Concurrent
attaches and detaches on one server keep every block device mapping (the agent's
mapping changes are single transactions in the conductor).
"""

from __future__ import annotations

import subprocess
import threading
import uuid

import openstack
import pytest

from tests.api.test_volume_lab import name, volume, wait_for, wait_volume
from tests.cloud import Cloud

EVENTS = "/os-server-external-events"


def sdk(cloud: Cloud, user: str = "admin") -> openstack.connection.Connection:
    rc = cloud.openrc(user)
    return openstack.connect(auth_url=rc["OS_AUTH_URL"], username=rc["OS_USERNAME"], password=rc["OS_PASSWORD"],
                             project_name=rc["OS_PROJECT_NAME"], user_domain_name="Default",
                             project_domain_name="Default")


@pytest.fixture(scope="module")
def conn(cloud):
    c = sdk(cloud)
    yield c
    c.close()


@pytest.fixture(scope="module")
def server(cloud, tmp_path_factory):
    path = tmp_path_factory.mktemp("ext") / "boot.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    image_id = cloud.os_json("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                             "--file", str(path), name("ext"))["id"]
    sid = cloud.os_json("server", "create", "--flavor", "m1.nano", "--image", image_id, "--nic", "none",
                        "--os-compute-api-version", "2.37", name("ext"))["id"]
    shown = wait_for(lambda: (lambda s: s if s["status"] in ("ACTIVE", "ERROR") else None)(
        cloud.os_json("server", "show", sid)), 60, what="server built")
    assert shown["status"] == "ACTIVE", shown.get("fault")
    yield sid
    cloud.openstack("server", "delete", "--wait", sid, check=False)
    cloud.openstack("image", "delete", image_id, check=False)


def post_events(conn, events, version: str = "2.51", body=None):
    return conn.compute.post(EVENTS, json={"events": events} if body is None else body, microversion=version,
                             raise_exc=False)


def extend_events(cloud: Cloud, server: str) -> list[dict]:
    """The compute_extend_volume events of the server's extend_volume actions."""
    out = []
    for a in cloud.os_json("server", "event", "list", server):
        if a["Action"] == "extend_volume":
            shown = cloud.os_json("server", "event", "show", server, a["Request ID"])
            out += [e for e in shown.get("events") or [] if e["event"] == "compute_extend_volume"]
    return out


def test_online_extend_reaches_the_server(cloud, server):
    vid = cloud.os_json("volume", "create", "--size", "1", name("grow"))["id"]
    try:
        wait_volume(cloud, vid, "available")
        # not attached: an offline extend tells no server
        cloud.openstack("volume", "set", "--size", "2", vid)
        wait_volume(cloud, vid, "available")
        assert volume(cloud, vid)["size"] == 2

        cloud.openstack("server", "add", "volume", server, vid)
        wait_volume(cloud, vid, "in-use")
        cloud.openstack("--os-volume-api-version", "3.42", "volume", "set", "--size", "3", vid)
        v = wait_volume(cloud, vid, "in-use")
        assert v["size"] == 3
        assert (cloud.state / "volumes" / f"volume-{vid}").stat().st_size == 3 * 1024**3
        events = wait_for(lambda: [e for e in extend_events(cloud, server) if e.get("finish_time")], 30,
                          what="compute_extend_volume finished")
        assert [e["result"] for e in events] == ["Success"], events
        assert [a["Action"] for a in cloud.os_json("server", "event", "list", server)].count("extend_volume") == 1
        # still attached as before
        assert [x["Volume ID"] for x in cloud.os_json("server", "volume", "list", server)] == [vid]
    finally:
        cloud.openstack("server", "remove", "volume", server, vid, check=False)
        wait_volume(cloud, vid, "available")
        cloud.openstack("volume", "delete", vid, check=False)


def test_external_events_contract(cloud, conn, server):
    # accepted: every event known -> 200 with code and status per event
    r = post_events(conn, [{"name": "network-changed", "server_uuid": server, "tag": "foo"},
                           {"name": "network-vif-plugged", "server_uuid": server, "status": "in-progress"}])
    assert r.status_code == 200, r.text
    assert r.json() == {"events": [
        {"name": "network-changed", "server_uuid": server, "tag": "foo", "status": "completed", "code": 200},
        {"name": "network-vif-plugged", "server_uuid": server, "status": "completed", "code": 200}]}

    # an unknown server: 207, that event failed with 404 (the others still go)
    ghost = str(uuid.uuid4())
    r = post_events(conn, [{"name": "network-vif-deleted", "server_uuid": ghost},
                           {"name": "network-vif-unplugged", "server_uuid": server}])
    assert r.status_code == 207, r.text
    assert [(e["code"], e["status"]) for e in r.json()["events"]] == [(404, "failed"), (200, "completed")]
    r = post_events(conn, [{"name": "network-changed", "server_uuid": ghost}])
    assert r.status_code == 207 and r.json()["events"][0]["code"] == 404

    # volume-extended needs its tag (the volume id): that event fails with 400
    r = post_events(conn, [{"name": "volume-extended", "server_uuid": server}])
    assert r.status_code == 207 and r.json()["events"][0]["code"] == 400
    # a volume not attached to the server: accepted; the compute event records the error
    missing = str(uuid.uuid4())
    r = post_events(conn, [{"name": "volume-extended", "server_uuid": server, "tag": missing}])
    assert r.status_code == 200 and r.json()["events"][0]["code"] == 200
    wait_for(lambda: [e for e in extend_events(cloud, server) if e.get("result") == "Error"], 30,
             what="the failed compute_extend_volume event")

    # power-update from 2.76 (ignored: the agent's reconcile reads libvirt's power state)
    r = post_events(conn, [{"name": "power-update", "server_uuid": server, "tag": "POWER_ON"}], "2.76")
    assert r.status_code == 200 and r.json()["events"][0]["code"] == 200
    assert conn.compute.get_server(server).status == "ACTIVE"

    # bad bodies: 400 in Nova's words
    bad = [
        ({"name": "volume-extended", "server_uuid": server, "tag": missing}, "2.50", "is not one of"),
        ({"name": "power-update", "server_uuid": server, "tag": "POWER_ON"}, "2.75", "is not one of"),
        ({"name": "volume-reimaged", "server_uuid": server, "tag": missing}, "2.79", "is not one of"),
        ({"name": "bogus", "server_uuid": server}, "2.51", "Invalid input for field/attribute name"),
        ({"name": "network-changed", "server_uuid": "not-a-uuid"}, "2.51", "is not a 'uuid'"),
        ({"name": "network-changed"}, "2.51", "'server_uuid' is a required property"),
        ({"name": "network-changed", "server_uuid": server, "status": "done"}, "2.51", "is not one of"),
        ({"name": "network-changed", "server_uuid": server, "tag": "x" * 256}, "2.51", "is too long"),
        ({"name": "network-changed", "server_uuid": server, "extra": 1}, "2.51", "Additional properties"),
    ]
    for event, version, words in bad:
        r = post_events(conn, [event], version)
        assert r.status_code == 400, (event, r.text)
        assert words in r.json()["badRequest"]["message"], (event, r.text)
    for body in ({}, {"events": []}, {"events": "x"}, {"events": [], "more": 1}, [1]):
        r = post_events(conn, None, body=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["badRequest"]["code"] == 400
    r = conn.compute.post(EVENTS, data=b"{nope", headers={"Content-Type": "application/json"},
                          microversion="2.51", raise_exc=False)
    assert r.status_code == 400

    # an admin/service API: a member is refused
    demo = sdk(cloud, "demo")
    try:
        r = post_events(demo, [{"name": "network-changed", "server_uuid": server}])
        assert r.status_code == 403, r.text
        assert "os-server-external-events:create" in r.json()["forbidden"]["message"]
    finally:
        demo.close()
    # only POST
    r = conn.compute.get(EVENTS, microversion="2.51", raise_exc=False)
    assert r.status_code in (404, 405)


def test_concurrent_attach_and_detach_keep_every_mapping(cloud, server):
    """Attaches and detaches racing on one server: no mapping is lost or resurrected."""
    vols = [cloud.os_json("volume", "create", "--size", "1", name("race"))["id"] for _ in range(4)]
    conns = [sdk(cloud) for _ in range(3)]
    errors: list[BaseException] = []

    def run(fn):
        try:
            fn()
        except BaseException as e:  # noqa: BLE001  (reported by the test)
            errors.append(e)

    def together(*fns):
        threads = [threading.Thread(target=run, args=(fn,)) for fn in fns]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors

    def attached() -> set[str]:
        return {a.volume_id for a in conns[0].compute.volume_attachments(server)}

    try:
        for v in vols:
            wait_volume(cloud, v, "available")
        # two attaches at once
        together(*[lambda c=c, v=v: c.compute.create_volume_attachment(server, volume=v)
                   for c, v in zip(conns[:2], vols[:2], strict=True)])
        for v in vols[:2]:
            wait_volume(cloud, v, "in-use")
        assert attached() == set(vols[:2])
        # a detach and two attaches at once
        together(lambda: conns[0].compute.delete_volume_attachment(server, vols[0]),
                 lambda: conns[1].compute.create_volume_attachment(server, volume=vols[2]),
                 lambda: conns[2].compute.create_volume_attachment(server, volume=vols[3]))
        wait_volume(cloud, vols[0], "available")
        for v in vols[1:]:
            wait_volume(cloud, v, "in-use")
        assert attached() == set(vols[1:])
        devices = [a["Device"] for a in cloud.os_json("server", "volume", "list", server)]
        assert len(set(devices)) == 3, devices
        # the volume API agrees, server by server
        for v in vols[1:]:
            assert [a["server_id"] for a in volume(cloud, v)["attachments"]] == [server]
        # and they all go at once
        together(*[lambda c=c, v=v: c.compute.delete_volume_attachment(server, v)
                   for c, v in zip(conns, vols[1:], strict=True)])
        for v in vols:
            wait_volume(cloud, v, "available")
        assert attached() == set()
    finally:
        for c in conns:
            c.close()
        for v in vols:
            cloud.openstack("server", "remove", "volume", server, v, check=False)
        for v in vols:
            wait_for(lambda v=v: volume(cloud, v)["status"] in ("available", "error"), 30, what="volume free")
            cloud.openstack("volume", "delete", v, check=False)
