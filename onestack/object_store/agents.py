"""The storage agents: replicator, auditor and expirer on background threads.

``start`` runs each at its configured interval (``object_store.*_interval``,
0 disables it); a pass that fails is logged and the next one comes on time.
The passes are blocking file and SQLite work, so they run on plain daemon
threads, off the event loop. ``run_once`` is one pass on demand (the CLI).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from onestack.object_store import auditor, expirer, replicator
from onestack.object_store.localstore import Stores, local_stores
from onestack.object_store.ring import Ring, RingFile, ring_path

log = logging.getLogger(__name__)

KINDS = ("replicate", "audit", "expire")
AUDIT_BYTES_PER_SECOND = 50 * 1024 * 1024  # background audits leave the disk to clients


def run_once(kind: str, ring: Ring, expire_callback: expirer.DeleteFn | None = None, *,
             stop: threading.Event | None = None, audit_rate: float = 0,
             stores: Stores = local_stores) -> dict[str, int]:
    """One pass. The replicator and the expirer reach the devices ``stores`` gives
    (remote ones too, see remote.Nodes); the auditor reads this host's devices only
    (each storage node's server audits its own)."""
    if kind == "replicate":
        return replicator.replicate(ring, stores=stores, stop=stop)
    if kind == "audit":
        return auditor.audit(ring, bytes_per_second=audit_rate, stop=stop)
    if kind == "expire":
        if expire_callback is None:
            raise ValueError("the expirer needs a delete callback")
        return expirer.expire(ring, expire_callback, stores=stores, stop=stop)
    raise ValueError(f"unknown agent {kind!r} (one of {', '.join(KINDS)})")


class Agents:
    """The running agent threads; ``stop()`` ends them after their current item."""

    def __init__(self):
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.passes: dict[str, int] = {}
        self.last: dict[str, dict[str, int]] = {}

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(timeout)

    def _loop(self, kind: str, interval: float, get_ring: Callable[[], Ring],
              callback: expirer.DeleteFn | None, stores: Stores) -> None:
        while not self.stopping.wait(interval):
            try:
                stats = run_once(kind, get_ring(), callback, stop=self.stopping,
                                 audit_rate=AUDIT_BYTES_PER_SECOND, stores=stores)
            except Exception:  # noqa: BLE001 (log and keep the agent alive)
                log.exception("object %s pass failed", kind)
                continue
            self.passes[kind] = self.passes.get(kind, 0) + 1
            self.last[kind] = stats
            busy = any(v for k, v in stats.items() if k not in ("devices", "partitions",
                                                                "dbs", "objects", "bytes"))
            log.log(logging.INFO if busy else logging.DEBUG, "object %s pass: %s", kind,
                    ", ".join(f"{k} {v}" for k, v in stats.items() if v))


_running: Agents | None = None


def start(conf, cluster=None, expire_callback: expirer.DeleteFn | None = None,
          stores: Stores = local_stores, kinds: tuple[str, ...] = KINDS) -> Agents:
    """Start the agents of ``kinds`` (stopping any this process started before).

    The ring is ``cluster.ring`` when a cluster (the proxy's) is given, so the
    agents always agree with the proxy; ``cluster`` itself when it is a ring (or,
    for the node server's auditor, anything with the ``devices`` to walk); else
    the configured ring file. ``stores`` reaches the devices (remote.Nodes.store
    for a ring with storage nodes)."""
    global _running
    if _running is not None:
        _running.stop()
    if cluster is None:
        get_ring = RingFile(ring_path(conf)).get
    elif hasattr(type(cluster), "ring"):
        def get_ring() -> Ring:  # read on every pass: the proxy may swap its ring
            return cluster.ring
    else:
        def get_ring() -> Ring:
            return cluster
    o = conf.object_store
    agents = Agents()
    for kind, interval in (("replicate", o.replicator_interval), ("audit", o.auditor_interval),
                           ("expire", o.expirer_interval)):
        if interval <= 0 or kind not in kinds or (kind == "expire" and expire_callback is None):
            continue
        t = threading.Thread(target=agents._loop, args=(kind, interval, get_ring, expire_callback, stores),
                             name=f"object-{kind}", daemon=True)
        t.start()
        agents.threads.append(t)
    _running = agents
    return agents


def stop() -> None:
    global _running
    if _running is not None:
        _running.stop()
        _running = None
