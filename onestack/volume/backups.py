"""Backup stores: where a backup's data lives.

``DirectoryStore`` keeps each backup as one compressed qcow2 file under
``<backup_dir>/<container>/``; restoring converts it back onto the volume's
file. (An object-store store, chunks in the object service, is the other
driver Cinder has; it is not implemented yet.)
"""

from __future__ import annotations

import os
from pathlib import Path

from onestack.volume.backends.file import qemu_img


class DirectoryStore:
    def __init__(self, directory: Path, default_container: str = "volumebackups"):
        self.dir = Path(directory)
        self.default_container = default_container

    def container_of(self, container: str | None) -> str:
        return container or self.default_container

    def _path(self, backup_id: str, container: str | None) -> Path:
        name = self.container_of(container)
        if "/" in name or name in (".", ".."):
            raise ValueError(f"invalid container name {name!r}")
        return self.dir / name / f"backup-{backup_id}.qcow2"

    def write(self, backup_id: str, src: Path, fmt: str, container: str | None) -> int:
        dest = self._path(backup_id, container)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        tmp = dest.with_suffix(".partial")
        qemu_img("convert", "-U", "-c", "-f", fmt, "-O", "qcow2", str(src), str(tmp))
        tmp.rename(dest)
        return 1

    def read(self, backup_id: str, container: str | None, dest: Path, fmt: str) -> None:
        qemu_img("convert", "-n", "-f", "qcow2", "-O", fmt, str(self._path(backup_id, container)), str(dest))

    def delete(self, backup_id: str, container: str | None) -> None:
        self._path(backup_id, container).unlink(missing_ok=True)
