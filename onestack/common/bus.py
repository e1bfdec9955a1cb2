"""The message bus: RPC between a service's API and its agents, and notifications.

As in the book's chapter 4: ``call`` sends a request to a topic and waits for
the answer, ``cast`` sends and forgets, ``fanout`` sends to every server of a
topic; ``notify`` publishes an event (``identity.project.created``) to whoever
subscribed. Two backends (``bus.backend``): the in-process bus of the all-in-one
cloud (the default) and AMQP on RabbitMQ (onestack/common/amqp.py). Both send every
message through the same versioned JSON codec (onestack/common/messaging.py), so a
payload that could not cross the wire fails in the all-in-one too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fnmatch
import itertools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from onestack.common import amqp, messaging
from onestack.common.messaging import Bus, BusTimeout, Undeliverable, WireError

__all__ = ["Bus", "BusTimeout", "InProcessBus", "Undeliverable", "WireError", "configure", "get"]

log = logging.getLogger(__name__)

# Requests on one topic run on that topic's own threads, as each RPC server of
# oslo.messaging has its own pool: an agent's handler calling the conductor then
# never waits for a thread its own topic holds.
WORKERS_PER_TOPIC = 64


class _Server:
    def __init__(self, topic: str, obj: object):
        self.endpoint = messaging.Endpoint(topic, obj)
        self.pool = ThreadPoolExecutor(max_workers=WORKERS_PER_TOPIC, thread_name_prefix=f"bus-{topic}")


class InProcessBus(Bus):
    """The all-in-one bus: threads instead of a broker, the wire format all the same.
    Requests, replies and events are encoded and decoded as on RabbitMQ, so no object
    is shared by reference; an event reaches its subscribers before ``notify`` returns."""

    def __init__(self):
        self._servers: dict[str, list[_Server]] = {}
        self._subscribers: list[tuple[str, Callable]] = []
        self._lock = threading.Lock()
        self._turn = itertools.count()

    def serve(self, topic: str, endpoint: object) -> None:
        with self._lock:
            servers = self._servers.setdefault(topic, [])
            if not any(s.endpoint.obj is endpoint for s in servers):
                servers.append(_Server(topic, endpoint))

    def _servers_of(self, topic: str) -> list[_Server]:
        with self._lock:
            return list(self._servers.get(topic, ()))

    def _one(self, topic: str) -> _Server:
        servers = self._servers_of(topic)
        if not servers:
            raise messaging.no_server(topic)
        return servers[next(self._turn) % len(servers)]

    def _submit(self, topic: str, method: str, kwargs: dict) -> concurrent.futures.Future:
        data = messaging.request(topic, method, kwargs)
        server = self._one(topic)
        return server.pool.submit(server.endpoint.handle, data)

    def call_sync(self, topic: str, method: str, timeout: float = 60, **kwargs) -> Any:
        fut = self._submit(topic, method, kwargs)
        try:
            reply = fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()  # still queued: it never runs (as a request expires in RabbitMQ)
            raise messaging.timed_out(topic, method, timeout) from None
        return messaging.result(reply, topic, method)

    async def call(self, topic: str, method: str, timeout: float = 60, **kwargs) -> Any:
        fut = asyncio.wrap_future(self._submit(topic, method, kwargs))
        try:
            reply = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise messaging.timed_out(topic, method, timeout) from None
        return messaging.result(reply, topic, method)

    def cast_sync(self, topic: str, method: str, **kwargs) -> None:
        data = messaging.request(topic, method, kwargs)
        server = self._one(topic)
        server.pool.submit(server.endpoint.handle, data, True)

    async def cast(self, topic: str, method: str, **kwargs) -> None:
        self.cast_sync(topic, method, **kwargs)

    def fanout_sync(self, topic: str, method: str, **kwargs) -> None:
        data = messaging.request(topic, method, kwargs)
        for server in self._servers_of(topic):
            server.pool.submit(server.endpoint.handle, data, True)

    async def fanout(self, topic: str, method: str, **kwargs) -> None:
        self.fanout_sync(topic, method, **kwargs)

    def subscribe(self, pattern: str, callback: Callable[[str, dict], Any]) -> None:
        with self._lock:
            self._subscribers.append((pattern, callback))

    def notify(self, event_type: str, payload: dict, publisher: str = "") -> None:
        data = messaging.notification(event_type, payload, publisher)
        with self._lock:
            targets = [cb for pat, cb in self._subscribers if fnmatch.fnmatchcase(event_type, pat)]
        for cb in targets:
            try:
                cb(event_type, messaging.decode(data, f"notification {event_type}")["payload"])
            except Exception:
                log.exception("subscriber of %s failed", event_type)

    def close(self) -> None:
        with self._lock:
            servers = [s for group in self._servers.values() for s in group]
            self._servers.clear()
        for s in servers:
            s.pool.shutdown(wait=False)


_bus: Bus | None = None


def get() -> Bus:
    global _bus
    if _bus is None:
        _bus = InProcessBus()
    return _bus


def configure(backend: str, url: str = "") -> Bus:
    """Make the process's bus: ``inprocess`` or ``amqp`` (RabbitMQ at ``url``)."""
    global _bus
    if backend == "inprocess":
        new: Bus = InProcessBus()
    elif backend == "amqp":
        new = amqp.AmqpBus(url)
    else:
        raise ValueError(f"bus backend {backend!r} is not available (use 'inprocess' or 'amqp')")
    if _bus is not None:
        _bus.close()
    _bus = new
    return new
