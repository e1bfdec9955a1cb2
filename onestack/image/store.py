"""Where image data lives. The file store keeps each image as one file.

The interface is small on purpose (write a stream, read a range, delete) so an
object-store backend can take the file store's place; ``local_path`` lets
format inspection run ``qemu-img`` on stores that have a local file.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

CHUNK = 1024 * 1024


class Writer:
    """One upload in progress: ``write`` pieces, then ``commit`` or ``abort``."""

    def __init__(self, final: Path):
        self.final = final
        self.partial = final.with_name(f"{final.name}.{uuid.uuid4().hex[:8]}.partial")
        self._fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.size = 0

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self.size += len(data)

    @property
    def path(self) -> Path:
        """The data written so far (for inspection before commit)."""
        return self.partial

    def commit(self) -> str:
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1
        os.replace(self.partial, self.final)
        return self.final.name

    def abort(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.partial.unlink(missing_ok=True)


class FileStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        # leftovers of uploads cut short by a crash are never referenced
        for stale in self.root.glob("*.partial"):
            stale.unlink(missing_ok=True)

    def _path(self, location: str) -> Path:
        path = self.root / location
        if path.parent != self.root:  # locations are bare names we made ourselves
            raise ValueError(f"bad location {location!r}")
        return path

    def writer(self, name: str) -> Writer:
        """Start writing data stored as ``name`` (an image id, or ``<id>.staging``)."""
        return Writer(self._path(name))

    def read(self, location: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        with open(self._path(location), "rb", buffering=0) as f:
            f.seek(offset)
            left = length
            while left is None or left > 0:
                data = f.read(CHUNK if left is None else min(CHUNK, left))
                if not data:
                    return
                if left is not None:
                    left -= len(data)
                yield data

    def size(self, location: str) -> int:
        return self._path(location).stat().st_size

    def local_path(self, location: str) -> Path | None:
        return self._path(location)

    def exists(self, location: str) -> bool:
        return self._path(location).exists()

    def delete(self, location: str) -> None:
        self._path(location).unlink(missing_ok=True)

    def move(self, location: str, name: str) -> str:
        """Rename stored data (staging -> final) without copying it."""
        os.replace(self._path(location), self._path(name))
        return name
