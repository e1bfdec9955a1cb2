"""``LocalStore``: a device directory of this host as the replicator and the
expirer see it (the ``DeviceStore`` interface, node.py). The node server offers
the same over HTTP for its devices (``RemoteStore`` in remote.py).

Object files are moved one at a time, each written in the device's ``tmp/``,
fsynced and renamed into its hash directory; the replicator sends a data file's
sidecar before the data, so a visible ``.data`` always has its metadata (a
sidecar whose data never came is an unfinished write, reclaimed after an hour).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from onestack.object_store import dbs
from onestack.object_store.node import DeviceStore, NodeUnavailable
from onestack.object_store.storage import (
    ACCOUNTS,
    CHUNK,
    CONTAINERS,
    EXPIRING,
    OBJECTS,
    TMP,
    Corrupt,
    cleanup,
    delete_at_of,
    hash_dir,
    install,
    is_object_file,
    load_object,
    mkdirs,
    note_expiry,
    scan,
    tmp_file,
    write_all,
)

TMP_AGE = 86400  # tmp files of writes that never finished
DB_CLASSES = {CONTAINERS: dbs.ContainerDb, ACCOUNTS: dbs.AccountDb}
KINDS = (OBJECTS, CONTAINERS, ACCOUNTS)
_HASH = re.compile(r"^[0-9a-f]{32}$")
_SUFFIX = re.compile(r"^[0-9a-f]{3}$")


def listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def rmdir(path: Path) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass  # not empty (a write arrived) or gone already


def check_names(part: int, suffix: str, hsh: str, name: str | None = None) -> None:
    """ValueError unless these name a file of a hash directory (nothing outside it)."""
    if (not isinstance(part, int) or part < 0 or not _HASH.match(hsh) or suffix != hsh[-3:]
            or (name is not None and not is_object_file(name))):
        raise ValueError("not a partition, suffix, hash and file name of an object")


class LocalStore(DeviceStore):
    """A device directory of this host (storage.py describes its layout)."""

    def __init__(self, device):
        self.device = device
        self.name = device.name
        self.root = Path(device.path)

    def __repr__(self) -> str:
        return f"LocalStore({self.name}, {self.root})"

    def available(self) -> bool:
        if os.path.isdir(self.root):
            return True
        dbs.forget(self.root)  # a lost disk: let go of its database files
        return False

    def _check(self) -> None:
        if not os.path.isdir(self.root):
            raise NodeUnavailable(f"device {self.name} ({self.root}) is not available")

    def clean_tmp(self) -> None:
        cutoff = time.time() - TMP_AGE
        for name in listdir(self.root / TMP):
            path = self.root / TMP / name
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                pass

    def partitions(self, kind: str) -> list[int]:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        self._check()
        return sorted(int(n) for n in listdir(self.root / kind) if n.isdigit())

    # -- objects -------------------------------------------------------------------------

    def _pdir(self, part: int, suffix: str | None = None) -> Path:
        """A partition's (or one of its suffixes') directory; ValueError for anything else."""
        if not isinstance(part, int) or part < 0 or (suffix is not None and not _SUFFIX.match(suffix)):
            raise ValueError("not a partition and suffix")
        pdir = self.root / OBJECTS / str(part)
        return pdir if suffix is None else pdir / suffix

    def _suffix(self, sdir: Path, reclaim_before: float | None,
                files: list[Path] | None = None) -> str | None:
        """md5 of the names of the files that count in a suffix (None: none do)."""
        md5, seen = hashlib.md5(usedforsecurity=False), False
        for h in listdir(sdir):
            hdir = sdir / h
            listing = cleanup(hdir, reclaim_before) if reclaim_before is not None else scan(hdir)
            kept = listing.kept
            if not kept:
                if reclaim_before is not None:
                    rmdir(hdir)
                continue
            seen = True
            for name in kept:
                md5.update(f"{h}/{name}\n".encode())
                if files is not None:
                    files.append(hdir / name)
        return md5.hexdigest() if seen else None

    def suffix_hashes(self, part: int, reclaim_before: float | None = None) -> dict[str, str]:
        self._check()
        pdir = self._pdir(part)
        out = {}
        for suffix in listdir(pdir):
            digest = self._suffix(pdir / suffix, reclaim_before)
            if digest is not None:
                out[suffix] = digest
            elif reclaim_before is not None:
                rmdir(pdir / suffix)
        if not out and reclaim_before is not None:
            rmdir(pdir)
        return out

    def hash_listings(self, part: int, suffix: str) -> dict[str, tuple[str | None, str | None]]:
        self._check()
        sdir = self._pdir(part, suffix)
        out = {}
        for h in listdir(sdir):
            listing = scan(sdir / h)
            if listing.base or listing.meta:
                out[h] = (listing.base, listing.meta)
        return out

    def read_file(self, part: int, suffix: str, hsh: str, name: str) -> Iterator[bytes]:
        return self.open_file(part, suffix, hsh, name)[1]

    def open_file(self, part: int, suffix: str, hsh: str, name: str) -> tuple[int, Iterator[bytes]]:
        """(size, pieces) of a file of an object (FileNotFoundError if it is not there)."""
        check_names(part, suffix, hsh, name)
        self._check()
        f = open(hash_dir(self.root, OBJECTS, part, hsh) / name, "rb")  # noqa: SIM115 (closed by _pieces)
        return os.fstat(f.fileno()).st_size, _pieces(f)

    def install_file(self, part: int, suffix: str, hsh: str, name: str,
                     data: Iterable[bytes]) -> None:
        check_names(part, suffix, hsh, name)
        tmp = tmp_file(self.root)
        hdir = hash_dir(self.root, OBJECTS, part, hsh)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                for piece in data:
                    write_all(fd, piece)
                os.fsync(fd)
            finally:
                os.close(fd)
            install(self.root, hdir, [(name, tmp)])
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        listing = cleanup(hdir)
        try:
            loaded = load_object(hdir, listing)
        except (FileNotFoundError, Corrupt):  # (the auditor judges bad files; the index is a hint)
            loaded = None
        if loaded and not loaded[0].deleted:
            note_expiry(self.root, part, hsh, loaded[0].metadata)

    def remove_suffixes(self, part: int, digests: dict[str, str]) -> int:
        self._check()
        pdir, removed = self._pdir(part), 0
        for suffix, digest in digests.items():
            files: list[Path] = []
            if self._suffix(self._pdir(part, suffix), None, files) != digest:
                continue  # written to meanwhile: kept for the next pass
            for path in files:
                path.unlink(missing_ok=True)
            for hdir in {p.parent for p in files}:
                rmdir(hdir)
            rmdir(pdir / suffix)
            removed += 1
        rmdir(pdir)
        return removed

    # -- databases -----------------------------------------------------------------------

    def _db(self, kind: str, part: int, hsh: str) -> dbs.Db:
        if kind not in DB_CLASSES:
            raise ValueError(f"unknown database kind {kind!r}")
        check_names(part, hsh[-3:], hsh)
        return DB_CLASSES[kind](hash_dir(self.root, kind, part, hsh) / f"{hsh}.db")

    def databases(self, kind: str, part: int) -> list[str]:
        self._check()
        if kind not in DB_CLASSES or not isinstance(part, int) or part < 0:
            raise ValueError("not a database kind and partition")
        pdir = self.root / kind / str(part)
        out = []
        for suffix in listdir(pdir):
            found = [h for h in listdir(pdir / suffix) if (pdir / suffix / h / f"{h}.db").exists()]
            if not found:
                rmdir(pdir / suffix)
            out += found
        if not out:
            rmdir(pdir)
        return out

    def db_state(self, kind: str, part: int, hsh: str) -> dict | None:
        self._check()
        db = self._db(kind, part, hsh)
        try:
            return dbs.state(db)
        except FileNotFoundError:
            return None

    def db_rows(self, kind, part, hsh, remote_id, after, limit):
        self._check()
        return dbs.rows_after(self._db(kind, part, hsh), remote_id, after, limit)

    def db_synced(self, kind, part, hsh, remote_id, point) -> None:
        self._check()
        dbs.set_sync_point(self._db(kind, part, hsh), remote_id, point)

    def db_merge(self, kind, part, hsh, state, rows) -> tuple[str, int]:
        self._check()
        db = self._db(kind, part, hsh)
        changed = 0
        if state is not None:
            mkdirs(self.root, db.path.parent)
            mkdirs(self.root, self.root / TMP)
            db_id, changed = dbs.merge_state(db, self.root / TMP, state)
        else:
            db_id = db.identity()["id"]
        if rows:
            changed += db.merge_rows(tuple(r) for r in rows)
        return db_id, changed

    def db_reclaim(self, kind, part, hsh, before) -> bool:
        self._check()
        db = self._db(kind, part, hsh)
        if not db.reclaim(before):
            return False
        self._remove(db.path)  # deleted long ago; its peers drop theirs too
        return True

    def db_remove(self, kind, part, hsh) -> None:
        self._check()
        self._remove(self._db(kind, part, hsh).path)

    @staticmethod
    def _remove(path: Path) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        for d in (path.parent, path.parent.parent, path.parent.parent.parent):
            rmdir(d)

    # -- expiry ----------------------------------------------------------------------------

    def _entry(self, entry: str) -> tuple[int, Path] | None:
        try:
            at, part, hsh = entry.split(".")
            check_names(int(part), hsh[-3:], hsh)
            return int(at), hash_dir(self.root, OBJECTS, int(part), hsh)
        except ValueError:
            return None

    def expiring_due(self, now: float) -> dict:
        self._check()
        out = {"due": [], "checked": 0, "removed": 0}
        for entry in listdir(self.root / EXPIRING):
            parsed = self._entry(entry)
            if parsed is not None and parsed[0] > now:
                break  # names sort by time (delete_at has a fixed width)
            found = None
            if parsed is not None:
                out["checked"] += 1
                found = still_due(parsed[1], parsed[0])
            if found is None:
                out["removed"] += _unlink(self.root / EXPIRING / entry)
            else:
                out["due"].append([entry, found[0], parsed[0], found[1]])
        return out

    def expiring_done(self, entries: list[str]) -> int:
        self._check()
        removed = 0
        for entry in entries:
            parsed = self._entry(entry)
            if parsed is None or still_due(parsed[1], parsed[0]) is None:
                removed += _unlink(self.root / EXPIRING / os.path.basename(entry))
        return removed


def still_due(hdir: Path, delete_at: int) -> tuple[str, str] | None:
    """The object's name and newest timestamp if it is live and expires at ``delete_at``."""
    try:
        loaded = load_object(hdir, scan(hdir))
    except (FileNotFoundError, Corrupt):
        return None
    if loaded is None or loaded[0].deleted or delete_at_of(loaded[0].metadata) != delete_at:
        return None
    name = loaded[1].get("name")
    return (name, loaded[0].timestamp) if name else None


def _unlink(path: Path) -> int:
    try:
        path.unlink()
        return 1
    except FileNotFoundError:
        return 0


def _pieces(f) -> Iterator[bytes]:
    with f:
        while data := f.read(CHUNK):
            yield data


Stores = Callable[[object], DeviceStore | None]  # a ring device -> its store (None: unreachable)


def local_stores(device) -> DeviceStore | None:
    """The store of a device of this host; None for another host's."""
    return LocalStore(device) if device.host == "local" else None
