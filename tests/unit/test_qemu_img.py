"""The one qemu-img wrapper (onestack.common.qemu_img) and its users on compute hosts and
volume backends."""

from __future__ import annotations

import shutil

import pytest

from onestack.common import qemu_img
from onestack.compute.virt import images
from onestack.compute.virt.errors import ImageError
from onestack.volume.backends.file import BackendError, FileBackend

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img (qemu-utils) not installed")
MiB = 1 << 20


def test_create_info_resize_convert(tmp_path):
    disk = tmp_path / "a.qcow2"
    qemu_img.create(disk, "qcow2", 4 * MiB)
    assert qemu_img.info(disk, "qcow2")["virtual-size"] == 4 * MiB
    qemu_img.resize(disk, "qcow2", "8M")
    assert qemu_img.info(disk, "qcow2", trusted=True, force_share=True)["virtual-size"] == 8 * MiB
    raw = tmp_path / "a.raw"
    qemu_img.convert(disk, raw, "qcow2", "raw")
    assert raw.stat().st_size == 8 * MiB
    assert qemu_img.info(raw, "raw")["format"] == "raw"


def test_backing_files_are_named_and_failures_say_why(tmp_path):
    base, top = tmp_path / "base.qcow2", tmp_path / "top.qcow2"
    qemu_img.create(base, "qcow2", MiB)
    qemu_img.create(top, "qcow2", MiB, backing=base)
    assert qemu_img.outside_reference(qemu_img.info(top, "qcow2")) == "a backing file"
    assert qemu_img.outside_reference(qemu_img.info(base, "qcow2")) is None
    junk = tmp_path / "junk"
    junk.write_bytes(b"not an image" * 100)
    with pytest.raises(qemu_img.QemuImgError) as err:
        qemu_img.info(junk, "qcow2")  # the format is forced, never probed
    assert err.value.operation == "info" and err.value.reason and not err.value.timed_out


def test_compute_image_cache_and_overlay(tmp_path):
    src = tmp_path / "img.raw"
    src.write_bytes(b"\0" * MiB)
    cache = images.ImageCache(tmp_path / "base")
    base = cache.ensure("img-1", src, "raw")
    assert qemu_img.info(base, "qcow2")["virtual-size"] == MiB
    overlay = tmp_path / "disk"
    assert images.create_overlay(base, overlay, root_gb=1) == 1 << 30
    images.grow(overlay, 2 << 30)
    assert images.virtual_size(overlay) == 2 << 30
    assert images.flatten(overlay, tmp_path / "flat") == 2 << 30
    with pytest.raises(ImageError, match="backing file"):
        cache.ensure("img-2", overlay, "qcow2")  # a source naming a backing file is refused
    bad = tmp_path / "bad"
    bad.write_bytes(b"x" * 4096)
    with pytest.raises(ImageError, match="qemu-img info failed"):
        cache.ensure("img-3", bad, "qcow2")


def test_volume_backend_files(tmp_path):
    backend = FileBackend(tmp_path / "vols", "qcow2")
    made = backend.create("v1", 1)
    assert qemu_img.info(made["path"], "qcow2")["virtual-size"] == 1 << 30
    backend.extend(made["path"], "qcow2", 2)
    snap = backend.snapshot(made["path"], "qcow2", "s1")
    assert qemu_img.info(snap["path"], "qcow2")["virtual-size"] == 2 << 30
    base, top = tmp_path / "b.qcow2", tmp_path / "t.qcow2"
    qemu_img.create(base, "qcow2", MiB)
    qemu_img.create(top, "qcow2", MiB, backing=base)
    with pytest.raises(BackendError, match="names a backing file"):
        backend.from_image(top, "qcow2", "v2", 1)
    with pytest.raises(BackendError, match="qemu-img resize failed"):
        backend.extend(str(backend.volume_path("gone")), "qcow2", 3)  # qemu-img's refusal, as the backend's
