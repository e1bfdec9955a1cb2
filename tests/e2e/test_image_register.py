"""`make up`'s second step: `onestack image register tiny` puts the tiny image
in the cloud as a public image; what the image service hands back boots."""

from __future__ import annotations

import shutil
import sys

import pytest

from tests.e2e.test_guest_image import booted

pytestmark = pytest.mark.e2e


def test_register_tiny_then_boot_the_downloaded_image(cloud, tmp_path):
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("qemu-system-x86_64 is not installed")
    first = cloud.onestack("image", "register", "tiny", timeout=300)
    assert "registered onestack-tiny-x86_64" in first.stdout
    again = cloud.onestack("image", "register", "tiny")
    assert "already registered" in again.stdout  # idempotent: make up twice changes nothing
    images = [i for i in cloud.os_json("image", "list", "--long", user="demo")
              if i["Name"] == "onestack-tiny-x86_64"]
    assert len(images) == 1 and images[0]["Visibility"] == "public" and images[0]["Disk Format"] == "qcow2"
    shown = cloud.os_json("image", "show", "onestack-tiny-x86_64")
    assert shown["virtual_size"] == 64 * 1024 * 1024 and shown["properties"]["os_distro"] == "onestack-tiny"

    saved = tmp_path / "tiny.qcow2"
    cloud.openstack("image", "save", "--file", str(saved), "onestack-tiny-x86_64", user="demo")
    with booted(saved, tmp_path) as guest:
        t_ready, line = guest.wait_for(r"onestack-tiny: ready\.")
    print(f"\ndownloaded tiny image: ready at {t_ready:.1f}s: {line}", file=sys.stderr)
    cloud.openstack("image", "delete", shown["id"])


def test_register_refuses_bad_files_and_leaves_nothing(cloud, tmp_path):
    r = cloud.onestack("image", "register", str(tmp_path / "nope.qcow2"), check=False)
    assert r.returncode == 1 and "no such file" in (r.stdout + r.stderr)
    bogus = tmp_path / "bogus.qcow2"
    bogus.write_bytes(b"not a disk image" * 5000)
    r = cloud.onestack("image", "register", str(bogus), "--name", "bogus-reg", check=False)
    assert r.returncode == 1 and "no recognisable header" in (r.stdout + r.stderr)
    assert "bogus-reg" not in {i["Name"] for i in cloud.os_json("image", "list")}
