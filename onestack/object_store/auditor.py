"""One audit pass: find corrupt copies and set them aside.

Every current ``.data`` file is read in full and its md5 and size compared
with its sidecar (the md5 is the ETag the proxy computed); a mismatch, or a
sidecar that cannot be read, moves the object's hash directory to
``quarantined/objects/<hash>``. Reads then skip this device for the object
and the replicator copies a good replica back. Databases get SQLite's
``PRAGMA quick_check``; bad ones go to ``quarantined/{containers,accounts}``
and are rebuilt by replication from their peers.

A mismatch is only taken for corruption when no other device holds an
identical copy: copies that agree with each other but not with their
metadata mean the recorded md5 is wrong, and quarantining them all would
lose the object (logged as an error instead).

The pass also re-indexes objects with X-Delete-At the expirer's index lacks.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from onestack.object_store.dbs import Db
from onestack.object_store.ring import Ring, RingDevice
from onestack.object_store.storage import (
    ACCOUNTS,
    CONTAINERS,
    OBJECTS,
    Corrupt,
    agrees_elsewhere,
    device_roots,
    file_md5,
    load_object,
    note_expiry,
    quarantine,
    scan,
)

log = logging.getLogger(__name__)


def hash_dirs(root: Path, kind: str) -> Iterator[tuple[int, Path]]:
    """(partition, hash dir) of every item of a kind on a device."""
    base = root / kind
    for part in _ls(base):
        if not part.isdigit():
            continue
        for suffix in _ls(base / part):
            for h in _ls(base / part / suffix):
                yield int(part), base / part / suffix / h


def _ls(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


class _Throttle:
    """Keep reading under ``rate`` bytes per second (0: no limit)."""

    def __init__(self, rate: float):
        self.rate, self.start, self.done = rate, time.monotonic(), 0

    def __call__(self, n: int) -> None:
        self.done += n
        if self.rate > 0:
            ahead = self.done / self.rate - (time.monotonic() - self.start)
            if ahead > 0:
                time.sleep(ahead)


def audit(ring: Ring, *, bytes_per_second: float = 0,
          stop: threading.Event | None = None) -> dict[str, int]:
    stats = dict.fromkeys(("devices", "devices_skipped", "objects", "bytes", "quarantined",
                           "bad_metadata", "dbs", "dbs_quarantined", "errors"), 0)
    throttle = _Throttle(bytes_per_second)
    for _, root in device_roots(ring, stats):
        for kind in (OBJECTS, CONTAINERS, ACCOUNTS):
            for part, hdir in hash_dirs(root, kind):
                if stop is not None and stop.is_set():
                    return stats
                try:
                    if kind == OBJECTS:
                        _object(root, part, hdir, stats, throttle, ring.devices)
                    else:
                        _database(root, kind, hdir, stats)
                except Exception as e:  # noqa: BLE001 (go on with the next item)
                    log.warning("auditor: %s: %r", hdir, e)
                    stats["errors"] += 1
    return stats


def _object(root: Path, part: int, hdir: Path, stats: dict, throttle: _Throttle,
            devices: list[RingDevice]) -> None:
    listing = scan(hdir)
    if listing.base is None or not listing.base.endswith(".data"):
        return
    try:
        info, sidecar = load_object(hdir, listing)
    except FileNotFoundError:
        return  # replaced while we looked
    except Corrupt as e:
        _quarantine(root, hdir, f"unreadable metadata ({e})", stats)
        return
    try:
        digest, size, ino = file_md5(hdir / listing.base, throttle)
    except FileNotFoundError:
        return
    stats["objects"] += 1
    stats["bytes"] += size
    why = None
    if size != sidecar.get("size"):
        why = f"size {size} instead of {sidecar.get('size')}"
    elif sidecar.get("md5") and digest != sidecar["md5"]:
        why = f"md5 {digest} instead of {sidecar['md5']}"
        if agrees_elsewhere(root, hdir / listing.base, digest, devices):
            stats["bad_metadata"] += 1
            return
    if why:
        now = scan(hdir)
        try:
            same = now.base == listing.base and os.stat(hdir / now.base).st_ino == ino
        except FileNotFoundError:
            same = False
        if same:  # not replaced by a newer write while we read
            _quarantine(root, hdir, why, stats)
    elif not info.deleted and not info.expired:
        note_expiry(root, part, hdir.name, info.metadata)


def _quarantine(root: Path, hdir: Path, why: str, stats: dict) -> None:
    log.warning("auditor: %s is corrupt: %s", hdir, why)
    if quarantine(root, OBJECTS, hdir):
        stats["quarantined"] += 1


def _database(root: Path, kind: str, hdir: Path, stats: dict) -> None:
    path = hdir / f"{hdir.name}.db"
    if not path.exists():
        return
    stats["dbs"] += 1
    try:
        result = Db(path).quick_check()
    except sqlite3.OperationalError as e:
        if "locked" in str(e) or "busy" in str(e):
            return  # busy, not broken: next pass
        result = str(e)
    except sqlite3.DatabaseError as e:  # "file is not a database", "malformed"
        result = str(e)
    if result != "ok":
        log.warning("auditor: database %s failed its check: %s", path, result)
        if quarantine(root, kind, hdir):
            stats["dbs_quarantined"] += 1
