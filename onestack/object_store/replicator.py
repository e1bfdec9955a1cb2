"""One replication pass: make every replica of every partition whole again.

For each partition found on each local device, the device pushes what it has
to the partition's other primary devices (the ring's), as Swift's replicators
do:

* objects: each suffix directory gets a hash of the names of the files that
  count in it (newest data or tombstone, newer metadata); only suffixes whose
  hashes differ are walked, and a file is copied when the peer has nothing as
  new (Swift keeps these hashes in hashes.pkl; recomputing them each pass is
  cheap at this scale);
* databases: rows newer than the last push to that peer are merged into it,
  newest wins (dbs.replicate), the peer's file created if it has none;
* a partition on a device that is not one of its primaries (a handoff, or a
  device the ring moved it away from) is pushed to all primaries and removed
  once every primary took it.

Every device pushes, so a device that lost its data (a replaced, empty disk)
is refilled by its peers; one whose directory is missing is skipped. The same
pass reclaims tombstones older than ``reclaim_age`` and stale tmp files.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from pathlib import Path

from onestack.object_store import dbs
from onestack.object_store.ring import Ring, RingDevice
from onestack.object_store.storage import (
    ACCOUNTS,
    CONTAINERS,
    OBJECTS,
    TMP,
    cleanup,
    copy_file,
    device_roots,
    install,
    load_object,
    mkdirs,
    note_expiry,
    scan,
)

log = logging.getLogger(__name__)

RECLAIM_AGE = 7 * 86400  # tombstones kept this long (Swift's reclaim_age)
TMP_AGE = 86400  # tmp files of writes that never finished


def _missing(dev: RingDevice, root: Path) -> None:
    log.warning("replicator: device %s (%s) is missing; skipped", dev.name, root)
    dbs.forget(root)  # let go of deleted database files


def available(dev: RingDevice) -> bool:
    # other hosts' devices will be reached through their agent; not yet
    return dev.host == "local" and os.path.isdir(dev.path)


def partitions(root: Path, kind: str) -> list[int]:
    try:
        return sorted(int(n) for n in os.listdir(root / kind) if n.isdigit())
    except FileNotFoundError:
        return []


def _listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _rmdir(path: Path) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass  # not empty (a write arrived) or gone already


def replicate(ring: Ring, *, reclaim_age: float = RECLAIM_AGE,
              stop: threading.Event | None = None) -> dict[str, int]:
    stats = dict.fromkeys(("devices", "devices_skipped", "partitions", "suffixes_synced",
                           "objects_copied", "dbs_merged", "rows_merged", "handoffs_removed",
                           "reclaimed", "errors"), 0)
    reclaim_before = time.time() - reclaim_age
    seen: dict[tuple[str, int], dict[str, str]] = {}  # (device path, part) -> suffix hashes
    for dev, root in device_roots(ring, stats, _missing):
        _clean_tmp(root)
        for kind in (OBJECTS, CONTAINERS, ACCOUNTS):
            for part in partitions(root, kind):
                if stop is not None and stop.is_set():
                    return stats
                stats["partitions"] += 1
                try:
                    if kind == OBJECTS:
                        _objects(ring, dev, part, stats, reclaim_before, seen)
                    else:
                        _databases(ring, dev, kind, part, stats, reclaim_before)
                except Exception as e:  # noqa: BLE001 (one bad partition must not stop the pass)
                    log.warning("replicator: %s partition %d on %s: %r", kind, part, dev.name, e)
                    stats["errors"] += 1
    return stats


def _targets(ring: Ring, dev: RingDevice, part: int) -> tuple[bool, list[RingDevice]]:
    primaries = ring.get_part_nodes(part)
    primary = any(p.id == dev.id for p in primaries)
    return primary, [p for p in primaries if p.id != dev.id]


# -- objects ---------------------------------------------------------------------------


def suffix_hashes(root: Path, part: int, reclaim_before: float | None = None,
                  files: list[Path] | None = None) -> dict[str, str]:
    """suffix -> md5 of the names of the files that count in it. With
    ``reclaim_before`` (own device) obsolete files and empty dirs are removed;
    ``files`` collects the paths that were counted."""
    pdir = root / OBJECTS / str(part)
    out = {}
    for suffix in _listdir(pdir):
        md5, seen = hashlib.md5(usedforsecurity=False), False
        for h in _listdir(pdir / suffix):
            hdir = pdir / suffix / h
            listing = cleanup(hdir, reclaim_before) if reclaim_before is not None else scan(hdir)
            kept = listing.kept
            if not kept:
                if reclaim_before is not None:
                    _rmdir(hdir)
                continue
            seen = True
            for name in kept:
                md5.update(f"{h}/{name}\n".encode())
                if files is not None:
                    files.append(hdir / name)
        if seen:
            out[suffix] = md5.hexdigest()
        elif reclaim_before is not None:
            _rmdir(pdir / suffix)
    return out


def _key(name: str) -> tuple[str, str]:
    return name[:16], name[17:]  # (timestamp, kind): "ts" sorts above "data" at equal times


def sync_hash_dir(src: Path, troot: Path, dst: Path, part: int) -> bool:
    """Copy what ``src`` has newer than ``dst`` into it; True if anything was copied."""
    mine, theirs = scan(src), scan(dst)
    names: list[str] = []
    newest = theirs.base
    if mine.base and (theirs.base is None or _key(mine.base) > _key(theirs.base)):
        names += [mine.base + ".json", mine.base] if mine.base.endswith(".data") else [mine.base]
        newest = mine.base
    if mine.meta:
        theirs_ts = max((n[:16] for n in (newest, theirs.meta) if n), default="")
        if mine.meta[:16] > theirs_ts:
            names.append(mine.meta)
    if not names:
        return False
    copies: list[tuple[str, Path]] = []
    try:
        for name in names:  # sidecar before data, as every writer does
            copies.append((name, copy_file(src / name, troot)))
    except FileNotFoundError:
        for _, tmp in copies:  # replaced by a newer write meanwhile: next pass
            tmp.unlink(missing_ok=True)
        return False
    install(troot, dst, copies)
    listing = cleanup(dst)
    try:
        loaded = load_object(dst, listing)
    except Exception:  # noqa: BLE001 (the auditor judges bad files; the index is a hint)
        loaded = None
    if loaded and not loaded[0].deleted:
        note_expiry(troot, part, dst.name, loaded[0].metadata)
    return True


def _objects(ring: Ring, dev: RingDevice, part: int, stats: dict, reclaim_before: float,
             seen: dict[tuple[str, int], dict[str, str]]) -> None:
    root = Path(dev.path)
    primary, targets = _targets(ring, dev, part)
    counted: list[Path] = []
    # own partition: always rescanned (that is where tidying happens); a peer's
    # hashes are computed once per pass unless this pass copied into them
    local = seen[(dev.path, part)] = suffix_hashes(root, part, reclaim_before, counted)
    pdir = root / OBJECTS / str(part)
    if not local:
        _rmdir(pdir)
        return
    pushed_all = True
    for t in targets:
        if not available(t):
            pushed_all = False
            continue
        troot = Path(t.path)
        try:
            remote = seen.get((t.path, part))
            if remote is None:
                remote = seen[(t.path, part)] = suffix_hashes(troot, part)
            for suffix, digest in local.items():
                if remote.get(suffix) == digest:
                    continue
                seen.pop((t.path, part), None)
                stats["suffixes_synced"] += 1
                for h in _listdir(pdir / suffix):
                    dst = troot / OBJECTS / str(part) / suffix / h
                    stats["objects_copied"] += sync_hash_dir(pdir / suffix / h, troot, dst, part)
        except Exception as e:  # noqa: BLE001
            log.warning("replicator: pushing partition %d from %s to %s: %r", part, dev.name,
                        t.name, e)
            stats["errors"] += 1
            pushed_all = False
    if not primary and pushed_all:
        # every primary has it now: remove exactly what was pushed (a write that
        # arrived meanwhile stays for the next pass)
        for path in counted:
            path.unlink(missing_ok=True)
        for hdir in {p.parent for p in counted}:
            _rmdir(hdir)
            _rmdir(hdir.parent)
        _rmdir(pdir)
        stats["handoffs_removed"] += 1


# -- databases ---------------------------------------------------------------------------


def _databases(ring: Ring, dev: RingDevice, kind: str, part: int, stats: dict,
               reclaim_before: float) -> None:
    root = Path(dev.path)
    primary, targets = _targets(ring, dev, part)
    pdir = root / kind / str(part)
    for suffix in _listdir(pdir):
        for h in _listdir(pdir / suffix):
            path = pdir / suffix / h / f"{h}.db"
            if not path.exists():
                continue
            src = dbs.open_db(path)
            pushed_all = True
            for t in targets:
                if not available(t):
                    pushed_all = False
                    continue
                troot = Path(t.path)
                dst = troot / kind / str(part) / suffix / h / f"{h}.db"
                try:
                    mkdirs(troot, dst.parent)
                    mkdirs(troot, troot / TMP)
                    changed = dbs.replicate(src, dst, troot / TMP)
                except Exception as e:  # noqa: BLE001
                    log.warning("replicator: pushing %s to %s: %r", path, t.name, e)
                    stats["errors"] += 1
                    pushed_all = False
                    continue
                if changed:
                    stats["dbs_merged"] += 1
                    stats["rows_merged"] += changed
            if primary:
                if src.reclaim(reclaim_before):
                    _remove_db(path)  # deleted long ago; its peers drop theirs too
                    stats["reclaimed"] += 1
            elif pushed_all:
                _remove_db(path)
                stats["handoffs_removed"] += 1
        _rmdir(pdir / suffix)
    _rmdir(pdir)


def _remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    _rmdir(path.parent)


def _clean_tmp(root: Path) -> None:
    cutoff = time.time() - TMP_AGE
    for name in _listdir(root / TMP):
        path = root / TMP / name
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            pass
