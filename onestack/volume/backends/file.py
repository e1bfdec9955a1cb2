"""The file backend: each volume is a sparse raw or qcow2 file made with qemu-img.

Snapshots and clones are full, flattened copies (``qemu-img convert`` keeps
them sparse), so a volume, its snapshots and its clones can be deleted in any
order. Images are written into volumes with ``qemu-img convert -f <declared
format>`` (never probed), after checking that the source names no backing or
external data file. Every call blocks; the agent runs them on its threads.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from onestack.common import qemu_img

GiB = 1024**3


class BackendError(Exception):
    pass


@contextmanager
def qemu_errors():
    """qemu-img's failures as this backend's (the agent reports BackendError)."""
    try:
        yield
    except qemu_img.QemuImgError as e:
        raise BackendError(str(e)) from None


# Glance disk formats -> qemu-img's driver names
_QEMU_FORMATS = {"raw": "raw", "qcow2": "qcow2", "vmdk": "vmdk", "vdi": "vdi", "vhd": "vpc", "vhdx": "vhdx",
                 "iso": "raw", "ami": "raw"}


class FileBackend:
    def __init__(self, directory: Path, volume_format: str = "raw", capacity_gb: int = 0):
        if volume_format not in ("raw", "qcow2"):
            raise ValueError(f"volume_format must be raw or qcow2, not {volume_format!r}")
        self.dir = Path(directory)
        self.format = volume_format
        self.capacity_gb = capacity_gb
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)

    # -- paths

    def volume_path(self, volume_id: str) -> Path:
        return self.dir / f"volume-{volume_id}"

    def snapshot_path(self, snapshot_id: str) -> Path:
        return self.dir / f"snapshot-{snapshot_id}"

    def _check_name(self, path: Path) -> Path:
        path = Path(path)
        if path.parent.resolve() != self.dir.resolve():
            raise BackendError(f"{path} is not a file of this backend")
        return path

    # -- volumes

    def create(self, volume_id: str, size_gb: int) -> dict:
        path = self.volume_path(volume_id)
        tmp = path.with_suffix(".partial")
        with qemu_errors():
            qemu_img.create(tmp, self.format, f"{size_gb}G")
        tmp.rename(path)
        return {"path": str(path), "format": self.format}

    def delete(self, path: str | None) -> None:
        if not path:
            return
        p = self._check_name(Path(path))
        p.unlink(missing_ok=True)
        p.with_suffix(".partial").unlink(missing_ok=True)

    def extend(self, path: str, fmt: str, new_size_gb: int) -> None:
        with qemu_errors():
            qemu_img.resize(self._check_name(Path(path)), fmt, f"{new_size_gb}G")

    def copy(self, src: str, src_fmt: str, volume_id: str, size_gb: int) -> dict:
        """A new volume from another volume's or a snapshot's file (clone, from snapshot)."""
        return self._convert(Path(src), src_fmt, self.volume_path(volume_id), size_gb)

    def snapshot(self, src: str, src_fmt: str, snapshot_id: str) -> dict:
        dest = self.snapshot_path(snapshot_id)
        tmp = dest.with_suffix(".partial")
        with qemu_errors():
            qemu_img.convert(src, tmp, src_fmt, self.format, trusted=True, force_share=True)
        tmp.rename(dest)
        return {"path": str(dest), "format": self.format}

    def from_image(self, data: Path, disk_format: str, volume_id: str, size_gb: int) -> dict:
        fmt = _QEMU_FORMATS.get(disk_format)
        if fmt is None:
            raise BackendError(f"images of disk format {disk_format!r} cannot be copied to a volume")
        with qemu_errors():
            meta = qemu_img.info(data, fmt)
        outside = qemu_img.outside_reference(meta)
        if outside:
            raise BackendError(f"the {fmt} data names {outside}; refused")
        if meta.get("virtual-size", 0) > size_gb * GiB:
            raise BackendError(f"the image's virtual size ({meta['virtual-size']} bytes) is larger than "
                               f"the volume ({size_gb} GiB)")
        return self._convert(data, fmt, self.volume_path(volume_id), size_gb)

    def to_image(self, src: str, src_fmt: str, dest: Path, disk_format: str) -> None:
        fmt = _QEMU_FORMATS.get(disk_format)
        if fmt is None or disk_format in ("iso", "ami"):
            raise BackendError(f"volumes cannot be uploaded as {disk_format!r} images")
        with qemu_errors():
            qemu_img.convert(src, dest, src_fmt, fmt, trusted=True, force_share=True)

    def _convert(self, src: Path, src_fmt: str, dest: Path, size_gb: int) -> dict:
        tmp = dest.with_suffix(".partial")
        try:
            with qemu_errors():
                # volumes and snapshots are ours; image data (from_image) was checked first
                qemu_img.convert(src, tmp, src_fmt, self.format, force_share=True)
                qemu_img.resize(tmp, self.format, f"{size_gb}G")
            tmp.rename(dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return {"path": str(dest), "format": self.format}

    # -- capacity

    def capacity(self) -> dict:
        st = os.statvfs(self.dir)
        total = self.capacity_gb or (st.f_blocks * st.f_frsize) // GiB
        free = min(total, (st.f_bavail * st.f_frsize) // GiB)
        return {"total_capacity_gb": total, "free_capacity_gb": free}

    def files(self) -> list[Path]:
        return sorted(p for p in self.dir.iterdir() if p.name.startswith(("volume-", "snapshot-")))
