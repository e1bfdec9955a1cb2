"""The message bus: RPC between a service's API and its agents, and notifications.

As in the book's chapter 4: ``call`` sends a request to a topic and waits for
the answer, ``cast`` sends and forgets; ``notify`` publishes an event
(``identity.project.created``) to whoever subscribed. The in-process backend
serves the all-in-one cloud; an AMQP backend with the same interface comes
with scale-out.
"""

from __future__ import annotations

import asyncio
import fnmatch
import inspect
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from onestack.common import errors

log = logging.getLogger(__name__)


class Bus(ABC):
    @abstractmethod
    async def call(self, topic: str, method: str, timeout: float = 60, **kwargs) -> Any: ...

    @abstractmethod
    async def cast(self, topic: str, method: str, **kwargs) -> None: ...

    @abstractmethod
    def call_sync(self, topic: str, method: str, timeout: float = 60, **kwargs) -> Any:
        """``call`` from a plain thread (agents and API handlers run in threads)."""

    @abstractmethod
    def cast_sync(self, topic: str, method: str, **kwargs) -> None:
        """``cast`` from a plain thread: queued, never blocks on the work."""

    @abstractmethod
    def serve(self, topic: str, endpoint: object) -> None:
        """Answer calls and casts on ``topic`` with ``endpoint``'s public methods."""

    @abstractmethod
    def notify(self, event_type: str, payload: dict, publisher: str = "") -> None:
        """Publish an event; safe to call from any thread, never blocks."""

    @abstractmethod
    def subscribe(self, pattern: str, callback: Callable[[str, dict], Any]) -> None:
        """Receive events whose type matches the glob ``pattern``."""


class InProcessBus(Bus):
    def __init__(self):
        self._pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="bus-cast")
        self._endpoints: dict[str, object] = {}
        self._subscribers: list[tuple[str, Callable]] = []
        self._lock = threading.Lock()

    def serve(self, topic: str, endpoint: object) -> None:
        self._endpoints[topic] = endpoint

    def _method(self, topic: str, method: str):
        endpoint = self._endpoints.get(topic)
        if endpoint is None:
            raise errors.ServiceUnavailable(f"No agent is serving topic {topic!r}.")
        fn = getattr(endpoint, method, None)
        if fn is None or method.startswith("_"):
            raise errors.BadRequest(f"Topic {topic!r} has no method {method!r}.")
        return fn

    async def call(self, topic: str, method: str, timeout: float = 60, **kwargs) -> Any:
        fn = self._method(topic, method)
        if inspect.iscoroutinefunction(fn):
            return await asyncio.wait_for(fn(**kwargs), timeout)
        return await asyncio.wait_for(asyncio.to_thread(fn, **kwargs), timeout)

    async def cast(self, topic: str, method: str, **kwargs) -> None:
        fn = self._method(topic, method)

        async def run():
            try:
                if inspect.iscoroutinefunction(fn):
                    await fn(**kwargs)
                else:
                    await asyncio.to_thread(fn, **kwargs)
            except Exception:
                log.exception("cast %s.%s failed", topic, method)

        asyncio.get_running_loop().create_task(run())

    def call_sync(self, topic: str, method: str, timeout: float = 60, **kwargs) -> Any:
        fn = self._method(topic, method)
        if inspect.iscoroutinefunction(fn):
            return asyncio.run(asyncio.wait_for(fn(**kwargs), timeout))
        return fn(**kwargs)

    def cast_sync(self, topic: str, method: str, **kwargs) -> None:
        fn = self._method(topic, method)

        def run():
            try:
                if inspect.iscoroutinefunction(fn):
                    asyncio.run(fn(**kwargs))
                else:
                    fn(**kwargs)
            except Exception:
                log.exception("cast %s.%s failed", topic, method)

        self._pool.submit(run)

    def subscribe(self, pattern: str, callback: Callable[[str, dict], Any]) -> None:
        with self._lock:
            self._subscribers.append((pattern, callback))

    def notify(self, event_type: str, payload: dict, publisher: str = "") -> None:
        with self._lock:
            targets = [cb for pat, cb in self._subscribers if fnmatch.fnmatchcase(event_type, pat)]
        for cb in targets:
            try:
                cb(event_type, payload)
            except Exception:
                log.exception("subscriber of %s failed", event_type)


_bus: Bus | None = None


def get() -> Bus:
    global _bus
    if _bus is None:
        _bus = InProcessBus()
    return _bus


def configure(backend: str, url: str = "") -> Bus:
    global _bus
    if backend != "inprocess":
        raise ValueError(f"bus backend {backend!r} is not available (use 'inprocess')")
    _bus = InProcessBus()
    return _bus
