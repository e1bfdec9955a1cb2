"""``LocalNode``: one storage device directory of this host, as a ``Node``.

Layout of a device (``h`` is the ring's hash of the name, ``p`` its partition)::

    objects/<p>/<h[-3:]>/<h>/<ts>.data        object bytes, nothing else
                            /<ts>.data.json   its metadata: name, size, md5, headers
                            /<ts>.meta        a later POST's metadata (JSON)
                            /<ts>.ts          a tombstone (JSON: name, timestamp)
    containers/<p>/<h[-3:]>/<h>/<h>.db        container database (dbs.py)
    accounts/<p>/<h[-3:]>/<h>/<h>.db          account database
    tmp/                                      writes in progress
    quarantined/{objects,containers,accounts}/<h>   what the auditor set aside
    expiring/<delete_at>.<p>.<h>              index of objects with X-Delete-At

Every file is written in ``tmp/``, fsynced, then renamed into place; the
sidecar goes in before the data, so a visible ``.data`` always has its
metadata. After a write the older files of the hash directory are removed:
the newest ``.data`` or ``.ts`` wins, and a ``.meta`` newer than the data
replaces its user metadata (Swift's "fast POST").

A device whose directory is missing is unavailable (``NodeUnavailable``):
nothing here creates a device directory, so a lost or unmounted disk never
fills the root filesystem.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from onestack.object_store.dbs import AccountDb, ContainerDb, Db, fsync_dir, norm
from onestack.object_store.node import (
    AccountRow,
    ContainerRow,
    DbInfo,
    Node,
    NodeUnavailable,
    NotEmpty,
    ObjectInfo,
    ObjectReader,
    ObjectWriter,
)

log = logging.getLogger(__name__)

OBJECTS, CONTAINERS, ACCOUNTS = "objects", "containers", "accounts"
TMP, QUARANTINED, EXPIRING = "tmp", "quarantined", "expiring"
CHUNK = 1024 * 1024
VERIFY_AT_OPEN = CHUNK  # objects up to this size are checked against their md5 when opened
_FILE = re.compile(r"^(\d+\.\d+)\.(data|data\.json|meta|ts)$")
_MD5 = re.compile(r"^[0-9a-f]{32}$")
# data-file metadata that a POST does not replace (Swift's reserved and system metadata)
_KEPT_BY_POST = {"content-length", "etag", "x-static-large-object", "content-type"}


class Corrupt(Exception):
    """A file of a hash directory cannot be trusted (the caller quarantines it).
    ``digest``: the md5 the data really has, when that was the problem."""

    def __init__(self, message: str, digest: str | None = None):
        super().__init__(message)
        self.digest = digest


# -- paths and atomic writes ---------------------------------------------------------


def hash_dir(root: Path, kind: str, part: int, hsh: str) -> Path:
    return root / kind / str(part) / hsh[-3:] / hsh


def mkdirs(root: Path, path: Path) -> None:
    """Create ``path`` and its missing parents below ``root`` -- never ``root``
    itself: if the device directory is gone the device is unavailable."""
    if path == root or root not in path.parents:
        if not os.path.isdir(path):
            raise NodeUnavailable(f"device directory {root} is missing")
        return
    try:
        os.mkdir(path)
        return
    except FileExistsError:
        return
    except FileNotFoundError:
        mkdirs(root, path.parent)
    try:
        os.mkdir(path)
    except FileExistsError:
        pass


def device_roots(ring, stats: dict[str, int], on_missing=None) -> Iterator[tuple[object, Path]]:
    """This host's devices whose directory is there, as (device, root); counts
    ``devices`` and ``devices_skipped`` in ``stats`` (the agents' passes)."""
    for dev in ring.devices:
        if dev.host != "local":  # other hosts' devices are their own agent's
            continue
        root = Path(dev.path)
        if not os.path.isdir(root):
            stats["devices_skipped"] += 1
            if on_missing is not None:
                on_missing(dev, root)
            continue
        stats["devices"] += 1
        yield dev, root


def tmp_file(root: Path, content: bytes | None = None) -> Path:
    """A new file in the device's tmp/ (with ``content``, fsynced)."""
    mkdirs(root, root / TMP)
    path = root / TMP / uuid.uuid4().hex
    if content is not None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            write_all(fd, content)
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


def install(root: Path, hdir: Path, files: list[tuple[str, Path]]) -> None:
    """Rename finished tmp files into the hash directory, in the given order."""
    mkdirs(root, hdir)
    for name, tmp in files:
        try:
            os.replace(tmp, hdir / name)
        except FileNotFoundError:
            # the directory was removed under us (replicator tidying): once more
            mkdirs(root, hdir)
            os.replace(tmp, hdir / name)
    fsync_dir(hdir)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def is_object_file(name: str) -> bool:
    """A name a hash directory may hold (``<ts>.data``, ``.data.json``, ``.meta``, ``.ts``)."""
    return bool(_FILE.match(name))


def file_md5(path: Path, throttle=None) -> tuple[str, int, int]:
    """(md5 hex, size, inode) of a file; ``throttle(n)`` after each piece."""
    md5, size = hashlib.md5(usedforsecurity=False), 0
    with open(path, "rb") as f:
        ino = os.fstat(f.fileno()).st_ino
        while data := f.read(CHUNK):
            md5.update(data)
            size += len(data)
            if throttle is not None:
                throttle(len(data))
    return md5.hexdigest(), size, ino


def agrees_elsewhere(root: Path, path: Path, digest: str, devices) -> bool:
    """Does another local device hold the same file with these very bytes?
    Then the copies agree and their recorded md5 is what is wrong: setting
    them all aside would lose the object, so nobody quarantines them."""
    rel = path.relative_to(root)
    for dev in devices:
        other = Path(dev.path) / rel
        if dev.host != "local" or Path(dev.path) == root or not other.exists():
            continue
        try:
            if file_md5(other)[0] == digest:
                log.error("%s and %s agree (md5 %s) but not with their metadata: the "
                          "recorded md5 is wrong; the data is kept", path, other, digest)
                return True
        except OSError:
            continue
    return False


def quarantine(root: Path, kind: str, hdir: Path) -> Path | None:
    """Move a hash directory aside so reads and replication stop using it."""
    dest = root / QUARANTINED / kind / hdir.name
    try:
        mkdirs(root, dest.parent)
        if dest.exists():
            dest = dest.with_name(f"{hdir.name}-{uuid.uuid4().hex[:8]}")
        os.rename(hdir, dest)
    except FileNotFoundError:
        return None
    log.warning("quarantined %s to %s", hdir, dest)
    return dest


# -- the files of one object -----------------------------------------------------------


@dataclass
class Listing:
    """What a hash directory holds once obsolete files are set apart."""

    base: str | None = None  # newest .data (with its sidecar) or .ts
    meta: str | None = None  # newest .meta newer than a .data base
    obsolete: tuple[str, ...] = ()

    @property
    def kept(self) -> list[str]:
        names = [n for n in (self.base, self.meta) if n]
        if self.base and self.base.endswith(".data"):
            names.append(self.base + ".json")
        return sorted(names)


def scan(hdir: Path, reclaim_before: float | None = None) -> Listing:
    """Sort a hash directory's files into newest base, newest meta and obsolete.

    With ``reclaim_before`` (the replicator's pass) tombstones older than that
    and sidecars orphaned for an hour are obsolete too."""
    try:
        names = os.listdir(hdir)
    except (FileNotFoundError, NotADirectoryError):
        return Listing()
    present = set(names)
    files = sorted(((m[1], m[2], n) for n in names if (m := _FILE.match(n))), reverse=True)
    obsolete = [n for n in names if not _FILE.match(n)]
    base = meta = None
    for _, ext, name in files:
        if ext == "data.json":
            continue  # decided with its .data below
        if base is not None:
            obsolete.append(name)  # older than the newest data or tombstone
        elif ext == "ts" or (ext == "data" and name + ".json" in present):
            base = name
        elif ext == "data":
            obsolete.append(name)  # data without its metadata cannot be served
        elif meta is None:
            meta = name
        else:
            obsolete.append(name)
    if meta and base and base.endswith(".ts"):
        obsolete.append(meta)  # metadata of deleted data
        meta = None
    # (a .meta without any base is kept: a POST that got here before its data)
    base_ts = base[:16] if base else ""
    for ts, ext, name in files:
        if ext != "data.json" or name == f"{base}.json":
            continue
        if ts <= base_ts:
            obsolete.append(name)
        elif reclaim_before is not None and _age(hdir / name) > 3600:
            obsolete.append(name)  # a write that died between its two renames
        # else: a write in progress (its .data is renamed in next)
    if (reclaim_before is not None and base and base.endswith(".ts")
            and float(base[:16]) < reclaim_before):
        obsolete.append(base)  # a tombstone replicated for long enough
        base = None
    return Listing(base, meta, tuple(obsolete))


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def cleanup(hdir: Path, reclaim_before: float | None = None) -> Listing:
    listing = scan(hdir, reclaim_before)
    for name in listing.obsolete:
        try:
            os.unlink(hdir / name)
        except (FileNotFoundError, IsADirectoryError):
            pass
    return Listing(listing.base, listing.meta)


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as e:
        raise Corrupt(f"{path}: {e}") from None
    if not isinstance(data, dict):
        raise Corrupt(f"{path}: not an object")
    return data


def load_object(hdir: Path, listing: Listing) -> tuple[ObjectInfo, dict] | None:
    """The ObjectInfo of a listing, and the data sidecar (``{}`` for tombstones)."""
    if listing.base is None:
        return None
    ts = listing.base[:16]
    if listing.base.endswith(".ts"):
        return ObjectInfo(timestamp=ts, deleted=True), {}
    sidecar = read_json(hdir / (listing.base + ".json"))
    sidecar["file"] = listing.base
    metadata = dict(sidecar.get("metadata") or {})
    if listing.meta:
        posted = read_json(hdir / listing.meta).get("metadata") or {}
        metadata = {k: v for k, v in metadata.items()
                    if k.lower() in _KEPT_BY_POST or k.lower().startswith("x-object-sysmeta-")}
        for k, v in posted.items():
            for old in [o for o in metadata if o.lower() == k.lower()]:
                del metadata[old]
            metadata[k] = v
        ts = listing.meta[:16]
    metadata["X-Timestamp"] = ts
    expired = False
    delete_at = delete_at_of(metadata)
    if delete_at is not None and delete_at <= time.time():
        expired = True
    return ObjectInfo(timestamp=ts, metadata=metadata, size=int(sidecar.get("size", 0)),
                      expired=expired), sidecar


def delete_at_of(metadata: dict[str, str]) -> int | None:
    for k, v in metadata.items():
        if k.lower() == "x-delete-at":
            try:
                return int(v)
            except (TypeError, ValueError):
                return None
    return None


def note_expiry(root: Path, part: int, hsh: str, metadata: dict[str, str]) -> None:
    """Index an object with X-Delete-At so the expirer need not read every sidecar."""
    delete_at = delete_at_of(metadata)
    if delete_at is None:
        return
    mkdirs(root, root / EXPIRING)
    entry = root / EXPIRING / f"{delete_at:010d}.{part}.{hsh}"
    if not entry.exists():
        entry.touch()


# -- writer and reader -----------------------------------------------------------------


class LocalObjectWriter(ObjectWriter):
    def __init__(self, node: LocalNode, part: int, hsh: str, name: str, timestamp: str):
        self.node, self.part, self.hsh, self.name = node, part, hsh, name
        self.timestamp = norm(timestamp)
        self.size = 0
        self._tmp = tmp_file(node.root)
        self._fd: int | None = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)

    def write(self, data: bytes) -> None:
        if self._fd is None:
            raise ValueError("the writer is closed")
        try:
            write_all(self._fd, data)
        except OSError as e:
            self.abort()
            raise NodeUnavailable(f"device {self.node.name}: {e}") from None
        self.size += len(data)

    def commit(self, metadata: dict[str, str]) -> None:
        if self._fd is None:
            raise ValueError("the writer is closed")
        root = self.node.root
        try:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
            etag = str(metadata.get("ETag", "")).strip('"').lower()
            sidecar = {"name": self.name, "timestamp": self.timestamp, "size": self.size,
                       "md5": etag if _MD5.match(etag) else None, "metadata": dict(metadata)}
            side_tmp = tmp_file(root, json.dumps(sidecar).encode())
            hdir = hash_dir(root, OBJECTS, self.part, self.hsh)
            install(root, hdir, [(f"{self.timestamp}.data.json", side_tmp),
                                 (f"{self.timestamp}.data", self._tmp)])
            cleanup(hdir)
            note_expiry(root, self.part, self.hsh, metadata)
        except (OSError, NodeUnavailable) as e:
            self.abort()
            raise NodeUnavailable(f"device {self.node.name}: {e}") from None

    def abort(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._tmp.unlink(missing_ok=True)

    def __del__(self):  # a writer dropped without commit or abort leaves nothing behind
        if getattr(self, "_fd", None) is not None:
            self.abort()


class LocalObjectReader(ObjectReader):
    """An open data file; full reads are checked against the stored md5.

    Small objects are checked when opened (a corrupt copy is quarantined and the
    proxy reads another replica); a full read of a larger one is checked before
    its last piece is handed out, and raises ``NodeUnavailable`` on a mismatch."""

    def __init__(self, node: LocalNode, hdir: Path, info: ObjectInfo, sidecar: dict):
        self.node, self.hdir, self.info = node, hdir, info
        self._md5 = sidecar.get("md5") if node.verify_reads else None
        self.path = hdir / sidecar["file"]
        self._f = open(self.path, "rb")  # noqa: SIM115
        self._ino = os.fstat(self._f.fileno()).st_ino
        self._head: bytes | None = None
        try:
            if os.fstat(self._f.fileno()).st_size != info.size:
                raise Corrupt(f"{hdir}: data size differs from its metadata")
            if self._md5 and info.size <= VERIFY_AT_OPEN:
                self._head = self._f.read()
                self._verify(hashlib.md5(self._head, usedforsecurity=False))
                self._f.close()  # all in memory: no descriptor held while the client reads
        except BaseException:
            self._f.close()
            raise

    def _verify(self, md5) -> None:
        if self._md5 and md5.hexdigest() != self._md5:
            raise Corrupt(f"{self.hdir}: data does not match its md5", md5.hexdigest())

    def read(self, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        size = self.info.size
        end = size if length is None else min(size, offset + length)
        if self._head is not None:
            for i in range(offset, end, CHUNK):
                yield self._head[i:min(end, i + CHUNK)]
            return
        check = offset == 0 and end == size and self._md5
        md5 = hashlib.md5(usedforsecurity=False) if check else None
        pos, held = offset, None
        while pos < end:
            try:
                data = os.pread(self._f.fileno(), min(CHUNK, end - pos), pos)
            except OSError as e:
                raise NodeUnavailable(f"device {self.node.name}: {e}") from None
            if not data:
                break
            pos += len(data)
            if md5 is not None:
                md5.update(data)
            if held is not None:
                yield held
            held = data
        if md5 is not None:
            try:
                if pos != end:
                    raise Corrupt(f"{self.hdir}: data is shorter than its metadata says")
                self._verify(md5)
            except Corrupt as e:
                self.node._set_aside(self.hdir, self.path, self._ino, e)
                raise NodeUnavailable(f"device {self.node.name}: {e}") from None
        if held is not None:
            yield held

    def close(self) -> None:
        self._f.close()


# -- the node ---------------------------------------------------------------------------


def _guard(fn):
    """Device problems become NodeUnavailable (the proxy then tries another)."""

    @functools.wraps(fn)
    def wrapper(self: LocalNode, *args, **kw):
        self.check()
        try:
            return fn(self, *args, **kw)
        except (NodeUnavailable, NotEmpty):
            raise
        except sqlite3.DatabaseError as e:
            raise NodeUnavailable(f"device {self.name}: database error: {e}") from None
        except OSError as e:
            self.check()
            raise NodeUnavailable(f"device {self.name}: {e}") from None

    return wrapper


class LocalNode(Node):
    """A device directory of this host (see the module docstring for its layout).

    ``LocalNode(device)`` takes the hash secret from the ring the device came
    from; pass ``ring`` when the device was made by hand. The node server has no
    ring: it passes ``hash_path`` (the proxy sent the name's hash) and ``peers``,
    its own devices (whose copies may vouch for a copy, see ``agrees_elsewhere``)."""

    # check full reads against the stored md5 (as Swift's object server does);
    # costs one md5 per byte read (~700 MB/s a core)
    verify_reads = True

    def __init__(self, device, ring=None, *, hash_path=None, peers=None):
        ring = ring if ring is not None else getattr(device, "_ring", None)
        if ring is None and (hash_path is None or peers is None):
            raise ValueError("LocalNode needs the ring (for its hash prefix and suffix)")
        self.device = device
        self.id, self.name, self.zone = device.id, device.name, device.zone
        self.root = Path(device.path)
        self._hash = hash_path or ring.hash_path
        self.peers = peers if peers is not None else ring.devices

    def __repr__(self) -> str:
        return f"LocalNode({self.name}, {self.root})"

    def check(self) -> None:
        if not os.path.isdir(self.root):
            raise NodeUnavailable(f"device {self.name} ({self.root}) is not available")

    # -- objects -----------------------------------------------------------------------

    def _obj(self, part: int, account: str, container: str, obj: str) -> tuple[str, Path]:
        hsh = self._hash(account, container, obj)
        return hsh, hash_dir(self.root, OBJECTS, part, hsh)

    def _load(self, hdir: Path) -> tuple[ObjectInfo, dict] | None:
        for _ in range(3):  # a file may vanish between listing and reading (newer write)
            try:
                return load_object(hdir, scan(hdir))
            except FileNotFoundError:
                continue
            except Corrupt as e:
                log.warning("device %s: %s", self.name, e)
                quarantine(self.root, OBJECTS, hdir)
                return None
        return None

    def _set_aside(self, hdir: Path, path: Path, ino: int | None, why: Corrupt) -> None:
        """Quarantine a copy that failed a check, unless a newer write replaced
        it meanwhile or another device's copy agrees with it (bad metadata)."""
        log.warning("device %s: %s", self.name, why)
        if why.digest and agrees_elsewhere(self.root, path, why.digest, self.peers):
            return
        if ino is not None:
            try:
                if os.stat(path).st_ino != ino:
                    return
            except FileNotFoundError:
                return
        quarantine(self.root, OBJECTS, hdir)

    @_guard
    def object_writer(self, part, account, container, obj, timestamp) -> ObjectWriter:
        hsh, _ = self._obj(part, account, container, obj)
        return LocalObjectWriter(self, part, hsh, f"/{account}/{container}/{obj}", timestamp)

    @_guard
    def object_info(self, part, account, container, obj) -> ObjectInfo | None:
        loaded = self._load(self._obj(part, account, container, obj)[1])
        return loaded[0] if loaded else None

    @_guard
    def object_reader(self, part, account, container, obj) -> ObjectReader | None:
        hdir = self._obj(part, account, container, obj)[1]
        for _ in range(3):
            loaded = self._load(hdir)
            if loaded is None or loaded[0].deleted or loaded[0].expired:
                return None
            try:
                return LocalObjectReader(self, hdir, *loaded)
            except FileNotFoundError:
                continue  # replaced by a newer write while opening
            except Corrupt as e:
                self._set_aside(hdir, hdir / loaded[1]["file"], None, e)
                return None
        return None

    @_guard
    def object_post(self, part, account, container, obj, timestamp, metadata) -> bool:
        hsh, hdir = self._obj(part, account, container, obj)
        loaded = self._load(hdir)
        if loaded is None or loaded[0].deleted or loaded[0].expired:
            return False
        ts = norm(timestamp)
        body = {"name": f"/{account}/{container}/{obj}", "timestamp": ts, "metadata": metadata}
        install(self.root, hdir, [(f"{ts}.meta", tmp_file(self.root, json.dumps(body).encode()))])
        cleanup(hdir)
        note_expiry(self.root, part, hsh, metadata)
        return True

    @_guard
    def object_delete(self, part, account, container, obj, timestamp) -> bool:
        _, hdir = self._obj(part, account, container, obj)
        loaded = self._load(hdir)
        live = loaded is not None and not loaded[0].deleted and not loaded[0].expired
        ts = norm(timestamp)
        body = {"name": f"/{account}/{container}/{obj}", "timestamp": ts}
        install(self.root, hdir, [(f"{ts}.ts", tmp_file(self.root, json.dumps(body).encode()))])
        cleanup(hdir)
        return live

    # -- databases -----------------------------------------------------------------------

    def _db(self, cls: type[Db], kind: str, part: int, *names: str) -> Db:
        hsh = self._hash(*names)
        return cls(hash_dir(self.root, kind, part, hsh) / f"{hsh}.db")

    def _create(self, db: Db, account: str, container: str | None, timestamp: str) -> bool:
        mkdirs(self.root, db.path.parent)
        mkdirs(self.root, self.root / TMP)
        return db.create(self.root / TMP, account, container, timestamp)

    @_guard
    def container_put(self, part, account, container, timestamp, metadata) -> bool:
        db = self._db(ContainerDb, CONTAINERS, part, account, container)
        created = not db.exists() and self._create(db, account, container, timestamp)
        if not created:
            was_deleted = db.info().deleted
            db.update_timestamps(put=timestamp)
            created = was_deleted and not db.info().deleted
        db.merge_metadata(metadata)
        return created

    @_guard
    def container_info(self, part, account, container) -> DbInfo | None:
        db = self._db(ContainerDb, CONTAINERS, part, account, container)
        return db.info() if db.exists() else None

    @_guard
    def container_post(self, part, account, container, metadata) -> bool:
        db = self._db(ContainerDb, CONTAINERS, part, account, container)
        if not db.exists() or db.info().deleted:
            return False
        db.merge_metadata(metadata)
        return True

    @_guard
    def container_delete(self, part, account, container, timestamp) -> bool:
        db = self._db(ContainerDb, CONTAINERS, part, account, container)
        if not db.exists():
            return False
        info = db.info()
        if info.deleted:
            return False
        if info.object_count:
            raise NotEmpty(f"container {container} holds {info.object_count} objects")
        db.update_timestamps(delete=timestamp)
        return True

    @_guard
    def container_update(self, part, account, container, row: ContainerRow) -> None:
        db = self._db(ContainerDb, CONTAINERS, part, account, container)
        if db.exists():
            db.merge_rows([(row.name, row.timestamp, row.size, row.content_type, row.etag,
                            row.deleted)])

    @_guard
    def container_list(self, part, account, container, *, limit, marker="", end_marker="",
                       prefix="", delimiter="", reverse=False, path=None):
        db = self._db(ContainerDb, CONTAINERS, part, account, container)
        if not db.exists():
            return None  # not []: another replica has the listing
        return db.listing(limit=limit, marker=marker, end_marker=end_marker, prefix=prefix,
                          delimiter=delimiter, reverse=reverse, path=path)

    @_guard
    def account_put(self, part, account, timestamp) -> bool:
        db = self._db(AccountDb, ACCOUNTS, part, account)
        if db.exists():
            return False
        return self._create(db, account, None, timestamp)

    @_guard
    def account_info(self, part, account) -> DbInfo | None:
        db = self._db(AccountDb, ACCOUNTS, part, account)
        return db.info() if db.exists() else None

    @_guard
    def account_post(self, part, account, metadata) -> bool:
        db = self._db(AccountDb, ACCOUNTS, part, account)
        if not db.exists():
            return False
        db.merge_metadata(metadata)
        return True

    @_guard
    def account_update(self, part, account, row: AccountRow) -> None:
        db = self._db(AccountDb, ACCOUNTS, part, account)
        if db.exists():
            # the report's arrival time orders stats reports (rows carry no stats timestamp)
            db.merge_rows([(row.name, row.put_timestamp, row.delete_timestamp, row.object_count,
                            row.bytes_used, row.deleted, norm(time.time()))])

    @_guard
    def account_list(self, part, account, *, limit, marker="", end_marker="", prefix="",
                     delimiter="", reverse=False):
        db = self._db(AccountDb, ACCOUNTS, part, account)
        if not db.exists():
            return None  # not []: another replica has the listing
        return db.listing(limit=limit, marker=marker, end_marker=end_marker, prefix=prefix,
                          delimiter=delimiter, reverse=reverse)
