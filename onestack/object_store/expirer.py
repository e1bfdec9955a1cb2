"""One expirer pass: delete objects whose X-Delete-At has passed.

Writers index every object with X-Delete-At as an empty file
``expiring/<delete_at>.<part>.<hash>`` on its device (and the auditor adds
missing entries), so a pass reads only the entries that are due rather than
every sidecar. Each due entry is checked against the object as it is now (a
later PUT or POST may have changed or removed X-Delete-At); the pass collects
names across devices and calls ``delete(account, container, obj, timestamp)``
once per name -- the proxy deletes every replica and updates the listing,
using the delete-at time as the tombstone's timestamp so a newer PUT is
never undone (Swift's X-If-Delete-At). Entries whose object is gone or no
longer due are removed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from onestack.object_store.dbs import norm
from onestack.object_store.ring import Ring
from onestack.object_store.storage import (
    EXPIRING,
    OBJECTS,
    Corrupt,
    delete_at_of,
    device_roots,
    hash_dir,
    load_object,
    scan,
)

log = logging.getLogger(__name__)

DeleteFn = Callable[[str, str, str, str], object]


def _still_due(hdir: Path, delete_at: int) -> str | None:
    """The object's name if it is live and expires at ``delete_at``."""
    try:
        loaded = load_object(hdir, scan(hdir))
    except (FileNotFoundError, Corrupt):
        return None
    if loaded is None or loaded[0].deleted or delete_at_of(loaded[0].metadata) != delete_at:
        return None
    return loaded[1].get("name")


def expire(ring: Ring, delete: DeleteFn, *, now: float | None = None,
           stop: threading.Event | None = None) -> dict[str, int]:
    now = time.time() if now is None else now
    stats = dict.fromkeys(("devices", "devices_skipped", "checked", "expired", "deleted",
                           "entries_removed", "errors"), 0)
    due: dict[str, tuple[int, list[tuple[Path, Path]]]] = {}  # name -> (delete_at, entries)
    for _, root in device_roots(ring, stats):
        try:
            names = sorted(os.listdir(root / EXPIRING))
        except FileNotFoundError:
            continue
        for entry in names:
            try:
                at, part, hsh = entry.split(".")
                delete_at, part_no = int(at), int(part)
            except ValueError:
                _unlink(root / EXPIRING / entry, stats)
                continue
            if delete_at > now:
                break  # names sort by time (delete_at has a fixed width)
            stats["checked"] += 1
            hdir = hash_dir(root, OBJECTS, part_no, hsh)
            name = _still_due(hdir, delete_at)
            if name is None:
                _unlink(root / EXPIRING / entry, stats)
                continue
            due.setdefault(name, (delete_at, []))[1].append((root / EXPIRING / entry, hdir))
    for name, (delete_at, entries) in due.items():
        if stop is not None and stop.is_set():
            break
        stats["expired"] += 1
        try:
            _, account, container, obj = name.split("/", 3)
            delete(account, container, obj, norm(delete_at))
        except Exception as e:  # noqa: BLE001 (retried next pass: the entries stay)
            log.warning("expirer: deleting %s failed: %r", name, e)
            stats["errors"] += 1
            continue
        stats["deleted"] += 1
        for entry, hdir in entries:
            if _still_due(hdir, delete_at) is None:
                _unlink(entry, stats)
    return stats


def _unlink(path: Path, stats: dict) -> None:
    try:
        path.unlink()
        stats["entries_removed"] += 1
    except FileNotFoundError:
        pass
