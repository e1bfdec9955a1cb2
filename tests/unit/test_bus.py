"""The message bus, each test on both backends: the in-process bus of the all-in-one
cloud and AMQP on a RabbitMQ broker this module starts. Both cross the same versioned
JSON codec, so they must behave alike: round trips, refused payloads, errors,
timeouts, undeliverable requests; and the AMQP bus survives a broker restart."""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from datetime import datetime

import aio_pika
import pytest

from onestack.common import bus, errors, messaging
from onestack.common.amqp import AmqpBus
from tests.cloud import RabbitMQ

WAIT = 30  # bound of every poll below: a broken bus fails, it never hangs the run


@pytest.fixture(scope="module")
def broker():
    try:
        b = RabbitMQ().start()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    yield b
    b.close()


@pytest.fixture(params=["inprocess", pytest.param("amqp", marks=pytest.mark.rabbitmq)])
def the_bus(request):
    b = AmqpBus(request.getfixturevalue("broker").url) if request.param == "amqp" else bus.InProcessBus()
    yield b
    b.close()


@pytest.fixture()
def topic():
    return f"test.{uuid.uuid4().hex[:8]}"


class Boom(Exception):
    """An error type only the endpoint's side knows."""


class Agent:
    def __init__(self):
        self.got: list = []
        self.arrived = threading.Event()
        self.release = threading.Event()

    def add(self, a, b):
        return a + b

    def echo(self, **kw):
        return kw

    def scribble(self, doc: dict) -> dict:
        doc["seen"] = True  # by reference this would reach the caller's dict
        return doc

    def record(self, x):
        self.got.append(x)
        self.arrived.set()

    async def double(self, x):
        await asyncio.sleep(0)
        return 2 * x

    def fail(self, kind: str):
        if kind == "notfound":
            raise errors.NotFound("Instance abc could not be found.")
        if kind == "conflict":
            raise errors.Conflict("Instance abc is locked.")
        if kind == "value":
            raise ValueError("bad size")
        if kind == "boom":
            raise Boom("the disk caught fire")
        raise LookupError("custom")

    def when(self):
        return datetime(2026, 1, 1)

    def wait(self):
        self.release.wait(WAIT)


def test_call_cast_fanout_notify_round_trips(the_bus, topic):
    a, b = Agent(), Agent()
    the_bus.serve(topic, a)
    assert the_bus.call_sync(topic, "add", a=1, b=2) == 3
    assert asyncio.run(the_bus.call(topic, "add", a=2, b=3)) == 5
    assert asyncio.run(the_bus.call(topic, "double", x=21)) == 42
    # what crosses is JSON: a tuple arrives as a list, nested data as sent
    assert the_bus.call_sync(topic, "echo", t=(1, 2), d={"k": [None, 1.5, "s", True]}) == {
        "t": [1, 2], "d": {"k": [None, 1.5, "s", True]}}
    sent = {"id": "x"}
    back = the_bus.call_sync(topic, "scribble", doc=sent)
    assert back == {"id": "x", "seen": True} and sent == {"id": "x"}  # a copy, never the object

    the_bus.cast_sync(topic, "record", x="cast")
    assert a.arrived.wait(WAIT) and a.got == ["cast"]
    a.arrived.clear()

    the_bus.serve(topic, b)  # a second server: fanouts reach both
    the_bus.fanout_sync(topic, "record", x="fan")
    assert a.arrived.wait(WAIT) and b.arrived.wait(WAIT)
    assert a.got[-1] == "fan" and b.got == ["fan"]

    events = []
    seen = threading.Event()

    def on_event(event_type, payload):
        events.append((event_type, payload))
        seen.set()

    the_bus.subscribe(f"{topic}.thing.*", on_event)
    payload = {"id": "t1", "tags": ["a"]}
    the_bus.notify(f"{topic}.other.created", {"id": "no"})
    the_bus.notify(f"{topic}.thing.created", payload, publisher="test")
    assert seen.wait(WAIT)
    assert events == [(f"{topic}.thing.created", payload)] and events[0][1] is not payload


@pytest.mark.parametrize("value, where", [
    (datetime(2026, 1, 1), "args['x']"),
    ({1, 2}, "args['x']"),
    (b"raw", "args['x']"),
    ({"n": {1: "int key"}}, "args['x']['n']"),
    ([float("nan")], "args['x'][0]"),
    (Agent(), "args['x']"),
])
def test_a_payload_that_is_not_json_is_refused(the_bus, topic, value, where):
    agent = Agent()
    the_bus.serve(topic, agent)
    for send in (lambda: the_bus.call_sync(topic, "record", x=value),
                 lambda: the_bus.cast_sync(topic, "record", x=value),
                 lambda: asyncio.run(the_bus.call(topic, "record", x=value))):
        with pytest.raises(messaging.WireError, match=re.escape(f"call {topic}.record: {where} ")):
            send()
    with pytest.raises(messaging.WireError, match="not JSON|JSON cannot|key of type"):
        the_bus.notify(f"{topic}.x", {"x": value})
    assert agent.got == []


def test_a_reply_that_is_not_json_fails_at_the_caller(the_bus, topic):
    the_bus.serve(topic, Agent())
    with pytest.raises(messaging.WireError, match=rf"reply of {topic}\.when: result is a datetime"):
        the_bus.call_sync(topic, "when")


@pytest.mark.parametrize("kind, cls, message", [
    ("notfound", errors.NotFound, "Instance abc could not be found."),
    ("conflict", errors.Conflict, "Instance abc is locked."),
    ("value", ValueError, "bad size"),
    ("lookup", LookupError, "custom"),
])
def test_an_endpoint_error_arrives_as_the_same_error(the_bus, topic, kind, cls, message):
    the_bus.serve(topic, Agent())
    with pytest.raises(cls) as e:
        the_bus.call_sync(topic, "fail", kind=kind)
    assert type(e.value) is cls and str(e.value) == message
    if isinstance(e.value, errors.ApiError):
        assert e.value.message == message and e.value.status == cls.status
    with pytest.raises(cls, match=message):
        asyncio.run(the_bus.call(topic, "fail", kind=kind))


def test_an_error_of_a_type_the_caller_does_not_know_keeps_its_name(the_bus, topic):
    the_bus.serve(topic, Agent())
    with pytest.raises(messaging.RemoteError, match="the disk caught fire") as e:
        the_bus.call_sync(topic, "fail", kind="boom")
    assert e.value.remote_type == "Boom" and e.value.status == 500
    passed_on = messaging.exception(messaging.error_doc(e.value))  # forwarded by a second hop
    assert isinstance(passed_on, messaging.RemoteError) and passed_on.remote_type == "Boom"


def test_an_unknown_method_is_a_bad_request(the_bus, topic):
    the_bus.serve(topic, Agent())
    for method in ("nosuch", "_private"):
        with pytest.raises(errors.BadRequest, match=f"has no method '{method}'"):
            the_bus.call_sync(topic, method)


def test_a_call_times_out(the_bus, topic):
    agent = Agent()
    the_bus.serve(topic, agent)
    try:
        with pytest.raises(messaging.BusTimeout, match=rf"No reply from {topic}\.wait within 0\.3 s"):
            the_bus.call_sync(topic, "wait", timeout=0.3)
        with pytest.raises(errors.ServiceUnavailable, match="No reply"):  # a 503 to an API caller
            asyncio.run(the_bus.call(topic, "wait", timeout=0.3))
    finally:
        agent.release.set()
    assert the_bus.call_sync(topic, "add", a=1, b=1) == 2  # the bus is fine afterwards


def test_nobody_serving_the_topic_fails_at_once(the_bus, topic):
    # (a call that waited for its timeout would hang the run for an hour; it fails now)
    with pytest.raises(messaging.Undeliverable, match=f"No agent is serving topic '{topic}'"):
        the_bus.call_sync(topic, "add", timeout=3600, a=1, b=2)
    with pytest.raises(messaging.Undeliverable):
        asyncio.run(the_bus.call(topic, "add", timeout=3600, a=1, b=2))
    with pytest.raises(errors.ServiceUnavailable):
        the_bus.cast_sync(topic, "record", x=1)
    the_bus.fanout_sync(topic, "record", x=1)  # a fanout to nobody is no error


def test_a_message_of_an_unknown_major_version_is_refused():
    with pytest.raises(messaging.VersionError, match="version 2.0 is not supported"):
        messaging.decode(b'{"version": "2.0", "method": "add", "args": {}}', "request")
    assert messaging.decode(b'{"version": "1.7", "result": 1}', "reply")["result"] == 1
    with pytest.raises(messaging.WireError, match="no version"):
        messaging.decode(b'{"result": 1}', "reply")
    reply = messaging.Endpoint("t", Agent()).handle(b'{"version": "2.0", "method": "add", "args": {}}')
    with pytest.raises(messaging.VersionError, match="version 2.0"):
        messaging.result(reply, "t", "add")


@pytest.mark.rabbitmq
def test_amqp_server_answers_a_newer_major_version_with_an_error(broker, topic):
    """A request from a newer node, straight onto the broker: the server refuses it, clearly."""
    b = AmqpBus(broker.url)
    b.serve(topic, Agent())

    async def ask():
        conn = await aio_pika.connect(broker.url)
        async with conn:
            ch = await conn.channel()
            replies = await ch.declare_queue(exclusive=True)
            await ch.default_exchange.publish(aio_pika.Message(
                b'{"version": "2.0", "method": "add", "args": {"a": 1, "b": 2}}',
                reply_to=replies.name, correlation_id="c1"), topic)
            async with replies.iterator(timeout=WAIT) as it:
                async for m in it:
                    return m.body

    try:
        with pytest.raises(messaging.VersionError, match="version 2.0 is not supported"):
            messaging.result(asyncio.run(ask()), topic, "add")
    finally:
        b.close()


@pytest.mark.rabbitmq
def test_amqp_bus_reconnects_after_a_broker_restart(broker, topic):
    b = AmqpBus(broker.url)
    agent = Agent()
    seen = threading.Event()
    try:
        b.serve(topic, agent)
        b.subscribe(f"{topic}.*", lambda t, p: seen.set())
        assert b.call_sync(topic, "add", a=1, b=2) == 3
        broker.stop()
        with pytest.raises(errors.ServiceUnavailable):  # down: a clear error, no hang
            b.call_sync(topic, "add", timeout=2, a=1, b=2)
        broker.start()
        # bounded poll: the client reconnects, declares its queues and consumers again
        answer = None
        for _ in range(WAIT * 2):
            try:
                answer = b.call_sync(topic, "add", timeout=5, a=2, b=3)
                break
            except errors.ServiceUnavailable:
                time.sleep(0.5)
        assert answer == 5
        b.cast_sync(topic, "record", x="after")
        assert agent.arrived.wait(WAIT) and agent.got == ["after"]
        b.notify(f"{topic}.back", {"ok": True})
        assert seen.wait(WAIT)
    finally:
        b.close()
