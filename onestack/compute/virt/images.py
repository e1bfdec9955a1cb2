"""Disks of instances: a cache of base images, and a qcow2 overlay per instance.

    <state>/compute/base/<image id>          the image converted to qcow2, once (atomic)
    <state>/compute/instances/<uuid>/disk    qcow2 overlay backed by the base, flavor-sized

A base is made by converting what the caller supplies (a file, or a function that
downloads it) with `qemu-img convert -f <declared format> -O qcow2` into a
temporary name in the cache, then renamed into place: a crash or a failed
conversion never leaves a half base behind, and concurrent spawns of one image
wait on a lock instead of converting twice. The declared format is always given
to qemu-img (no probing), and a source with a backing file or an external data
file is refused before it is read (the image service checks this too; the host is
where it matters). qemu-img runs through onestack.common.qemu_img, limited where it
reads an image's data.
"""

from __future__ import annotations

import fcntl
import grp
import hashlib
import os
import re
import shutil
import struct
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from onestack.common import qemu_img
from onestack.compute.virt.errors import ImageError

GiB = 1 << 30
# Image service disk_format -> qemu-img format name.
QEMU_FORMATS = {
    "raw": "raw",
    "qcow2": "qcow2",
    "vmdk": "vmdk",
    "vdi": "vdi",
    "vhd": "vpc",
    "vhdx": "vhdx",
    "iso": "raw",
}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

Source = Path | Callable[[Path], None]  # a file, or a function writing the data to a path


@contextmanager
def _qemu_errors():
    """qemu-img's failures (onestack.common.qemu_img) as this driver's ImageError."""
    try:
        yield
    except qemu_img.QemuImgError as e:
        raise ImageError(str(e)) from None


def image_info(path: Path, fmt: str, *, trusted: bool = False, force_share: bool = False) -> dict:
    """`qemu-img info` of `path` read as `fmt` (never probed; limited unless `trusted`)."""
    with _qemu_errors():
        return qemu_img.info(path, fmt, trusted=trusted, force_share=force_share, timeout=600)


def check_source(info: dict, fmt: str) -> None:
    """Refuse what would make QEMU read other files than the one given."""
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise ImageError(f"the {fmt} image names a backing file; refused")
    data_file = (info.get("format-specific") or {}).get("data", {}).get("data-file")
    if data_file:
        raise ImageError(f"the {fmt} image names an external data file; refused")
    if info.get("format") != fmt:
        raise ImageError(f"the image is not {fmt} (qemu-img reads {info.get('format')})")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class ImageCache:
    """Base images, converted to qcow2 once, under `root` (e.g. <state>/compute/base).

    A base is root-owned and read-only: with `group` (the QEMU user's group) 0440
    root:<group>, readable by QEMU and by no other local user; else 0444."""

    def __init__(self, root: Path, group: str | None = None):
        self.root = Path(root)
        self.group = group

    def path(self, image_id: str) -> Path:
        if not _ID.match(image_id):
            raise ImageError(f"image id {image_id!r} is not usable as a cache name")
        return self.root / image_id

    def ensure(self, image_id: str | None, source: Source, disk_format: str = "qcow2") -> Path:
        """The cached base for `image_id` (or, without an id, the source's sha256)."""
        fmt = QEMU_FORMATS.get(disk_format)
        if fmt is None:
            raise ImageError(f"disk_format {disk_format!r} cannot be booted")
        if image_id is None:
            if not isinstance(source, Path):
                raise ImageError("an image without an id must be a file")
            image_id = "sha256-" + sha256_file(source)
        final = self.path(image_id)
        if final.exists():
            self._protect(final)  # (also undoes a relabel by an older libvirt set-up)
            os.utime(final)  # last use, for a future cache cleaner
            return final
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f".{image_id}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another spawn of this image converts it
            if final.exists():
                return final
            tmp = Path(tempfile.mkdtemp(prefix=f".{image_id}.", dir=self.root))
            try:
                src = source
                if not isinstance(src, Path):
                    src = tmp / "download"
                    source(src)
                check_source(image_info(src, fmt), fmt)
                out = tmp / "base.qcow2"
                with _qemu_errors():
                    qemu_img.convert(src, out, fmt, "qcow2", timeout=600)
                self._protect(out)
                os.replace(out, final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return final

    def _protect(self, path: Path) -> None:
        gid = None
        if self.group:
            try:
                gid = grp.getgrnam(self.group).gr_gid
            except KeyError:
                gid = None
        if gid is None:
            path.chmod(0o444)
        else:
            os.chown(path, 0 if os.geteuid() == 0 else -1, gid)
            path.chmod(0o440)


def create_overlay(base: Path, overlay: Path, root_gb: int = 0) -> int:
    """A qcow2 overlay on `base`, `root_gb` GiB (0: the image's size). Its virtual size."""
    virtual = int(image_info(base, "qcow2", trusted=True)["virtual-size"])
    size = virtual
    if root_gb:
        size = root_gb * GiB
        if virtual > size:
            raise ImageError(
                f"image virtual size {virtual} bytes is larger than the flavor's root disk "
                f"({root_gb} GiB)"
            )
    with _qemu_errors():
        qemu_img.create(overlay, "qcow2", size, backing=base, backing_fmt="qcow2")
    return size


def virtual_size(path: Path) -> int:
    """The virtual size of a qcow2 disk, also while a guest has it open (-U)."""
    return int(image_info(path, "qcow2", trusted=True, force_share=True)["virtual-size"])


def grow(path: Path, size: int) -> None:
    """Grow a qcow2 disk (its guest must be off) to `size` bytes; never shrinks."""
    current = virtual_size(path)
    if size < current:
        raise ImageError(f"the disk is {current} bytes; it cannot shrink to {size}")
    if size > current:
        with _qemu_errors():
            qemu_img.resize(path, "qcow2", size)


def flatten(source: Path, dest: Path, *, timeout: float = 1800) -> int:
    """`source` (a qcow2 overlay, possibly in use: -U) with its backing chain merged into
    a standalone qcow2 at `dest`, written under a temporary name and
    renamed into place. Its virtual size."""
    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    try:
        with _qemu_errors():
            qemu_img.convert(source, tmp, "qcow2", "qcow2", trusted=True, force_share=True, timeout=timeout)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return int(image_info(dest, "qcow2", trusted=True)["virtual-size"])


def write_empty_qcow2(path: Path, size: int) -> int:
    """An empty qcow2 (version 2, 64 KiB clusters) of `size` virtual bytes, written
    without qemu-img: the fake driver's snapshots. Its virtual size."""
    cluster = 1 << 16
    per_l2 = cluster // 8 * cluster  # bytes one L2 table maps
    l1_size = max(1, -(-size // per_l2))
    l1_clusters = -(-(l1_size * 8) // cluster)
    clusters = 3 + l1_clusters  # header, refcount table, refcount block, L1 table
    header = struct.pack(
        ">4sIQIIQIIQQIIQ",
        b"QFI\xfb",
        2,  # version
        0,  # backing file offset
        0,  # backing file name size
        16,  # cluster bits
        size,
        0,  # no encryption
        l1_size,
        3 * cluster,  # L1 table
        1 * cluster,  # refcount table
        1,  # refcount table clusters
        0,  # snapshots
        0,
    )
    data = bytearray(clusters * cluster)
    data[: len(header)] = header
    struct.pack_into(">Q", data, cluster, 2 * cluster)  # refcount table -> block
    for i in range(clusters):
        struct.pack_into(">H", data, 2 * cluster + 2 * i, 1)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_bytes(bytes(data))
    os.replace(tmp, path)
    return size
