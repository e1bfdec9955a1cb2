"""Backup stores: a volume's data cut into chunks, kept in the object store
(the default) or in a directory.

A backup is a set of objects under ``volume_<volume id>/<backup id>/`` in its
container: compressed chunks (``chunk-00000042``, ``chunk_size`` bytes of the
volume each) and a ``manifest`` naming, for every chunk of the volume, its
SHA-256 and the object that holds it. Chunks that are all zeros (the holes of
a sparse file) are not stored at all.

An incremental backup reads its parent's manifest and stores only the chunks
whose hash changed; its manifest points at the parent's objects for the rest.
So every manifest is complete (a restore reads one manifest), and a parent
cannot be deleted while a child needs its objects (the API refuses it, as
Cinder does).

Where the objects go is a small interface, ``ObjectTarget`` (put, get,
delete): ``DirectoryTarget`` (files) and ``SwiftTarget`` (the object store's
v1 API with the volume service's token, in the service project's account, as
Cinder's swift driver in single-user mode).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

import httpx

from onestack.common import qemu_img
from onestack.volume.backends.file import BackendError, qemu_errors

MiB = 1024**2
MANIFEST_VERSION = 1
UPLOADS = 4  # chunks stored (or fetched) at once


class ObjectTarget(Protocol):
    def put(self, container: str, name: str, data: bytes) -> None: ...
    def get(self, container: str, name: str) -> bytes: ...
    def delete(self, container: str, name: str) -> None: ...  # a missing object is not an error


def check_container(name: str) -> str:
    if not name or "/" in name or name in (".", "..") or len(name) > 255:
        raise BackendError(f"invalid backup container name {name!r}")
    return name


class DirectoryTarget:
    """Objects as files under ``<dir>/<container>/``."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)

    def _path(self, container: str, name: str) -> Path:
        return self.dir / check_container(container) / name

    def put(self, container: str, name: str, data: bytes) -> None:
        path = self._path(container, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        tmp = path.with_name(path.name + ".partial")
        tmp.write_bytes(data)
        tmp.rename(path)

    def get(self, container: str, name: str) -> bytes:
        try:
            return self._path(container, name).read_bytes()
        except FileNotFoundError:
            raise BackendError(f"backup object {container}/{name} is missing") from None

    def delete(self, container: str, name: str) -> None:
        path = self._path(container, name)
        path.unlink(missing_ok=True)
        for parent in (path.parent, path.parent.parent):  # tidy empty backup and volume folders
            try:
                parent.rmdir()
            except OSError:
                break


class SwiftTarget:
    """Objects in the object store, through its public API (``RestClient`` of ``/object-store``)."""

    def __init__(self, client):
        self.client = client

    def _url(self, container: str, name: str = "") -> str:
        c = self.client
        c.auth.token()  # makes sure the project id is known
        url = f"{c.url}/v1/AUTH_{c.auth.project_id}/{quote(check_container(container))}"
        return f"{url}/{quote(name)}" if name else url

    def _send(self, method: str, url: str, ok: tuple[int, ...], **kw):
        try:
            r = self.client.http.request(method, url, headers={"X-Auth-Token": self.client.auth.token()},
                                         timeout=300, **kw)
        except httpx.HTTPError as e:
            raise BackendError(f"the object store did not answer: {e}") from None
        if r.status_code not in ok:
            raise BackendError(f"object store: {method} {url.rsplit('/v1/', 1)[-1]} answered {r.status_code}")
        return r

    def put(self, container: str, name: str, data: bytes) -> None:
        try:
            self._send("PUT", self._url(container, name), (201,), content=data)
        except BackendError:  # the container is made on first use
            self._send("PUT", self._url(container), (201, 202))
            self._send("PUT", self._url(container, name), (201,), content=data)

    def get(self, container: str, name: str) -> bytes:
        return self._send("GET", self._url(container, name), (200,)).content

    def delete(self, container: str, name: str) -> None:
        self._send("DELETE", self._url(container, name), (204, 404))


class ChunkedStore:
    """Writes, reads and deletes backups in chunks on an ``ObjectTarget``."""

    def __init__(self, target: ObjectTarget, default_container: str = "volumebackups",
                 chunk_size: int = 4 * MiB, work_dir: Path | None = None):
        self.target = target
        self.default_container = default_container
        self.chunk_size = chunk_size
        self.work_dir = work_dir  # room for a raw copy of qcow2 data

    def container_of(self, container: str | None) -> str:
        return check_container(container or self.default_container)

    @staticmethod
    def prefix(volume_id: str, backup_id: str) -> str:
        return f"volume_{volume_id}/{backup_id}"

    def manifest(self, container: str, volume_id: str, backup_id: str) -> dict:
        raw = self.target.get(container, f"{self.prefix(volume_id, backup_id)}/manifest")
        data = json.loads(raw)
        if data.get("version") != MANIFEST_VERSION:
            raise BackendError(f"backup {backup_id}: manifest version {data.get('version')} is not understood")
        return data

    # -- backup

    def write(self, backup_id: str, volume_id: str, src: Path, fmt: str, container: str | None,
              parent: dict | None = None) -> dict:
        """Back ``src`` up; ``parent`` ({"id", "container"}) makes it incremental.
        Returns {"container", "object_count", "stored_bytes"}."""
        container = self.container_of(container)
        previous = self.manifest(parent["container"], volume_id, parent["id"])["chunks"] if parent else {}
        prefix = self.prefix(volume_id, backup_id)
        chunks: dict[str, list] = {}
        written: list[str] = []  # appended by the workers (list.append is atomic)
        stored = 0

        def store(index: int, data: bytes) -> int:
            """Bytes stored for this chunk (0: its parent's object serves)."""
            digest = hashlib.sha256(data).hexdigest()
            before = previous.get(str(index))
            if before and before[0] == digest:
                chunks[str(index)] = before  # unchanged since the parent: its object
                return 0
            name = f"{prefix}/chunk-{index:08d}"
            blob = zlib.compress(data, 1)
            self.target.put(container, name, blob)
            written.append(name)
            chunks[str(index)] = [digest, container, name]
            return len(blob)

        try:
            with _raw_view(Path(src), fmt, self.work_dir) as raw:
                size = raw.stat().st_size
                # hashing, compressing and uploading overlap on a few threads; at most
                # 2 x UPLOADS chunks are in memory at once
                with ThreadPoolExecutor(UPLOADS, thread_name_prefix="backup") as pool:
                    pending: deque = deque()
                    for index, data in _data_chunks(raw, self.chunk_size):
                        pending.append(pool.submit(store, index, data))
                        if len(pending) >= 2 * UPLOADS:
                            stored += pending.popleft().result()
                    for f in pending:
                        stored += f.result()
            manifest = {"version": MANIFEST_VERSION, "volume_id": volume_id, "backup_id": backup_id,
                        "parent_id": parent["id"] if parent else None, "size": size,
                        "chunk_size": self.chunk_size, "compression": "zlib", "chunks": chunks}
            self.target.put(container, f"{prefix}/manifest", json.dumps(manifest).encode())
            written.append(f"{prefix}/manifest")
        except BaseException:
            for name in written:  # no half-written backup stays behind
                try:
                    self.target.delete(container, name)
                except BackendError:
                    pass
            raise
        return {"container": container, "object_count": len(written), "stored_bytes": stored}

    # -- restore

    def read(self, backup_id: str, volume_id: str, container: str | None, dest: Path, fmt: str) -> None:
        """Overwrite ``dest`` (a volume file of format ``fmt``, at least the backup's size) with the backup."""
        manifest = self.manifest(self.container_of(container), volume_id, backup_id)
        dest = Path(dest)
        if fmt == "raw":
            self._write_raw(manifest, dest, dest.stat().st_size)
            return
        with tempfile.TemporaryDirectory(prefix="restore-", dir=self.work_dir) as tmp:
            raw = Path(tmp) / "raw"
            with qemu_errors():
                virtual = qemu_img.info(dest, fmt, trusted=True)["virtual-size"]
            raw.touch()
            self._write_raw(manifest, raw, virtual)
            with qemu_errors():
                qemu_img.convert(raw, dest, "raw", fmt, trusted=True, existing=True)

    def _write_raw(self, manifest: dict, dest: Path, size: int) -> None:
        if manifest["size"] > size:
            raise BackendError(f"the volume ({size} bytes) is smaller than the backup ({manifest['size']} bytes)")
        step = manifest["chunk_size"]

        def fetch(entry: list) -> bytes:
            digest, container, name = entry
            data = zlib.decompress(self.target.get(container, name))
            if hashlib.sha256(data).hexdigest() != digest:
                raise BackendError(f"backup object {container}/{name} is corrupt (SHA-256 mismatch)")
            return data

        with open(dest, "r+b") as f, ThreadPoolExecutor(UPLOADS, thread_name_prefix="restore") as pool:
            f.truncate(0)  # all zeros, sparse: only the stored chunks are written
            f.truncate(size)
            pending: deque = deque()

            def write_one() -> None:
                index, future = pending.popleft()
                f.seek(index * step)
                f.write(future.result())

            for index, entry in sorted(manifest["chunks"].items(), key=lambda x: int(x[0])):
                pending.append((int(index), pool.submit(fetch, entry)))
                if len(pending) >= 2 * UPLOADS:
                    write_one()
            while pending:
                write_one()

    # -- delete

    def delete(self, backup_id: str, volume_id: str, container: str | None) -> None:
        """Delete the objects this backup wrote (never its parent's)."""
        container = self.container_of(container)
        prefix = self.prefix(volume_id, backup_id)
        try:
            manifest = self.manifest(container, volume_id, backup_id)
        except BackendError:
            return  # never written (or already gone)
        for _digest, where, name in manifest["chunks"].values():
            if where == container and name.startswith(prefix + "/"):
                self.target.delete(where, name)
        self.target.delete(container, f"{prefix}/manifest")


@contextmanager
def _raw_view(src: Path, fmt: str, work_dir: Path | None):
    """The volume's data as a raw file: the file itself, or a raw copy of qcow2 data."""
    if fmt == "raw":
        yield src
        return
    with tempfile.TemporaryDirectory(prefix="backup-", dir=work_dir) as tmp:
        raw = Path(tmp) / "raw"
        with qemu_errors():
            qemu_img.convert(src, raw, fmt, "raw", trusted=True, force_share=True)
        yield raw


def _data_chunks(path: Path, chunk_size: int):
    """(index, bytes) of each chunk that is not all zeros; holes are skipped without reading."""
    zero = bytes(chunk_size)
    with open(path, "rb") as f:
        fd = f.fileno()
        size = os.fstat(fd).st_size
        offset = 0
        while offset < size:
            try:
                data_at = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole is left
                return
            index = data_at // chunk_size
            offset = index * chunk_size
            data = os.pread(fd, chunk_size, offset)
            if data and data != zero[:len(data)]:
                yield index, data
            offset += chunk_size
