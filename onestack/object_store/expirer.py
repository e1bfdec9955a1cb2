"""One expirer pass: delete objects whose X-Delete-At has passed.

Writers index every object with X-Delete-At as an empty file
``expiring/<delete_at>.<part>.<hash>`` on its device (and the auditor adds
missing entries), so a pass reads only the entries that are due rather than
every sidecar. Each due entry is checked against the object as it is now (a
later PUT or POST may have changed or removed X-Delete-At); the pass collects
names across devices and calls ``delete(account, container, obj, timestamp)``
once per name -- the proxy deletes every replica and updates the listing,
using the delete-at time as the tombstone's timestamp so a newer PUT is
never undone (Swift's X-If-Delete-At). A write can be stamped a little after
its own delete-at (X-Delete-After is counted from when the request arrived,
and X-Delete-At may name the current second), so the tombstone is never older
than the version it deletes: otherwise it would lose to it, on the device and
in the listing, on every pass. Entries whose object is gone or no
longer due are removed. Like the replicator, the pass runs beside the proxy
and reaches every device of the ring through ``DeviceStore``, local or remote.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from onestack.object_store.dbs import norm
from onestack.object_store.localstore import Stores, local_stores
from onestack.object_store.node import DeviceStore
from onestack.object_store.ring import Ring

log = logging.getLogger(__name__)

DeleteFn = Callable[[str, str, str, str], object]


def expire(ring: Ring, delete: DeleteFn, *, stores: Stores = local_stores, now: float | None = None,
           stop: threading.Event | None = None) -> dict[str, int]:
    """One pass over the devices ``stores`` reaches (by default this host's)."""
    now = time.time() if now is None else now
    stats = dict.fromkeys(("devices", "devices_skipped", "checked", "expired", "deleted",
                           "entries_removed", "errors"), 0)
    due: dict[str, tuple[str, list[tuple[DeviceStore, str]]]] = {}  # name -> (tombstone time, entries)
    for dev in ring.devices:
        store = stores(dev)
        if store is None:
            continue
        try:
            if not store.available():
                stats["devices_skipped"] += 1
                continue
            found = store.expiring_due(now)
        except Exception as e:  # noqa: BLE001 (a device that fails: the next one)
            log.warning("expirer: device %s: %r", dev.name, e)
            stats["devices_skipped"] += 1
            continue
        stats["devices"] += 1
        stats["checked"] += found["checked"]
        stats["entries_removed"] += found["removed"]
        for entry, name, delete_at, *newest in found["due"]:
            ts = tombstone_time(delete_at, newest[0] if newest else None)
            held_ts, held = due.get(name, (ts, []))
            due[name] = (max(ts, held_ts), [*held, (store, entry)])
    for name, (ts, entries) in due.items():
        if stop is not None and stop.is_set():
            break
        stats["expired"] += 1
        try:
            _, account, container, obj = name.split("/", 3)
            delete(account, container, obj, ts)
        except Exception as e:  # noqa: BLE001 (retried next pass: the entries stay)
            log.warning("expirer: deleting %s failed: %r", name, e)
            stats["errors"] += 1
            continue
        stats["deleted"] += 1
        for store, entry in entries:
            try:
                stats["entries_removed"] += store.expiring_done([entry])
            except Exception as e:  # noqa: BLE001 (the next pass removes it)
                log.warning("expirer: index entry %s on %s: %r", entry, store.name, e)
    return stats


def tombstone_time(delete_at: int, newest: str | None) -> str:
    """The delete-at time, or just after the object's newest timestamp if that is later."""
    ts = norm(delete_at)
    if newest is not None and norm(newest) >= ts:
        ts = norm(float(newest) + 0.00001)
    return ts
