"""One replication pass: make every replica of every partition whole again.

For each partition found on each device, the device pushes what it has to the
partition's other primary devices (the ring's), as Swift's replicators do:

* objects: each suffix directory gets a hash of the names of the files that
  count in it (newest data or tombstone, newer metadata); only suffixes whose
  hashes differ are walked, and a file is copied when the peer has nothing as
  new (Swift keeps these hashes in hashes.pkl; recomputing them each pass is
  cheap at this scale);
* databases: rows newer than the last push to that peer are merged into it,
  newest wins, the peer's database created if it has none;
* a partition on a device that is not one of its primaries (a handoff, or a
  device the ring moved it away from) is pushed to all primaries and removed
  once every primary took it.

Every device pushes, so a device that lost its data (a replaced, empty disk)
is refilled by its peers; one that is missing or does not answer is skipped.
The same pass reclaims tombstones older than ``reclaim_age`` and stale tmp files.

Devices are reached through ``DeviceStore`` (node.py): a directory of this host
or, over HTTP, a device of a storage node. The pass runs where the ring is (the
proxy's host, or `onestack object replicate` there) and walks every device of
the ring, local or remote: storage nodes keep no ring and need no agent of
their own for replication. Data between two remote devices goes through this
host; suffix hashes keep that to what differs.
"""

from __future__ import annotations

import logging
import threading
import time

from onestack.object_store.localstore import Stores, local_stores
from onestack.object_store.node import DeviceStore
from onestack.object_store.ring import Ring, RingDevice
from onestack.object_store.storage import ACCOUNTS, CONTAINERS, OBJECTS

log = logging.getLogger(__name__)

RECLAIM_AGE = 7 * 86400  # tombstones kept this long (Swift's reclaim_age)
BATCH = 1000  # database rows per push

def replicate(ring: Ring, *, stores: Stores = local_stores, reclaim_age: float = RECLAIM_AGE,
              stop: threading.Event | None = None) -> dict[str, int]:
    """One pass over the ring's devices that ``stores`` can reach (by default this
    host's directories)."""
    stats = dict.fromkeys(("devices", "devices_skipped", "partitions", "suffixes_synced",
                           "objects_copied", "dbs_merged", "rows_merged", "handoffs_removed",
                           "reclaimed", "errors"), 0)
    p = _Pass(ring, stores, stats, time.time() - reclaim_age)
    for dev in ring.devices:
        store = p.store(dev)
        if store is None:
            continue  # another host's device that nothing here reaches
        if not p.up(dev):
            log.warning("replicator: device %s is not available; skipped", dev.name)
            stats["devices_skipped"] += 1
            continue
        stats["devices"] += 1
        try:
            store.clean_tmp()
            for kind in (OBJECTS, CONTAINERS, ACCOUNTS):
                for part in store.partitions(kind):
                    if stop is not None and stop.is_set():
                        return stats
                    stats["partitions"] += 1
                    try:
                        if kind == OBJECTS:
                            p.objects(dev, store, part)
                        else:
                            p.databases(dev, store, kind, part)
                    except Exception as e:  # noqa: BLE001 (one bad partition must not stop the pass)
                        log.warning("replicator: %s partition %d on %s: %r", kind, part, dev.name, e)
                        stats["errors"] += 1
        except Exception as e:  # noqa: BLE001 (a device that fails mid-pass: the next one)
            log.warning("replicator: device %s: %r", dev.name, e)
            stats["errors"] += 1
    return stats


class _Pass:
    """The state of one pass: stores and their availability, hashes already read."""

    def __init__(self, ring: Ring, stores: Stores, stats: dict[str, int], reclaim_before: float):
        self.ring, self.stats, self.reclaim_before = ring, stats, reclaim_before
        self._stores = stores
        self._store: dict[int, DeviceStore | None] = {}
        self._up: dict[int, bool] = {}
        # (device id, part) -> suffix hashes, read once per pass unless copied into
        self.seen: dict[tuple[int, int], dict[str, str]] = {}

    def store(self, dev: RingDevice) -> DeviceStore | None:
        if dev.id not in self._store:
            self._store[dev.id] = self._stores(dev)
        return self._store[dev.id]

    def up(self, dev: RingDevice) -> bool:
        """Is the device there (asked once per pass)?"""
        if dev.id not in self._up:
            store = self.store(dev)
            try:
                self._up[dev.id] = store is not None and store.available()
            except Exception:  # noqa: BLE001 (a node that does not answer is down)
                self._up[dev.id] = False
        return self._up[dev.id]

    def targets(self, dev: RingDevice, part: int) -> tuple[bool, list[RingDevice]]:
        primaries = self.ring.get_part_nodes(part)
        primary = any(p.id == dev.id for p in primaries)
        return primary, [p for p in primaries if p.id != dev.id]

    # -- objects -----------------------------------------------------------------------

    def objects(self, dev: RingDevice, store: DeviceStore, part: int) -> None:
        primary, targets = self.targets(dev, part)
        # own partition: always rescanned (that is where tidying happens)
        local = self.seen[(dev.id, part)] = store.suffix_hashes(part, self.reclaim_before)
        if not local:
            return
        mine: dict[str, dict] = {}  # suffix -> this device's hash listings
        pushed_all = True
        for t in targets:
            tstore = self.store(t)
            if tstore is None or not self.up(t):
                pushed_all = False
                continue
            try:
                remote = self.seen.get((t.id, part))
                if remote is None:
                    remote = self.seen[(t.id, part)] = tstore.suffix_hashes(part)
                for suffix, digest in local.items():
                    if remote.get(suffix) == digest:
                        continue
                    self.seen.pop((t.id, part), None)
                    self.stats["suffixes_synced"] += 1
                    if suffix not in mine:
                        mine[suffix] = store.hash_listings(part, suffix)
                    theirs = tstore.hash_listings(part, suffix)
                    for h, listing in mine[suffix].items():
                        names = to_copy(listing, theirs.get(h))
                        if names and copy(store, tstore, part, suffix, h, names):
                            self.stats["objects_copied"] += 1
            except Exception as e:  # noqa: BLE001
                log.warning("replicator: pushing partition %d from %s to %s: %r", part, dev.name,
                            t.name, e)
                self.stats["errors"] += 1
                pushed_all = False
        if not primary and pushed_all:
            # every primary has it now: remove what was pushed (a suffix written to
            # meanwhile hashes differently and stays for the next pass)
            store.remove_suffixes(part, local)
            self.stats["handoffs_removed"] += 1

    # -- databases -------------------------------------------------------------------------

    def databases(self, dev: RingDevice, store: DeviceStore, kind: str, part: int) -> None:
        primary, targets = self.targets(dev, part)
        for h in store.databases(kind, part):
            state = store.db_state(kind, part, h)
            if state is None:
                continue
            pushed_all = True
            for t in targets:
                tstore = self.store(t)
                if tstore is None or not self.up(t):
                    pushed_all = False
                    continue
                try:
                    changed = push_db(store, tstore, kind, part, h, state)
                except Exception as e:  # noqa: BLE001
                    log.warning("replicator: pushing %s %s of partition %d from %s to %s: %r",
                                kind, h, part, dev.name, t.name, e)
                    self.stats["errors"] += 1
                    pushed_all = False
                    continue
                if changed:
                    self.stats["dbs_merged"] += 1
                    self.stats["rows_merged"] += changed
            if primary:
                if store.db_reclaim(kind, part, h, self.reclaim_before):
                    self.stats["reclaimed"] += 1  # deleted long ago; its peers drop theirs too
            elif pushed_all:
                store.db_remove(kind, part, h)
                self.stats["handoffs_removed"] += 1


def _key(name: str) -> tuple[str, str]:
    return name[:16], name[17:]  # (timestamp, kind): "ts" sorts above "data" at equal times


def to_copy(mine: tuple[str | None, str | None],
            theirs: tuple[str | None, str | None] | None) -> list[str]:
    """The files of one object (listings: newest data or tombstone, newer metadata)
    that a peer lacks, sidecar before data."""
    base, meta = mine
    their_base, their_meta = theirs or (None, None)
    names: list[str] = []
    newest = their_base
    if base and (their_base is None or _key(base) > _key(their_base)):
        names += [base + ".json", base] if base.endswith(".data") else [base]
        newest = base
    if meta:
        theirs_ts = max((n[:16] for n in (newest, their_meta) if n), default="")
        if meta[:16] > theirs_ts:
            names.append(meta)
    return names


def copy(src: DeviceStore, dst: DeviceStore, part: int, suffix: str, h: str,
         names: list[str]) -> bool:
    """Copy the files, in order; False if the source replaced them meanwhile
    (a newer write: the next pass copies that)."""
    try:
        for name in names:
            dst.install_file(part, suffix, h, name, src.read_file(part, suffix, h, name))
    except FileNotFoundError:
        return False
    return True


def push_db(src: DeviceStore, dst: DeviceStore, kind: str, part: int, h: str, state: dict) -> int:
    """Push a database: its state, then the rows the peer has not had from it
    (remembered per peer database). The rows the peer took, plus 1 if created."""
    dst_id, changed = dst.db_merge(kind, part, h, state, [])
    after = None
    while True:
        rows, after = src.db_rows(kind, part, h, dst_id, after, BATCH)
        if not rows:
            return changed
        changed += dst.db_merge(kind, part, h, None, [r[1:] for r in rows])[1]
        src.db_synced(kind, part, h, dst_id, after)
