"""Volume drivers: where a backend keeps volume data, and the interface the
volume agent needs from one (``VolumeDriver``). ``file`` is the only driver
today; ``by_name`` is where another (LVM, Ceph RBD) would be registered. See
docs/ARCHITECTURE.md, "Volume drivers", for what each method must guarantee.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from onestack.volume.backends.file import FileBackend


class VolumeDriver(Protocol):
    """What the agent calls. Every method blocks (the agent runs it on a thread); a
    failure raises ``BackendError`` with a message fit for a volume's fault. A
    *location* is the driver's own name for a volume's or snapshot's data (the file
    backend: a path) and is stored as ``provider_location``; ``fmt`` says how to read it."""

    format: str  # the format of data this driver writes: "raw" or "qcow2"

    def create(self, volume_id: str, size_gb: int) -> dict: ...  # {"path": location, "format": fmt}
    def delete(self, path: str | None) -> None: ...  # gone, or never made: not an error
    def extend(self, path: str, fmt: str, new_size_gb: int) -> None: ...
    def copy(self, src: str, src_fmt: str, volume_id: str, size_gb: int) -> dict: ...  # clone, from snapshot
    def snapshot(self, src: str, src_fmt: str, snapshot_id: str) -> dict: ...
    def from_image(self, data: Path, disk_format: str, volume_id: str, size_gb: int) -> dict: ...
    def to_image(self, src: str, src_fmt: str, dest: Path, disk_format: str) -> None: ...
    def capacity(self) -> dict: ...  # {"total_capacity_gb", "free_capacity_gb"}


def by_name(name: str, settings) -> VolumeDriver:
    """The driver the ``volume.backend`` setting names."""
    if name == "file":
        return FileBackend(settings.volumes_dir, settings.volume_format, settings.capacity_gb)
    raise RuntimeError(f"volume backend {name!r} is not available (use 'file')")
