"""The bus on RabbitMQ (AMQP 0-9-1, aio-pika): ``bus.backend = "amqp"``.

The layout is oslo.messaging's, so Nova's ``compute.<host>`` and Neutron's fanout
notifiers map one to one:

- a topic is a queue of that name (not durable, deleted with its last consumer) on
  the default exchange: its servers share its calls and casts;
- ``<topic>_fanout`` is a fanout exchange; each server binds a private queue to it;
- calls carry ``reply_to`` (this process's private reply queue) and a correlation
  id; the request expires in the broker when the caller stops waiting;
- ``onestack.notifications`` is a fanout exchange; each process binds one private
  queue and filters events by its subscribers' glob patterns.

Requests and casts are published mandatory with publisher confirms: a topic nobody
serves fails at once (Undeliverable) instead of waiting for a timeout. The
connection is robust: after a broker restart it reconnects and declares its queues,
exchanges and consumers again. aio-pika runs on a loop of its own in one thread;
the sync API (agents and API handlers run in threads) hands coroutines to it, and
handlers run on a thread pool per served topic.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fnmatch
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from onestack.common import errors, messaging
from onestack.common.messaging import Bus

log = logging.getLogger(__name__)

EVENTS = "onestack.notifications"
WORKERS_PER_TOPIC = 64  # as the in-process bus: one pool per served topic
RECONNECT_INTERVAL = 1.0  # seconds between attempts after the broker went away
PUBLISH_WAIT = 10.0  # how long a cast or an event waits for a lost connection to come back


def _redacted(url: str) -> str:
    u = urlsplit(url)
    host = u.hostname or ""
    return f"{u.scheme}://{host}{f':{u.port}' if u.port else ''}{u.path}"


class _Server:
    def __init__(self, topic: str, obj: object):
        self.endpoint = messaging.Endpoint(topic, obj)
        self.pool = ThreadPoolExecutor(max_workers=WORKERS_PER_TOPIC, thread_name_prefix=f"bus-{topic}")


class AmqpBus(Bus):
    def __init__(self, url: str, connect_timeout: float = 30):
        if not url:
            raise ValueError("bus.url is empty: the amqp backend needs amqp://user:password@host:port/vhost")
        self.url = url
        self._name = f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        self._pending: dict[str, asyncio.Future] = {}
        self._subscribers: list[tuple[str, Callable]] = []
        self._servers: list[_Server] = []
        self._fanouts: dict[str, aio_pika.abc.AbstractExchange] = {}
        self._lock = threading.Lock()
        self._events_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bus-events")  # in order
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="bus-amqp", daemon=True)
        self._thread.start()
        try:
            self._run(self._connect(), connect_timeout)
        except Exception as e:
            self.close()
            raise errors.ServiceUnavailable(f"Cannot reach the message bus at {_redacted(url)}: "
                                            f"{e or type(e).__name__}") from None

    # -- plumbing

    def _run(self, coro: Coroutine, timeout: float | None = None) -> Any:
        """Run ``coro`` on the bus loop from a plain thread and wait for it."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a sync bus call from the bus's own loop would deadlock")
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise

    async def _on_loop(self, coro: Coroutine) -> Any:
        """Await ``coro`` on the bus loop from any other loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    async def _connect(self) -> None:
        self._conn = await aio_pika.connect_robust(self.url, reconnect_interval=RECONNECT_INTERVAL,
                                                   client_properties={"connection_name": self._name})
        # publishes wait for the broker's confirm; a mandatory one nobody can take raises
        self._pub = await self._conn.channel(publisher_confirms=True, on_return_raises=True)
        self._sub = await self._conn.channel()
        self._events = await self._pub.declare_exchange(EVENTS, aio_pika.ExchangeType.FANOUT)
        self._replies = await self._sub.declare_queue(f"reply.{self._name}", exclusive=True, auto_delete=True)
        await self._replies.consume(self._on_reply, no_ack=True)
        events = await self._sub.declare_queue(f"events.{self._name}", exclusive=True, auto_delete=True)
        await events.bind(EVENTS)
        await events.consume(self._on_event, no_ack=True)

    async def _publish(self, exchange: aio_pika.abc.AbstractExchange, key: str, message: aio_pika.Message,
                       topic: str, mandatory: bool = True) -> None:
        try:
            await exchange.publish(message, key, mandatory=mandatory)
        except aio_pika.exceptions.PublishError:
            raise messaging.no_server(topic) from None
        except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError) as e:
            raise errors.ServiceUnavailable(f"The message bus is not reachable: {e or type(e).__name__}") from None

    async def _fanout_exchange(self, topic: str) -> aio_pika.abc.AbstractExchange:
        ex = self._fanouts.get(topic)
        if ex is None:  # publishing to an exchange that does not exist would close the channel
            ex = self._fanouts[topic] = await self._pub.declare_exchange(f"{topic}_fanout",
                                                                           aio_pika.ExchangeType.FANOUT)
        return ex

    # -- calls

    async def _call(self, topic: str, method: str, data: bytes, timeout: float) -> Any:
        corr = uuid.uuid4().hex
        fut = self._loop.create_future()
        self._pending[corr] = fut
        msg = aio_pika.Message(data, content_type="application/json", correlation_id=corr,
                               reply_to=self._replies.name, expiration=max(timeout, 0.001))
        try:
            async with asyncio.timeout(timeout):
                await self._publish(self._pub.default_exchange, topic, msg, topic)
                reply = await fut
        except TimeoutError:
            raise messaging.timed_out(topic, method, timeout) from None
        finally:
            self._pending.pop(corr, None)
        return messaging.result(reply, topic, method)

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        fut = self._pending.get(message.correlation_id or "")
        if fut is not None and not fut.done():
            fut.set_result(message.body)

    def call_sync(self, topic: str, method: str, timeout: float = 60, **kwargs) -> Any:
        data = messaging.request(topic, method, kwargs)
        return self._run(self._call(topic, method, data, timeout))

    async def call(self, topic: str, method: str, timeout: float = 60, **kwargs) -> Any:
        data = messaging.request(topic, method, kwargs)
        return await self._on_loop(self._call(topic, method, data, timeout))

    # -- casts and fanouts

    async def _cast(self, topic: str, data: bytes) -> None:
        msg = aio_pika.Message(data, content_type="application/json")
        async with asyncio.timeout(PUBLISH_WAIT):
            await self._publish(self._pub.default_exchange, topic, msg, topic)

    async def _fanout(self, topic: str, data: bytes) -> None:
        msg = aio_pika.Message(data, content_type="application/json")
        async with asyncio.timeout(PUBLISH_WAIT):
            await self._publish(await self._fanout_exchange(topic), "", msg, topic, mandatory=False)

    def cast_sync(self, topic: str, method: str, **kwargs) -> None:
        self._run(self._cast(topic, messaging.request(topic, method, kwargs)))

    async def cast(self, topic: str, method: str, **kwargs) -> None:
        await self._on_loop(self._cast(topic, messaging.request(topic, method, kwargs)))

    def fanout_sync(self, topic: str, method: str, **kwargs) -> None:
        self._run(self._fanout(topic, messaging.request(topic, method, kwargs)))

    async def fanout(self, topic: str, method: str, **kwargs) -> None:
        await self._on_loop(self._fanout(topic, messaging.request(topic, method, kwargs)))

    # -- serving

    def serve(self, topic: str, endpoint: object) -> None:
        server = _Server(topic, endpoint)
        with self._lock:
            self._servers.append(server)
        self._run(self._serve(topic, server), 60)

    async def _serve(self, topic: str, server: _Server) -> None:
        async def on_request(message: AbstractIncomingMessage) -> None:
            cast = not message.reply_to
            reply = await self._loop.run_in_executor(server.pool, server.endpoint.handle, message.body, cast)
            if cast:
                return
            answer = aio_pika.Message(reply, content_type="application/json",
                                      correlation_id=message.correlation_id)
            try:  # not mandatory: a caller that gave up took its reply queue with it
                async with asyncio.timeout(PUBLISH_WAIT):
                    await self._pub.default_exchange.publish(answer, message.reply_to, mandatory=False)
            except Exception as e:  # noqa: BLE001 (the caller times out; nobody else to tell)
                log.warning("reply to %s.%s lost: %s", topic, message.correlation_id, e)

        queue = await self._sub.declare_queue(topic, auto_delete=True)
        await queue.consume(on_request, no_ack=True)
        fanout = await self._fanout_exchange(topic)
        mine = await self._sub.declare_queue(f"{topic}_fanout.{self._name}.{uuid.uuid4().hex[:8]}",
                                             exclusive=True, auto_delete=True)
        await mine.bind(fanout)
        await mine.consume(on_request, no_ack=True)

    # -- notifications

    def subscribe(self, pattern: str, callback: Callable[[str, dict], Any]) -> None:
        with self._lock:
            self._subscribers.append((pattern, callback))

    def notify(self, event_type: str, payload: dict, publisher: str = "") -> None:
        msg = aio_pika.Message(messaging.notification(event_type, payload, publisher),
                               content_type="application/json")

        async def publish():
            async with asyncio.timeout(PUBLISH_WAIT):
                await self._publish(self._events, "", msg, EVENTS, mandatory=False)

        def done(fut: concurrent.futures.Future) -> None:
            if not fut.cancelled() and fut.exception() is not None:
                log.warning("notification %s lost: %s", event_type, fut.exception())

        asyncio.run_coroutine_threadsafe(publish(), self._loop).add_done_callback(done)

    async def _on_event(self, message: AbstractIncomingMessage) -> None:
        self._events_pool.submit(self._deliver, message.body)

    def _deliver(self, data: bytes) -> None:
        try:
            doc = messaging.decode(data, "notification")
        except messaging.WireError as e:
            log.error("dropped a notification: %s", e)
            return
        event_type = str(doc.get("event_type"))
        with self._lock:
            targets = [cb for pat, cb in self._subscribers if fnmatch.fnmatchcase(event_type, pat)]
        for cb in targets:
            try:  # each subscriber its own copy, as in-process
                cb(event_type, messaging.decode(data, "notification")["payload"])
            except Exception:
                log.exception("subscriber of %s failed", event_type)

    # -- life cycle

    def close(self) -> None:
        if self._loop.is_running() and hasattr(self, "_conn"):
            try:
                self._run(self._conn.close(), 10)
            except Exception as e:  # noqa: BLE001 (closing anyway)
                log.warning("closing the bus connection: %s", e)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        with self._lock:
            servers, self._servers = self._servers, []
        for s in servers:
            s.pool.shutdown(wait=False)
        self._events_pool.shutdown(wait=False)
