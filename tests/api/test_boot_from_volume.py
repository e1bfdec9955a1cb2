"""Boot from volume through the real `openstack` CLI, on the fake compute driver.

`server create --image X --boot-from-volume N` (block_device_mapping_v2 image ->
volume: compute has the volume made from the image in the user's project, waits,
attaches it as vda) and `server create --volume V` (an existing bootable volume);
delete_on_termination is honoured when the server goes. The guest itself booting
from the volume is tests/e2e/test_volume_guests.py.
"""

from __future__ import annotations

import subprocess

import httpx
import pytest

from tests.api.test_volume_lab import name, refused, volume, wait_for, wait_volume
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

        # the root volume stays: no detach, no rebuild/resize/snapshot of the (absent) local disk
        err = refused(cloud, "server", "remove", "volume", server["id"], vid)
        assert "root device" in err
        r = compute(cloud, "POST", f"/servers/{server['id']}/action", {"rebuild": {"imageRef": image["id"]}})
        assert r.status_code == 400 and "volume-backed" in r.text

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
