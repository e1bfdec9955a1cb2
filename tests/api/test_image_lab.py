"""The book's Glance lab (chapter 6) and image sharing, through the `openstack` CLI."""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def qcow2(tmp_path_factory) -> Path:
    """A real (empty) qcow2 disk, as a user would upload."""
    path = tmp_path_factory.mktemp("img") / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    return path


@pytest.fixture(scope="module")
def other_user(cloud):
    """A member of a third project, to check what other projects see."""
    with cloud.new_member("img-other") as env:
        yield env


def test_glance_lab_create_list_show_set_save_delete(cloud, qcow2, tmp_path):
    name = _name("cirros-lab")
    img = cloud.os_json(
        "image", "create", "--file", str(qcow2), "--disk-format", "qcow2", "--container-format", "bare",
        "--public", "--min-disk", "1", "--min-ram", "128", "--protected",
        "--property", "hw_disk_bus=virtio", "--property", "os_type=linux", name,
    )
    assert img["status"] == "active" and img["visibility"] == "public" and img["protected"] is True
    assert img["min_disk"] == 1 and img["min_ram"] == 128
    data = qcow2.read_bytes()
    assert img["checksum"] == hashlib.md5(data).hexdigest()
    assert img["size"] == len(data)
    shown = cloud.os_json("image", "show", name)
    assert shown["virtual_size"] == 64 * 1024 * 1024  # from qemu-img info, not the file size
    assert shown["properties"]["os_hash_algo"] == "sha512"
    assert shown["properties"]["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert shown["properties"]["hw_disk_bus"] == "virtio"
    assert name in {i["Name"] for i in cloud.os_json("image", "list")}
    # demo sees a public image too
    assert name in {i["Name"] for i in cloud.os_json("image", "list", user="demo")}

    # protected: delete refused, nothing changes
    r = cloud.openstack("image", "delete", name, check=False)
    assert r.returncode != 0 and "protected" in r.stderr
    assert cloud.os_json("image", "show", name)["status"] == "active"

    cloud.openstack("image", "set", "--unprotected", "--tag", "lab", "--property", "os_distro=tiny",
                    "--min-ram", "64", name)
    cloud.openstack("image", "unset", "--property", "os_type", name)
    shown = cloud.os_json("image", "show", name)
    assert shown["protected"] is False and shown["tags"] == ["lab"] and shown["min_ram"] == 64
    assert "os_type" not in shown["properties"] and shown["properties"]["os_distro"] == "tiny"
    cloud.openstack("image", "unset", "--tag", "lab", name)
    assert cloud.os_json("image", "show", name)["tags"] == []

    out = tmp_path / "saved.qcow2"
    cloud.openstack("image", "save", "--file", str(out), name)
    assert out.read_bytes() == data

    cloud.openstack("image", "delete", name)
    r = cloud.openstack("image", "show", name, check=False)
    assert r.returncode != 0 and "No Image found" in r.stderr


def test_make_existing_image_public_and_deactivate(cloud, other_user):
    name = _name("to-publish")
    img = cloud.os_json("image", "create", "--private", "--disk-format", "raw", "--container-format", "bare",
                        name, user="demo")  # no --file: OSC uploads its (empty) stdin
    assert img["visibility"] == "private"
    assert name not in {i["Name"] for i in cloud.os_json("image", "list", env=other_user)}
    # a member may not publicize, even its own image; nothing changes
    r = cloud.openstack("image", "set", "--public", name, user="demo", check=False)
    assert r.returncode != 0 and "403" in r.stderr
    assert cloud.os_json("image", "show", name, user="demo")["visibility"] == "private"
    # the admin (the book's step) may
    cloud.openstack("image", "set", "--public", img["id"])
    assert name in {i["Name"] for i in cloud.os_json("image", "list", env=other_user)}
    # deactivated: still listed, data not downloadable by non-admins
    cloud.openstack("image", "set", "--deactivate", img["id"])
    assert cloud.os_json("image", "show", img["id"])["status"] == "deactivated"
    # (checked over HTTP: openstacksdk 4.x hashes a refusal's body instead of raising)
    token = cloud.os_json("token", "issue", env=other_user)["id"]
    r = httpx.get(f"{cloud.url}/image/v2/images/{img['id']}/file", headers={"X-Auth-Token": token})
    assert r.status_code == 403 and "deactivated" in r.text
    cloud.openstack("image", "set", "--activate", img["id"])
    assert cloud.os_json("image", "show", img["id"])["status"] == "active"
    cloud.openstack("image", "save", "--file", "/dev/null", img["id"], env=other_user)
    cloud.openstack("image", "delete", img["id"], user="demo")


def test_private_images_stay_private(cloud, other_user):
    name = _name("demo-private")
    img = cloud.os_json("image", "create", "--private", name, user="demo")
    assert name not in {i["Name"] for i in cloud.os_json("image", "list", env=other_user)}
    r = cloud.openstack("image", "show", img["id"], env=other_user, check=False)
    assert r.returncode != 0 and "No Image found" in r.stderr
    r = cloud.openstack("image", "delete", img["id"], env=other_user, check=False)
    assert r.returncode != 0
    assert cloud.os_json("image", "show", img["id"], user="demo")["name"] == name
    # admins see every project's images
    assert name in {i["Name"] for i in cloud.os_json("image", "list")}
    cloud.openstack("image", "delete", img["id"], user="demo")


def test_sharing_with_a_project(cloud, other_user):
    name = _name("shared")
    img = cloud.os_json("image", "create", "--shared", "--disk-format", "raw", "--container-format", "bare",
                        name, user="demo")
    other_project = other_user["OS_PROJECT_NAME"]
    project_id = cloud.os_json("project", "show", other_project)["id"]
    member = cloud.os_json("image", "add", "project", img["id"], project_id, user="demo")
    assert member["status"] == "pending" and member["member_id"] == project_id
    # pending: visible by id, not yet in the default list
    assert cloud.os_json("image", "show", img["id"], env=other_user)["name"] == name
    assert name not in {i["Name"] for i in cloud.os_json("image", "list", env=other_user)}
    # the member itself accepts; then the image is in its list
    cloud.openstack("image", "set", "--accept", img["id"], env=other_user)
    assert name in {i["Name"] for i in cloud.os_json("image", "list", env=other_user)}
    members = cloud.os_json("image", "member", "list", img["id"], user="demo")
    assert [(m["Member ID"], m["Status"]) for m in members] == [(project_id, "accepted")]
    # the member may not change the image, nor make it public
    r = cloud.openstack("image", "set", "--name", "hijacked", img["id"], env=other_user, check=False)
    assert r.returncode != 0 and "403" in r.stderr
    r = cloud.openstack("image", "set", "--public", img["id"], env=other_user, check=False)
    assert r.returncode != 0
    assert cloud.os_json("image", "show", img["id"], user="demo")["name"] == name
    # rejected: gone from its list again; removed: not visible at all
    cloud.openstack("image", "set", "--reject", img["id"], env=other_user)
    assert name not in {i["Name"] for i in cloud.os_json("image", "list", env=other_user)}
    cloud.openstack("image", "remove", "project", img["id"], project_id, user="demo")
    r = cloud.openstack("image", "show", img["id"], env=other_user, check=False)
    assert r.returncode != 0
    cloud.openstack("image", "delete", img["id"], user="demo")


def test_import_info_and_glance_direct(cloud, qcow2):
    info = cloud.os_json("image", "import", "info")
    assert "glance-direct" in str(info)
    name = _name("imported")
    img = cloud.os_json("image", "create", "--import", "--file", str(qcow2), "--disk-format", "qcow2",
                        "--container-format", "bare", name, user="demo")
    shown = img
    for _ in range(100):  # the import finishes in the background, as with Glance
        shown = cloud.os_json("image", "show", img["id"], user="demo")
        if shown["status"] == "active":
            break
    assert shown["status"] == "active"
    assert shown["checksum"] == hashlib.md5(qcow2.read_bytes()).hexdigest()
    assert shown["virtual_size"] == 64 * 1024 * 1024
    cloud.openstack("image", "delete", img["id"], user="demo")
