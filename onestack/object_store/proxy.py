"""The proxy's core: replicas through the ring, quorum writes, reads that fall back.

Every operation on an account, container or object goes to the ``replicas``
primary devices the ring names for it (handoff devices stand in for
unavailable primaries on writes). A write succeeds when a quorum
(replicas // 2 + 1) of devices took it; object data is committed on the
devices only once the quorum is sure, so a failed write leaves nothing
visible. Reads try the devices in turn and answer from the first that has it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from onestack.common import errors
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
T = TypeVar("T")


_ts_lock = threading.Lock()
_last = 0.0


def now_timestamp() -> str:
    """Swift's normalized timestamp; strictly increasing within this process."""
    global _last
    with _ts_lock:
        t = max(time.time(), _last + 0.00001)
        _last = t
    return f"{t:016.5f}"


class InsufficientStorage(errors.ServiceUnavailable):
    """Fewer devices than a quorum answered: Swift's 503."""


@dataclass
class Placement:
    part: int
    primaries: list[Node]
    handoffs: list[Node]

    @property
    def quorum(self) -> int:
        return len(self.primaries) // 2 + 1


class Cluster:
    """The ring and a Node for each of its devices."""

    def __init__(self, ring, node_factory: Callable[[object], Node], ring_file=None):
        self._ring = ring
        self._ring_file = ring_file  # re-read when an operator rebalances (onestack object ring)
        self._factory = node_factory
        self._nodes: dict[tuple[int, str], Node] = {}
        self._pool = ThreadPoolExecutor(16, thread_name_prefix="object-replica")

    @property
    def ring(self):
        if self._ring_file is not None:
            self._ring = self._ring_file.get()
        return self._ring

    def node(self, device) -> Node:
        key = (device.id, str(device.path), device.host)
        n = self._nodes.get(key)
        if n is None:
            n = self._nodes[key] = self._factory(device)
        return n

    def place(self, account: str, container: str | None = None, obj: str | None = None) -> Placement:
        ring = self.ring
        part, devices = ring.get_nodes(account, container, obj)
        handoffs = [self.node(d) for d in ring.get_handoffs(part)]
        return Placement(part, [self.node(d) for d in devices], handoffs)

    # -- fan-out helpers -------------------------------------------------------

    def background(self, fn: Callable[..., T], *args) -> Future:
        """Run one function on the replica pool (e.g. a hash beside the writes)."""
        return self._pool.submit(fn, *args)

    def each(self, nodes: list[Node], fn: Callable[[Node], T]) -> list[tuple[Node, T | BaseException]]:
        """Run ``fn`` on every node concurrently; results or exceptions, in node order."""
        futures = [(n, self._pool.submit(fn, n)) for n in nodes]
        out: list[tuple[Node, T | BaseException]] = []
        for n, f in futures:
            try:
                out.append((n, f.result()))
            except BaseException as e:  # noqa: BLE001 (collected, judged by the caller)
                out.append((n, e))
        return out

    def write_all(self, place: Placement, fn: Callable[[Node], T], what: str) -> list[T]:
        """Apply a database write on every primary (handoffs for unavailable ones);
        raise 503 unless a quorum took it."""
        results = self.each(place.primaries, fn)
        good = [r for _, r in results if not isinstance(r, BaseException)]
        failed = len(results) - len(good)
        for n, r in results:
            if isinstance(r, BaseException) and not isinstance(r, NodeUnavailable | NotEmpty):
                log.warning("%s on device %s failed: %r", what, getattr(n, "name", "?"), r)
        for exc in (r for _, r in results if isinstance(r, NotEmpty)):
            raise exc
        handoffs = iter(place.handoffs)
        while failed:
            nxt = next(handoffs, None)
            if nxt is None:
                break
            try:
                good.append(fn(nxt))
                failed -= 1
            except NodeUnavailable:
                continue
        if len(good) < place.quorum:
            raise InsufficientStorage(f"Only {len(good)} of {len(place.primaries)} storage devices "
                                      f"could take the {what}; {place.quorum} are needed.")
        return good

    def read_first(self, place: Placement, fn: Callable[[Node], T | None]) -> T | None:
        """The first answer that is not None from the primaries, then handoffs;
        503 when no device could answer at all."""
        answered = 0
        for n in [*place.primaries, *place.handoffs]:
            try:
                result = fn(n)
            except NodeUnavailable:
                continue
            answered += 1
            if result is not None:
                return result
            if answered >= len(place.primaries):
                break
        if answered == 0:
            raise InsufficientStorage("No storage device could answer.")
        return None


# --------------------------------------------------------------------------- accounts


def account_info(cluster: Cluster, account: str) -> DbInfo | None:
    place = cluster.place(account)
    return cluster.read_first(place, lambda n: n.account_info(place.part, account))


def ensure_account(cluster: Cluster, account: str) -> None:
    """Accounts are created on first use (Swift's account_autocreate)."""
    place = cluster.place(account)
    info = cluster.read_first(place, lambda n: n.account_info(place.part, account))
    if info is None:
        ts = now_timestamp()
        cluster.write_all(place, lambda n: n.account_put(place.part, account, ts), "account creation")


def account_post(cluster: Cluster, account: str, metadata: dict[str, tuple[str, str]]) -> None:
    ensure_account(cluster, account)
    place = cluster.place(account)
    cluster.write_all(place, lambda n: n.account_post(place.part, account, metadata), "account update")


def account_list(cluster: Cluster, account: str, **kw) -> list[AccountRow | str]:
    place = cluster.place(account)
    return cluster.read_first(place, lambda n: n.account_list(place.part, account, **kw)) or []


def _update_account(cluster: Cluster, account: str, container: str, info: DbInfo | None,
                    deleted_ts: str | None = None) -> None:
    """Record a container's current stats in its account's listing (best effort:
    the replicator reconciles a replica that missed it)."""
    place = cluster.place(account)
    if deleted_ts is not None:
        row = AccountRow(container, "0", deleted_ts, 0, 0, deleted=True)
    elif info is not None:
        row = AccountRow(container, info.put_timestamp, info.delete_timestamp, info.object_count,
                         info.bytes_used)
    else:
        return
    results = cluster.each(place.primaries, lambda n: n.account_update(place.part, account, row))
    for n, r in results:
        if isinstance(r, BaseException) and not isinstance(r, NodeUnavailable):
            log.warning("account update of %s/%s on %s failed: %r", account, container, n.name, r)


# --------------------------------------------------------------------------- containers


def container_info(cluster: Cluster, account: str, container: str) -> DbInfo | None:
    place = cluster.place(account, container)
    info = cluster.read_first(place, lambda n: n.container_info(place.part, account, container))
    return None if info is None or info.deleted else info


def container_put(cluster: Cluster, account: str, container: str,
                  metadata: dict[str, tuple[str, str]]) -> bool:
    """Create the container (True) or merge its metadata (False: it existed)."""
    ensure_account(cluster, account)
    existed = container_info(cluster, account, container) is not None
    place = cluster.place(account, container)
    ts = now_timestamp()
    cluster.write_all(place, lambda n: n.container_put(place.part, account, container, ts, metadata),
                      "container creation")
    _update_account(cluster, account, container, container_info(cluster, account, container))
    return not existed


def container_post(cluster: Cluster, account: str, container: str,
                   metadata: dict[str, tuple[str, str]]) -> None:
    place = cluster.place(account, container)
    cluster.write_all(place, lambda n: n.container_post(place.part, account, container, metadata),
                      "container update")


def container_delete(cluster: Cluster, account: str, container: str) -> None:
    """Delete an empty container; NotEmpty (409) otherwise."""
    place = cluster.place(account, container)
    ts = now_timestamp()
    cluster.write_all(place, lambda n: n.container_delete(place.part, account, container, ts),
                      "container deletion")
    _update_account(cluster, account, container, None, deleted_ts=ts)


def container_list(cluster: Cluster, account: str, container: str, **kw) -> list[ContainerRow | str]:
    place = cluster.place(account, container)
    return cluster.read_first(place, lambda n: n.container_list(place.part, account, container, **kw)) or []


def _update_container(cluster: Cluster, account: str, container: str, row: ContainerRow) -> None:
    place = cluster.place(account, container)
    results = cluster.each(place.primaries, lambda n: n.container_update(place.part, account, container, row))
    for n, r in results:
        if isinstance(r, BaseException) and not isinstance(r, NodeUnavailable):
            log.warning("listing update of %s/%s on %s failed: %r", container, row.name, n.name, r)
    _update_account(cluster, account, container, container_info(cluster, account, container))


# --------------------------------------------------------------------------- objects


def object_info(cluster: Cluster, account: str, container: str, obj: str) -> ObjectInfo | None:
    """The newest live version's info (None: missing, deleted or expired)."""
    place = cluster.place(account, container, obj)

    def live(n: Node) -> ObjectInfo | None:
        info = n.object_info(place.part, account, container, obj)
        return info if info is not None and not info.deleted and not info.expired else None

    return cluster.read_first(place, live)


def object_reader(cluster: Cluster, account: str, container: str, obj: str) -> ObjectReader | None:
    place = cluster.place(account, container, obj)
    return cluster.read_first(place, lambda n: n.object_reader(place.part, account, container, obj))


class ReplicatedWrite:
    """One object PUT to every primary (or a handoff standing in for it)."""

    def __init__(self, cluster: Cluster, account: str, container: str, obj: str, timestamp: str):
        self.cluster, self.timestamp = cluster, timestamp
        self.names = (account, container, obj)
        self.place = cluster.place(account, container, obj)
        self.writers: list[ObjectWriter] = []
        handoffs = iter(self.place.handoffs)
        for node in self.place.primaries:
            while node is not None:
                try:
                    self.writers.append(node.object_writer(self.place.part, account, container, obj, timestamp))
                    break
                except NodeUnavailable:
                    node = next(handoffs, None)
        self._check_quorum()

    def _check_quorum(self) -> None:
        if len(self.writers) < self.place.quorum:
            message = (f"Only {len(self.writers)} of {len(self.place.primaries)} storage devices can "
                       f"take the object; {self.place.quorum} are needed.")
            self.abort()
            raise InsufficientStorage(message)

    def write(self, data: bytes) -> None:
        if len(self.writers) == 1:
            self._write_one(self.writers[0], data)
        else:
            results = self.cluster.each(self.writers, lambda w: w.write(data))
            failed = [w for w, r in results if isinstance(r, BaseException)]
            for w in failed:
                self._drop(w)
        self._check_quorum()

    def _write_one(self, w: ObjectWriter, data: bytes) -> None:
        try:
            w.write(data)
        except Exception:  # noqa: BLE001
            self._drop(w)

    def _drop(self, w: ObjectWriter) -> None:
        log.warning("a replica of %s failed during the write; continuing with %d",
                    "/".join(self.names), len(self.writers) - 1)
        w.abort()
        self.writers.remove(w)

    def commit(self, metadata: dict[str, str], row: ContainerRow) -> None:
        # the replicas' fsyncs and renames run side by side
        results = self.cluster.each(self.writers, lambda w: w.commit(metadata))
        committed = 0
        for _, r in results:
            if isinstance(r, BaseException):
                log.warning("commit of a replica of %s failed: %r", "/".join(self.names), r)
            else:
                committed += 1
        if committed < self.place.quorum:
            raise InsufficientStorage("The object could not be stored on enough devices.")
        _update_container(self.cluster, *self.names[:2], row)

    def abort(self) -> None:
        for w in self.writers:
            try:
                w.abort()
            except Exception:  # noqa: BLE001
                log.exception("abort of a replica failed")
        self.writers = []


def object_post(cluster: Cluster, account: str, container: str, obj: str,
                metadata: dict[str, str]) -> bool:
    place = cluster.place(account, container, obj)
    ts = now_timestamp()
    results = cluster.write_all(
        place, lambda n: n.object_post(place.part, account, container, obj, ts, metadata), "metadata update")
    return any(results)


def object_delete(cluster: Cluster, account: str, container: str, obj: str,
                  timestamp: str | None = None) -> bool:
    """Tombstone every replica; True if live data was there."""
    place = cluster.place(account, container, obj)
    ts = timestamp or now_timestamp()
    results = cluster.write_all(
        place, lambda n: n.object_delete(place.part, account, container, obj, ts), "deletion")
    _update_container(cluster, account, container, ContainerRow(obj, ts, 0, "", "", deleted=True))
    return any(results)


def chunked(reader: ObjectReader, offset: int = 0, length: int | None = None,
            names: tuple[str, str, str] | None = None, close: bool = True) -> Iterator[bytes]:
    """Stream a reader's data and close it at the end (or when the client goes).

    With ``names``, a replica that fails mid-stream (a lost disk, or data that
    fails its md5 check) is replaced by another replica of the same version,
    resuming where the first one stopped."""
    sent = 0
    failed: set[str] = set()
    whole = offset == 0 and length is None  # a whole read is checked against the md5 at its end
    try:
        while True:
            try:
                if whole:  # a replacement replica is read from the start too, so it is checked
                    pieces, skip = reader.read(0, None), sent
                else:
                    pieces, skip = reader.read(offset + sent, None if length is None else length - sent), 0
                for data in pieces:
                    if skip:
                        if len(data) <= skip:
                            skip -= len(data)
                            continue
                        data, skip = data[skip:], 0
                    sent += len(data)
                    yield data
                return
            except NodeUnavailable:
                if names is None or _cluster is None:
                    raise
                failed.add(_node_name(reader))
                reader.close()
                other = _other_replica(names, reader.info.timestamp, failed)
                if other is None:
                    raise
                reader = other
    finally:
        if close:  # (False: the caller reads more ranges from it, and closes it)
            reader.close()


def _node_name(reader: ObjectReader) -> str:
    return getattr(getattr(reader, "node", None), "name", "?")


def _other_replica(names: tuple[str, str, str], timestamp: str, failed: set[str]) -> ObjectReader | None:
    place = _cluster.place(*names)
    for node in [*place.primaries, *place.handoffs]:
        if node.name in failed:
            continue
        try:
            r = node.object_reader(place.part, *names)
        except NodeUnavailable:
            continue
        if r is not None and r.info.timestamp == timestamp:
            log.warning("a replica of %s failed while read; continuing from device %s", "/".join(names), node.name)
            return r
        if r is not None:
            r.close()
    return None


def pieces(source: Iterable[bytes], size: int = 1024 * 1024) -> Iterator[bytes]:
    """Re-cut a stream into pieces of about ``size`` (fewer replica round trips)."""
    buf, held = [], 0
    for data in source:
        buf.append(data)
        held += len(data)
        if held >= size:
            yield b"".join(buf)
            buf, held = [], 0
    if buf:
        yield b"".join(buf)


_cluster: Cluster | None = None


def configure(cluster: Cluster) -> Cluster:
    """The cluster every request goes to (made by the service's set-up, which picks the
    devices' ``Node`` kind: the proxy itself never touches files)."""
    global _cluster
    _cluster = cluster
    return _cluster


def cluster() -> Cluster:
    if _cluster is None:
        raise RuntimeError("object storage is not configured")
    return _cluster


def state_path(conf) -> Path:
    return conf.state_dir / "object"
