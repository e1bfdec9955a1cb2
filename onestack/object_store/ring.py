"""The ring: which devices hold each partition, as Swift's ring does.

A name (``/account[/container[/object]]``) hashes (md5 with the cluster's
secret prefix and suffix, like swift.conf's ``swift_hash_path_prefix/suffix``)
to one of ``2**part_power`` partitions; a table gives each partition's
``replicas`` devices. Rebalancing assigns partitions to devices in proportion
to their weights, never two replicas of a partition on one device and, where
there are enough zones, never two in one zone; it moves as few partition
replicas as it can and at most one replica of a partition per rebalance, so
every partition keeps a majority of its copies in place while the replicator
moves data (the spirit of Swift's ``min_part_hours``).

Simplifications against Swift: one ring serves accounts, containers and
objects (Swift has three, with the same algorithm); the builder and the ring
are one JSON file (``<state dir>/object/ring.json``) rather than a .builder
and a .ring.gz; no regions, no overload factor, no storage policies.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import secrets
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

FORMAT = 1
EMPTY = -1  # a table slot without a device (before the first rebalance)


class RingError(Exception):
    """A ring operation that cannot be done, phrased for a one-line CLI error."""


@dataclass
class RingDevice:
    id: int
    name: str  # e.g. "d1"
    zone: int
    weight: float
    path: str  # the device's directory on its host (on a node: its name under the node's devices dir)
    host: str = "local"  # "local": a directory of the proxy's host; or the URL of a node server

    @property
    def node_url(self) -> str | None:
        """The node server holding the device (None: a directory of this host)."""
        return self.host if self.host.startswith(("http://", "https://")) else None


_DEVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_node_url(url: str) -> str:
    """``http(s)://host:port`` of a node server, normalized; RingError otherwise."""
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        port = None
    if (parts.scheme not in ("http", "https") or not parts.hostname or port is None
            or parts.path not in ("", "/") or parts.query or parts.fragment or parts.username):
        raise RingError(f"a node URL is http://HOST:PORT (the node server's), not {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


class Ring:
    """The partition table plus the builder operations that change it."""

    def __init__(self, part_power: int, replicas: int, *, hash_prefix: str | None = None,
                 hash_suffix: str | None = None):
        if not 0 <= part_power <= 24:
            raise RingError(f"part power must be between 0 and 24, not {part_power}")
        if replicas < 1:
            raise RingError(f"replicas must be at least 1, not {replicas}")
        self.part_power = part_power
        self.replicas = replicas
        self.hash_prefix = hash_prefix if hash_prefix is not None else secrets.token_hex(8)
        self.hash_suffix = hash_suffix if hash_suffix is not None else secrets.token_hex(8)
        self.devices: list[RingDevice] = []
        self.removing: set[int] = set()  # removed devices still holding parts until rebalance
        self.rebalances = 0
        # table[replica][part] -> device id
        self.table: list[list[int]] = [[EMPTY] * self.partitions for _ in range(replicas)]
        self._by_id: dict[int, RingDevice] = {}

    @property
    def partitions(self) -> int:
        return 1 << self.part_power

    # -- lookups -----------------------------------------------------------------

    def hash_path(self, account: str, container: str | None = None, obj: str | None = None) -> str:
        if obj is not None and container is None:
            raise ValueError("an object name needs a container name")
        path = "/" + "/".join(p for p in (account, container, obj) if p is not None)
        return hashlib.md5((self.hash_prefix + path + self.hash_suffix).encode(),
                           usedforsecurity=False).hexdigest()

    def get_part(self, account: str, container: str | None = None, obj: str | None = None) -> int:
        # the top part_power bits of the hash, as Swift takes them
        return int(self.hash_path(account, container, obj)[:8], 16) >> (32 - self.part_power)

    def get_part_nodes(self, part: int) -> list[RingDevice]:
        out = []
        for row in self.table:
            dev = self._by_id.get(row[part])
            if dev is not None:
                out.append(dev)
        return out

    def get_nodes(self, account: str, container: str | None = None,
                  obj: str | None = None) -> tuple[int, list[RingDevice]]:
        part = self.get_part(account, container, obj)
        return part, self.get_part_nodes(part)

    def get_handoffs(self, part: int) -> Iterator[RingDevice]:
        """The other devices, zones not used by the primaries first, then a
        per-partition pseudo-random order (so one failed device's load spreads)."""
        primaries = self.get_part_nodes(part)
        ids = {d.id for d in primaries}
        zones = {d.zone for d in primaries}

        def key(d: RingDevice):
            spread = hashlib.md5(f"{part}:{d.id}".encode(), usedforsecurity=False).hexdigest()
            return (d.weight <= 0 or d.id in self.removing, d.zone in zones, spread)

        yield from sorted((d for d in self.devices if d.id not in ids), key=key)

    def device(self, ref: int | str) -> RingDevice:
        """A device by id or name."""
        for d in self.devices:
            if str(d.id) == str(ref) or d.name == ref:
                return d
        raise RingError(f"no device {ref!r} in the ring")

    # -- builder -----------------------------------------------------------------

    def add_device(self, name: str, zone: int, weight: float, path: str,
                   host: str = "local") -> RingDevice:
        """Add a device; on a node server (``host`` a URL) ``path`` is the device's name
        there (the node serves ``<its devices dir>/<name>``)."""
        if host.startswith(("http://", "https://")):
            host = check_node_url(host)
            if not _DEVICE_NAME.match(path):
                raise RingError(f"a device of a node is named by a plain name (letters, digits, "
                                f"'.', '_', '-'), not {path!r}")
        if any(d.name == name for d in self.devices):
            raise RingError(f"a device named {name!r} is already in the ring")
        if any(d.path == path and d.host == host for d in self.devices):
            raise RingError(f"device path {path} is already in the ring")
        if weight < 0 or zone < 0:
            raise RingError("weight and zone must not be negative")
        dev = RingDevice(max((d.id for d in self.devices), default=0) + 1, name, zone,
                         float(weight), str(path), host)
        self.devices.append(dev)
        self._index()
        return dev

    def remove_device(self, ref: int | str) -> RingDevice:
        """Mark for removal: it keeps serving its partitions until the next rebalance."""
        dev = self.device(ref)
        dev.weight = 0.0
        self.removing.add(dev.id)
        return dev

    def set_weight(self, ref: int | str, weight: float) -> RingDevice:
        if weight < 0:
            raise RingError("weight must not be negative")
        dev = self.device(ref)
        if dev.id in self.removing:
            raise RingError(f"device {dev.name} is being removed")
        dev.weight = float(weight)
        return dev

    def rebalance(self) -> int:
        """Reassign partitions to match the weights; returns the replicas moved."""
        active = [d for d in self.devices if d.weight > 0 and d.id not in self.removing]
        if len(active) < self.replicas:
            raise RingError(f"{self.replicas} replicas need at least {self.replicas} devices "
                            f"with a weight, the ring has {len(active)}")
        targets, zone_cap = self._targets(active)
        zone_of = {d.id: d.zone for d in active}
        count = dict.fromkeys(zone_of, 0)
        parts = self.partitions
        moved: set[int] = set()  # partitions that already moved a replica in this rebalance
        todo: list[tuple[int, int, int]] = []  # (part, replica, former device) to place

        def unassign(p: int, r: int) -> None:
            if self.table[r][p] in count:
                count[self.table[r][p]] -= 1
            todo.append((p, r, self.table[r][p]))
            self.table[r][p] = EMPTY

        # 1. slots that must move: empty, or on a device that is gone or weightless
        for r, row in enumerate(self.table):
            for p, dev in enumerate(row):
                if dev in count:
                    count[dev] += 1
                else:
                    todo.append((p, r, dev))
                    row[p] = EMPTY
                    moved.add(p)
        rng = random.Random(f"{self.hash_prefix}:{self.rebalances}")
        order = list(range(parts))
        rng.shuffle(order)  # take partitions from all over the space, not the first ones
        # 2. replicas crowded into one zone while another zone could take them
        for p in order:
            if p in moved:
                continue
            per_zone: dict[int, list[int]] = {}
            for r in range(self.replicas):
                if self.table[r][p] != EMPTY:
                    per_zone.setdefault(zone_of[self.table[r][p]], []).append(r)
            for rs in per_zone.values():
                if len(rs) > zone_cap:
                    worst = max(rs, key=lambda r: count[self.table[r][p]] - targets[self.table[r][p]])
                    unassign(p, worst)
                    moved.add(p)
                    break
        # 3. devices holding more than their share give up the excess: first
        # partitions a device below its share can take (no wasted moves), then any
        wants = {d: targets[d] - count[d] for d in count if count[d] < targets[d]}

        def takes(p: int, r: int) -> int | None:
            others = [self.table[x][p] for x in range(self.replicas) if x != r]
            zones = [zone_of[o] for o in others if o != EMPTY]
            for u, want in wants.items():
                if want > 0 and u not in others and zones.count(zone_of[u]) < zone_cap:
                    return u
            return None

        for dev in sorted(count, key=lambda d: targets[d] - count[d]):
            for strict in (True, False):
                for p in order:
                    if count[dev] <= targets[dev]:
                        break
                    if p in moved:
                        continue
                    r = next((r for r in range(self.replicas) if self.table[r][p] == dev), None)
                    if r is None:
                        continue
                    taker = takes(p, r)
                    if strict and taker is None:
                        continue
                    if taker is not None:
                        wants[taker] -= 1
                    unassign(p, r)
                    moved.add(p)
        # 4. place every loose slot on the device that wants it most
        changed = 0
        for p, r, former in sorted(todo):
            holders = [self.table[x][p] for x in range(self.replicas) if self.table[x][p] != EMPTY]
            zone_use: dict[int, int] = {}
            for h in holders:
                zone_use[zone_of[h]] = zone_use.get(zone_of[h], 0) + 1

            def key(d: int, zone_use=zone_use):
                want = targets[d] - count[d]
                used = zone_use.get(zone_of[d], 0)
                return (used >= zone_cap, want <= 0, used, -want, d)

            best = min((d for d in count if d not in holders), key=key)
            self.table[r][p] = best
            count[best] += 1
            changed += best != former
        # devices being removed now hold nothing: drop them
        self.devices = [d for d in self.devices if d.id not in self.removing]
        self.removing.clear()
        self.rebalances += 1
        self._index()
        return changed

    def _targets(self, active: list[RingDevice]) -> tuple[dict[int, int], int]:
        """Integer partition-replica counts per device, and the most replicas of
        one partition a zone may hold. Zones first (so their caps shape the
        shares), then devices within each zone, both in proportion to weight."""
        parts, total = self.partitions, self.partitions * self.replicas
        zones: dict[int, list[RingDevice]] = {}
        for d in active:
            zones.setdefault(d.zone, []).append(d)
        zone_cap = math.ceil(self.replicas / len(zones))
        zone_share = _waterfill({z: sum(d.weight for d in ds) for z, ds in zones.items()}, total,
                                {z: parts * min(zone_cap, len(ds)) for z, ds in zones.items()})
        shares: dict[int, float] = {}
        for z, ds in zones.items():
            shares.update(_waterfill({d.id: d.weight for d in ds}, zone_share[z],
                                     dict.fromkeys((d.id for d in ds), parts)))
        return _round(shares, total), zone_cap

    # -- reports -----------------------------------------------------------------

    def describe(self) -> dict:
        """Devices with their partitions and balance (100 * parts / wanted - 100)."""
        held = {d.id: 0 for d in self.devices}
        for row in self.table:
            for dev in row:
                if dev in held:
                    held[dev] += 1
        weight = sum(d.weight for d in self.devices if d.id not in self.removing)
        total = self.partitions * self.replicas
        devices, worst = [], 0.0
        for d in self.devices:
            wanted = total * d.weight / weight if weight and d.id not in self.removing else 0.0
            balance = 100.0 * held[d.id] / wanted - 100.0 if wanted else (100.0 if held[d.id] else 0.0)
            worst = max(worst, abs(balance))
            devices.append({**asdict(d), "partitions": held[d.id], "wanted": round(wanted, 1),
                            "balance": round(balance, 2), "removing": d.id in self.removing})
        zones = {d.zone for d in self.devices if d.weight > 0}
        crowded = 0
        if zones and self.table[0][0] != EMPTY:
            cap = math.ceil(self.replicas / len(zones))
            for p in range(self.partitions):
                used = [self._by_id[r[p]].zone for r in self.table if r[p] in self._by_id]
                crowded += any(used.count(z) > cap for z in set(used))
        return {"part_power": self.part_power, "partitions": self.partitions,
                "replicas": self.replicas, "zones": len(zones), "devices": devices,
                "balance": round(worst, 2), "crowded_partitions": crowded,
                "rebalances": self.rebalances,
                "unassigned": sum(row.count(EMPTY) for row in self.table)}

    # -- files -------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {"format": FORMAT, "part_power": self.part_power, "replicas": self.replicas,
                "hash_prefix": self.hash_prefix, "hash_suffix": self.hash_suffix,
                "rebalances": self.rebalances, "removing": sorted(self.removing),
                "devices": [asdict(d) for d in self.devices], "table": self.table}

    def save(self, path: str | Path, *, exclusive: bool = False) -> None:
        """Write atomically (temp file, fsync, rename): readers see old or new.
        ``exclusive``: fail with FileExistsError rather than replace a ring."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".ring-", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self.to_dict(), f, separators=(",", ":"))
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            if exclusive:
                os.link(tmp, path)
                os.unlink(tmp)
            else:
                os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def from_dict(cls, data: dict) -> Ring:
        if data.get("format") != FORMAT:
            raise RingError(f"unknown ring format {data.get('format')!r}")
        ring = cls(int(data["part_power"]), int(data["replicas"]),
                   hash_prefix=data["hash_prefix"], hash_suffix=data["hash_suffix"])
        ring.devices = [RingDevice(**d) for d in data["devices"]]
        ring.removing = set(data.get("removing", ()))
        ring.rebalances = int(data.get("rebalances", 0))
        table = data["table"]
        if len(table) != ring.replicas or any(len(row) != ring.partitions for row in table):
            raise RingError("the ring's table does not match its part power and replicas")
        ring.table = [list(map(int, row)) for row in table]
        ring._index()
        return ring

    @classmethod
    def load(cls, path: str | Path) -> Ring:
        try:
            data = json.loads(Path(path).read_text())
        except OSError as e:
            raise RingError(f"cannot read the ring {path}: {e.strerror}") from None
        except ValueError as e:
            raise RingError(f"the ring {path} is not valid JSON: {e}") from None
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError) as e:
            raise RingError(f"the ring {path} is malformed: {e!r}") from None

    def _index(self) -> None:
        self._by_id = {d.id: d for d in self.devices}
        for d in self.devices:
            d._ring = self  # lets LocalNode(device) find the hash secret (not a dataclass field)


def _waterfill(weights: dict, total: float, caps: dict) -> dict[object, float]:
    """Share ``total`` in proportion to ``weights`` with no key above its cap;
    what a capped key cannot take goes to the others."""
    out: dict[object, float] = {}
    left, rest = float(total), dict(weights)
    while rest:
        wsum = sum(rest.values())
        over = [k for k, w in rest.items() if wsum and left * w / wsum > caps[k]]
        if not over:
            for k, w in rest.items():
                out[k] = left * w / wsum if wsum else 0.0
            break
        for k in over:
            out[k] = float(caps[k])
            left -= caps[k]
            del rest[k]
    return out


def _round(shares: dict[int, float], total: int) -> dict[int, int]:
    """Integers summing to ``total``: floors, then the largest remainders get one more."""
    out = {k: math.floor(v + 1e-9) for k, v in shares.items()}
    short = total - sum(out.values())
    for k in sorted(shares, key=lambda k: (out[k] - shares[k], k))[:max(short, 0)]:
        out[k] += 1
    return out


class RingFile:
    """The ring of a file, re-read when the file changes (checked at most once a second)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._ring: Ring | None = None
        self._stamp = None
        self._checked = 0.0

    def get(self) -> Ring:
        now = time.monotonic()
        if self._ring is None or now - self._checked >= 1.0:
            self._checked = now
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                self._ring, self._stamp = Ring.load(self.path), stamp
        return self._ring


# -- the all-in-one default ------------------------------------------------------------


def ring_path(conf) -> Path:
    return conf.state_dir / "object" / "ring.json"


def devices_dir(conf) -> Path:
    return Path(conf.object_store.devices_dir or conf.state_dir / "object" / "devices")


def ensure_default(conf) -> Ring:
    """Load the ring; on the very first start create devices d1..dN (zone i,
    weight 100) under the devices dir and a balanced ring over them.

    Only this (and the operator's `onestack object device replace`) creates
    device directories: a missing one later means a lost or unmounted disk."""
    path = ring_path(conf)
    if path.exists():
        return Ring.load(path)
    o = conf.object_store
    ring = Ring(o.part_power, o.replicas)
    base = devices_dir(conf)
    for i in range(1, o.devices + 1):
        dev_path = base / f"d{i}"
        dev_path.mkdir(parents=True, exist_ok=True)
        ring.add_device(f"d{i}", i, 100.0, str(dev_path))
    ring.rebalance()
    try:
        ring.save(path, exclusive=True)
    except FileExistsError:  # another process's first start won: use its ring (and secret)
        return Ring.load(path)
    return ring
