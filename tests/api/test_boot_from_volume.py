"""Boot from volume through the real `openstack` CLI, on the fake compute driver.

`server create --image X --boot-from-volume N` (block_device_mapping_v2 image ->
volume: compute has the volume made from the image in the user's project, waits,
attaches it as vda) and `server create --volume V` (an existing bootable volume);
delete_on_termination is honoured when the server goes. Then the server actions on a
volume-backed server: createImage (volume snapshots + an image mapping them, and a
server booted from that image), resize, shelve/unshelve, rebuild and rescue per
microversion. The guest itself booting from the volume is tests/e2e/test_volume_guests.py.
"""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from tests.api.test_volume_lab import api, name, refused, volume, wait_for, wait_volume
from tests.cloud import Cloud


@pytest.fixture(scope="module")
def image(cloud, tmp_path_factory):
    path = tmp_path_factory.mktemp("bfv") / "boot.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    img = cloud.os_json("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                        "--file", str(path), name("bfv"))
    yield img
    cloud.openstack("image", "delete", img["id"], check=False)


def create(cloud: Cloud, *args: str, **kw) -> dict:
    return cloud.os_json("server", "create", "--flavor", "m1.nano", "--nic", "none",
                         "--os-compute-api-version", "2.37", *args, **kw)


def active(cloud: Cloud, ref: str, **kw) -> dict:
    shown = wait_for(lambda: (lambda s: s if s["status"] in ("ACTIVE", "ERROR") else None)(
        cloud.os_json("server", "show", ref, **kw)), 60, what=f"server {ref} built")
    assert shown["status"] == "ACTIVE", shown.get("fault")
    return shown


def compute(cloud: Cloud, method: str, path: str, body=None, version: str = "2.79"):
    token = cloud.openstack("token", "issue", "-f", "value", "-c", "id").stdout.strip()
    return httpx.request(method, f"{cloud.url}/compute/v2.1{path}", json=body, timeout=30,
                         headers={"X-Auth-Token": token, "OpenStack-API-Version": f"compute {version}"})


def test_boot_from_image_to_volume(cloud, image):
    n = name("bfv")
    server = create(cloud, "--image", image["id"], "--boot-from-volume", "1", n)
    try:
        shown = active(cloud, server["id"])
        assert not shown["image"] or "booted from volume" in str(shown["image"])
        attached = shown["volumes_attached"]
        assert len(attached) == 1, attached
        vid = attached[0]["id"]
        v = wait_volume(cloud, vid, "in-use")
        assert v["size"] == 1 and str(v["bootable"]).lower() == "true"
        assert v["volume_image_metadata"]["image_id"] == image["id"]
        assert v["attachments"][0]["server_id"] == server["id"]
        assert v["attachments"][0]["device"] == "/dev/vda"
        listed = cloud.os_json("server", "volume", "list", server["id"])
        assert [(x["Volume ID"], x["Device"]) for x in listed] == [(vid, "/dev/vda")]
        # as Nova: Placement holds no host disk for a root disk that is a volume (m1.nano: 1 GiB root)
        allocs = cloud.os_json("resource", "provider", "allocation", "show", server["id"])
        assert allocs and all("DISK_GB" not in a["resources"] for a in allocs), allocs
        assert all(a["resources"].get("MEMORY_MB") == 128 for a in allocs), allocs

        # the root volume stays attached (server actions on it: the tests below)
        err = refused(cloud, "server", "remove", "volume", server["id"], vid)
        assert "root device" in err

        # a second volume is hot-plugged as vdb beside it
        extra = cloud.os_json("volume", "create", "--size", "1", name("extra"))["id"]
        wait_volume(cloud, extra, "available")
        att = cloud.os_json("server", "add", "volume", server["id"], extra)
        assert att["Device"] == "/dev/vdb"
        wait_volume(cloud, extra, "in-use")
    finally:
        cloud.openstack("server", "delete", "--wait", server["id"])
    # not marked delete_on_termination (the CLI's default): both volumes stay, available
    wait_volume(cloud, vid, "available")
    wait_volume(cloud, extra, "available")
    cloud.openstack("volume", "delete", vid, extra)


def test_boot_from_existing_volume_and_delete_on_termination(cloud, image):
    vol = cloud.os_json("volume", "create", "--size", "1", "--image", image["id"], name("bootvol"))["id"]
    wait_volume(cloud, vol, "available")
    server = create(cloud, "--volume", vol, name("fromvol"))
    try:
        shown = active(cloud, server["id"])
        assert [a["id"] for a in shown["volumes_attached"]] == [vol]
        v = wait_volume(cloud, vol, "in-use")
        assert v["attachments"][0]["device"] == "/dev/vda"
        # in use: neither deleted nor given to another server
        assert "must be available" in refused(cloud, "volume", "delete", vol)
        assert "400" in refused(cloud, "server", "create", "--flavor", "m1.nano", "--nic", "none",
                                "--os-compute-api-version", "2.37", "--volume", vol, name("again"))
    finally:
        cloud.openstack("server", "delete", "--wait", server["id"])
    wait_volume(cloud, vol, "available")

    # delete_on_termination: the volume goes with the server
    server = create(cloud, "--image", image["id"], "--boot-from-volume", "1", "--delete-on-termination",
                    name("dot"))
    shown = active(cloud, server["id"])
    made = shown["volumes_attached"][0]["id"]
    cloud.openstack("server", "delete", "--wait", server["id"])
    wait_for(lambda: made not in {x["ID"] for x in cloud.os_json("volume", "list")}, what="root volume deleted")
    cloud.openstack("volume", "delete", vol)


def test_volume_mappings_refused(cloud, image):
    plain = cloud.os_json("volume", "create", "--size", "1", name("plain"))["id"]
    wait_volume(cloud, plain, "available")
    try:
        err = refused(cloud, "server", "create", "--flavor", "m1.nano", "--nic", "none",
                      "--os-compute-api-version", "2.37", "--volume", plain, name("nb"))
        assert "not bootable" in err
        base = {"name": name("raw"), "flavorRef": "42", "networks": "none"}
        bdm = {"boot_index": 0, "source_type": "image", "destination_type": "volume", "uuid": image["id"]}
        r = compute(cloud, "POST", "/servers", {"server": {**base, "block_device_mapping_v2": [bdm]}})
        assert r.status_code == 400 and "non-zero size" in r.text, r.text
        r = compute(cloud, "POST", "/servers", {"server": {**base, "block_device_mapping_v2": [
            {**bdm, "volume_size": 1}], "max_count": 2}})
        assert r.status_code == 400, r.text
        r = compute(cloud, "POST", "/servers", {"server": {**base, "block_device_mapping_v2": [
            {"boot_index": 0, "source_type": "volume", "destination_type": "volume",
             "uuid": "00000000-0000-0000-0000-000000000000"}]}})
        assert r.status_code == 400 and "failed to get volume" in r.text, r.text
        assert volume(cloud, plain)["status"] == "available"
    finally:
        cloud.openstack("volume", "delete", plain)


# ---------------------------------------------------------------- actions on volume-backed servers

def status(cloud: Cloud, ref: str, want: str, timeout: float = 60) -> dict:
    seen: dict = {}

    def check():
        seen.update(cloud.os_json("server", "show", ref))
        assert seen["status"] != "ERROR", seen.get("fault")
        return seen["status"] == want and not seen.get("OS-EXT-STS:task_state")

    wait_for(check, timeout, what=f"server {ref} {want}")
    return seen


def bfv_server(cloud: Cloud, image: dict, prefix: str, *args: str) -> tuple[dict, str]:
    server = create(cloud, "--image", image["id"], "--boot-from-volume", "1", *args, name(prefix))
    shown = active(cloud, server["id"])
    return shown, shown["volumes_attached"][0]["id"]


def snapshots_of(cloud: Cloud, volume_id: str) -> list[dict]:
    return [s for s in cloud.os_json("volume", "snapshot", "list", "--long") if s["Volume"] == volume_id]


def test_create_image_of_volume_backed_server_and_boot_from_it(cloud, image):
    shown, root = bfv_server(cloud, image, "snapsrc")
    sid = shown["id"]
    extra = cloud.os_json("volume", "create", "--size", "1", name("data"))["id"]
    made_volumes, images, servers = [], [], []
    try:
        wait_volume(cloud, extra, "available")
        cloud.os_json("server", "add", "volume", sid, extra)
        wait_volume(cloud, extra, "in-use")

        # createImage: a zero-byte active image whose block_device_mapping names new snapshots
        img = cloud.os_json("server", "image", "create", "--name", name("bfvsnap"), "--wait", sid)
        images.append(img["id"])
        img = cloud.os_json("image", "show", img["id"])
        props = img["properties"]
        assert img["status"] == "active" and not img["size"], img
        assert str(props["bdm_v2"]).lower() == "true" and props["root_device_name"] == "/dev/vda"
        assert props["image_type"] == "snapshot" and props["instance_uuid"] == sid
        bdms = props["block_device_mapping"]
        bdms = json.loads(bdms) if isinstance(bdms, str) else bdms
        by_boot = {b["boot_index"]: b for b in bdms}
        assert set(by_boot) == {0, None}, bdms
        for b in bdms:
            assert b["source_type"] == "snapshot" and b["destination_type"] == "volume"
            assert b["volume_size"] == 1 and b["delete_on_termination"] is False
        assert by_boot[0]["device_name"] == "/dev/vda" and by_boot[None]["device_name"] == "/dev/vdb"
        root_snap = snapshots_of(cloud, root)
        assert [s["ID"] for s in root_snap] == [by_boot[0]["snapshot_id"]]
        assert [s["ID"] for s in snapshots_of(cloud, extra)] == [by_boot[None]["snapshot_id"]]
        for snap in (b["snapshot_id"] for b in bdms):
            wait_for(lambda s=snap: cloud.os_json("volume", "snapshot", "show", s)["status"] == "available",
                     what=f"snapshot {snap} available")
        # the server is as it was
        after = status(cloud, sid, "ACTIVE")
        assert {a["id"] for a in after["volumes_attached"]} == {root, extra}

        # the raw API: 202 with image_id (2.45+), the Location header before
        r = compute(cloud, "POST", f"/servers/{sid}/action", {"createImage": {"name": name("raw")}})
        assert r.status_code == 202 and r.json()["image_id"], r.text
        images.append(r.json()["image_id"])
        r = compute(cloud, "POST", f"/servers/{sid}/action", {"createImage": {"name": name("old")}}, version="2.1")
        assert r.status_code == 202 and "/images/" in r.headers["location"], r.text
        images.append(r.headers["location"].rsplit("/", 1)[-1])

        # a server booted from that image is volume-backed, on new volumes made from the snapshots
        new = create(cloud, "--image", img["id"], name("fromsnap"))
        servers.append(new["id"])
        got = active(cloud, new["id"])
        made_volumes += [a["id"] for a in got["volumes_attached"]]
        assert len(made_volumes) == 2 and not {root, extra} & set(made_volumes), got["volumes_attached"]
        assert img["id"] in str(got["image"])  # as Nova: the image it was booted from
        by_dev = {}
        for vid in made_volumes:
            v = wait_volume(cloud, vid, "in-use")
            by_dev[v["attachments"][0]["device"]] = v
        assert by_dev["/dev/vda"]["snapshot_id"] == by_boot[0]["snapshot_id"]
        # as Cinder: a volume made from a snapshot of a bootable volume is bootable, with its image metadata
        assert str(by_dev["/dev/vda"]["bootable"]).lower() == "true"
        assert by_dev["/dev/vda"]["volume_image_metadata"]["image_id"] == image["id"]
        assert by_dev["/dev/vdb"]["snapshot_id"] == by_boot[None]["snapshot_id"]
        # a volume-backed server: a rebuild may not change the image its root volume holds
        # (the root volume came from the original image, not from the snapshot image)
        r = compute(cloud, "POST", f"/servers/{new['id']}/action", {"rebuild": {"imageRef": img["id"]}})
        assert r.status_code == 400 and "volume-backed" in r.text, r.text
    finally:
        for ref in [*servers, sid]:
            cloud.openstack("server", "delete", "--wait", ref, check=False)
        snaps = [s["ID"] for vid in (root, extra) for s in snapshots_of(cloud, vid)]
        for vid in made_volumes:
            wait_volume(cloud, vid, "available")
        if made_volumes:
            cloud.openstack("volume", "delete", *made_volumes)
        for ref in images:
            cloud.openstack("image", "delete", ref, check=False)
        if snaps:
            cloud.openstack("volume", "snapshot", "delete", *snaps)
            wait_for(lambda: not snapshots_of(cloud, root) and not snapshots_of(cloud, extra),
                     what="snapshots deleted")
        wait_volume(cloud, root, "available")
        wait_volume(cloud, extra, "available")
        cloud.openstack("volume", "delete", root, extra)


def test_create_image_failing_midway_leaves_nothing(cloud, image):
    shown, root = bfv_server(cloud, image, "quota", "--delete-on-termination")
    sid = shown["id"]
    extra = cloud.os_json("volume", "create", "--size", "1", name("data"))["id"]
    project = cloud.os_json("server", "show", sid)["project_id"]
    limits = api(cloud, "GET", f"/os-quota-sets/{project}").json()["quota_set"]
    try:
        wait_volume(cloud, extra, "available")
        cloud.os_json("server", "add", "volume", sid, extra)
        wait_volume(cloud, extra, "in-use")
        images_before = {i["ID"] for i in cloud.os_json("image", "list")}
        used = api(cloud, "GET", "/limits").json()["limits"]["absolute"]

        # room for one snapshot of the two: refused (403) before any is made
        cloud.openstack("quota", "set", "--snapshots", str(used["totalSnapshotsUsed"] + 1), project)
        r = compute(cloud, "POST", f"/servers/{sid}/action", {"createImage": {"name": name("nope")}})
        assert r.status_code == 403 and "snapshots" in r.text, r.text
        cloud.openstack("quota", "set", "--snapshots", str(limits.get("snapshots", -1)), project)

        # room for the gigabytes of one: the first snapshot is made, the second refused; the
        # first goes again and no image is left
        cloud.openstack("quota", "set", "--gigabytes", str(used["totalGigabytesUsed"] + 1), project)
        r = compute(cloud, "POST", f"/servers/{sid}/action", {"createImage": {"name": name("nope")}})
        assert r.status_code == 403, r.text
        wait_for(lambda: not snapshots_of(cloud, root) and not snapshots_of(cloud, extra),
                 what="the snapshot made before the refusal removed")
        assert {i["ID"] for i in cloud.os_json("image", "list")} == images_before
        assert status(cloud, sid, "ACTIVE")["OS-EXT-STS:task_state"] is None

        # PAUSED: only image-backed servers are snapshotted while paused
        cloud.openstack("quota", "set", "--gigabytes", str(limits.get("gigabytes", -1)), project)
        cloud.openstack("server", "pause", sid)
        status(cloud, sid, "PAUSED")
        r = compute(cloud, "POST", f"/servers/{sid}/action", {"createImage": {"name": name("nope")}})
        assert r.status_code == 409, r.text
    finally:
        cloud.openstack("quota", "set", "--snapshots", str(limits.get("snapshots", -1)),
                        "--gigabytes", str(limits.get("gigabytes", -1)), project, check=False)
        cloud.openstack("server", "delete", "--wait", sid)
        wait_volume(cloud, extra, "available")
        cloud.openstack("volume", "delete", extra)
    wait_for(lambda: root not in {x["ID"] for x in cloud.os_json("volume", "list")}, what="root volume deleted")


def test_resize_volume_backed_server(cloud, image):
    flavor = cloud.os_json("flavor", "create", "--ram", "256", "--vcpus", "2", "--disk", "0", name("nodisk"))
    shown, root = bfv_server(cloud, image, "resize", "--delete-on-termination")
    sid = shown["id"]
    try:
        # the new flavor has no root disk: nothing to shrink on a server whose root is a volume
        cloud.openstack("server", "resize", "--flavor", flavor["name"], "--wait", sid)
        status(cloud, sid, "VERIFY_RESIZE")
        cloud.openstack("server", "resize", "confirm", sid)
        got = status(cloud, sid, "ACTIVE")
        assert flavor["name"] in str(got["flavor"]), got["flavor"]
        v = volume(cloud, root)
        assert v["status"] == "in-use" and v["size"] == 1 and v["attachments"][0]["device"] == "/dev/vda"

        # and back, reverted: the flavor it had
        cloud.openstack("server", "resize", "--flavor", "m1.nano", "--wait", sid)
        status(cloud, sid, "VERIFY_RESIZE")
        cloud.openstack("server", "resize", "revert", sid)
        got = status(cloud, sid, "ACTIVE")
        assert flavor["name"] in str(got["flavor"]), got["flavor"]
        assert [a["id"] for a in got["volumes_attached"]] == [root]
    finally:
        cloud.openstack("server", "delete", "--wait", sid)
        cloud.openstack("flavor", "delete", flavor["id"])
    wait_for(lambda: root not in {x["ID"] for x in cloud.os_json("volume", "list")}, what="root volume deleted")


def test_shelve_and_unshelve_volume_backed_server(cloud, image):
    shown, root = bfv_server(cloud, image, "shelve", "--delete-on-termination")
    sid = shown["id"]
    images_before = {i["ID"] for i in cloud.os_json("image", "list")}
    try:
        cloud.openstack("server", "shelve", sid)
        got = status(cloud, sid, "SHELVED_OFFLOADED")
        # no image: the volume is the disk, and it stays attached to the server
        assert {i["ID"] for i in cloud.os_json("image", "list")} == images_before
        assert [a["id"] for a in got["volumes_attached"]] == [root]
        v = volume(cloud, root)
        assert v["status"] == "in-use" and v["attachments"][0]["server_id"] == sid
        assert "must be available" in refused(cloud, "volume", "delete", root)

        cloud.openstack("server", "unshelve", sid)
        got = status(cloud, sid, "ACTIVE")
        assert [a["id"] for a in got["volumes_attached"]] == [root]
        v = wait_volume(cloud, root, "in-use")
        assert v["attachments"][0]["device"] == "/dev/vda" and v["attachments"][0]["server_id"] == sid

        # shelved again and deleted while offloaded: the volume goes with it
        cloud.openstack("server", "shelve", sid)
        status(cloud, sid, "SHELVED_OFFLOADED")
    finally:
        cloud.openstack("server", "delete", "--wait", sid)
    wait_for(lambda: root not in {x["ID"] for x in cloud.os_json("volume", "list")}, what="root volume deleted")


def test_rebuild_and_rescue_volume_backed_server(cloud, image, tmp_path):
    path = tmp_path / "other.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "32M"], check=True)
    other = cloud.os_json("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                          "--file", str(path), name("other"))
    shown, root = bfv_server(cloud, image, "rebuild", "--delete-on-termination")
    sid = shown["id"]
    try:
        # before 2.93 only the image in the root volume: the server is defined again around it
        r = compute(cloud, "POST", f"/servers/{sid}/action", {"rebuild": {"imageRef": other["id"]}})
        assert r.status_code == 400, r.text
        assert "Unable to rebuild with a different image for a volume-backed server" in r.text
        assert "different image" in refused(cloud, "server", "rebuild", "--image", other["id"], sid)
        cloud.openstack("server", "rebuild", "--image", image["id"], "--name", name("rebuilt"), "--wait", sid)
        got = status(cloud, sid, "ACTIVE")
        assert got["name"].startswith("rebuilt-")
        assert not got["image"] or "booted from volume" in str(got["image"]), got["image"]
        assert [a["id"] for a in got["volumes_attached"]] == [root]
        assert wait_volume(cloud, root, "in-use")["attachments"][0]["device"] == "/dev/vda"
        events = cloud.os_json("server", "event", "list", sid)
        assert any(e["Action"] == "rebuild" for e in events), events

        # rescue: from 2.87 (beyond this cloud's 2.79), refused as Nova does below it
        r = compute(cloud, "POST", f"/servers/{sid}/action", {"rescue": None})
        assert r.status_code == 400 and "Cannot rescue a volume-backed instance" in r.text, r.text
        assert "volume-backed" in refused(cloud, "server", "rescue", sid)
        assert status(cloud, sid, "ACTIVE")["OS-EXT-STS:task_state"] is None
        # a stopped one too (states first: a building or shelved one is a 409)
        cloud.openstack("server", "stop", sid)
        status(cloud, sid, "SHUTOFF")
        cloud.openstack("server", "rebuild", "--image", image["id"], "--wait", sid)
        assert status(cloud, sid, "SHUTOFF")["OS-EXT-STS:vm_state"] == "stopped"
    finally:
        cloud.openstack("server", "delete", "--wait", sid)
        cloud.openstack("image", "delete", other["id"], check=False)
    wait_for(lambda: root not in {x["ID"] for x in cloud.os_json("volume", "list")}, what="root volume deleted")
