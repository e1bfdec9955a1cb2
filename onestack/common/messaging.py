"""What every bus backend shares: the interface, the wire format and its errors.

A message is versioned JSON, the same in the all-in-one process as on RabbitMQ::

    request       {"version": "1.0", "method": "instance_get", "args": {...}}
    reply         {"version": "1.0", "result": ...}
                  {"version": "1.0", "error": {"type": "NotFound", "message": "...", "code": 404}}
    notification  {"version": "1.0", "event_type": "...", "publisher": "...", "payload": {...}}

Only plain data crosses: dicts with string keys, lists (a tuple arrives as a list),
strings, finite numbers, booleans and None. Anything else (a datetime, a set, bytes,
an ORM row) is refused where it is sent, with the path to the offending value: the
sender converts it (times as ISO 8601 strings, ``timeutils.iso``). A receiver refuses a
message whose major version it does not know. An endpoint's exception crosses as
``{type, message, code}`` and is raised again on the caller's side as the same
``errors`` class (or the same Python built-in exception); any other type arrives as
``RemoteError`` with the original type's name.
"""

from __future__ import annotations

import asyncio
import builtins
import inspect
import json
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from onestack.common import errors

log = logging.getLogger(__name__)

VERSION = "1.0"
MAJOR = VERSION.split(".")[0]


class WireError(errors.ApiError):
    """A message that cannot cross the bus (not plain JSON, or not a bus message)."""


class VersionError(WireError):
    """A message of a major version this node does not speak."""


class RemoteError(errors.ApiError):
    """An endpoint's exception of a type this side does not know."""

    def __init__(self, remote_type: str, message: str, code: int = 500):
        super().__init__(message)
        self.remote_type = remote_type
        self.status = code if isinstance(code, int) and 400 <= code <= 599 else 500


class BusTimeout(errors.ServiceUnavailable):
    """A call got no reply within its timeout."""


class Undeliverable(errors.ServiceUnavailable):
    """Nobody serves the topic: the message was not delivered."""


def no_server(topic: str) -> Undeliverable:
    return Undeliverable(f"No agent is serving topic {topic!r}.")


def timed_out(topic: str, method: str, timeout: float) -> BusTimeout:
    return BusTimeout(f"No reply from {topic}.{method} within {timeout:g} s.")


# -------------------------------------------------------------------- codec


def _plain(value: Any, path: str, what: str) -> Any:
    """``value`` as JSON-ready data, or WireError naming where it is not."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise WireError(f"{what}: {path} is {value}, which JSON cannot carry.")
        return value
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):  # json.dumps would quietly turn 1 into "1"
                raise WireError(f"{what}: {path} has a key of type {type(k).__name__} ({k!r}); "
                                "only string keys cross the bus.")
            out[k] = _plain(v, f"{path}[{k!r}]", what)
        return out
    if isinstance(value, list | tuple):
        return [_plain(v, f"{path}[{i}]", what) for i, v in enumerate(value)]
    raise WireError(f"{what}: {path} is a {type(value).__name__}, which is not JSON; "
                    "send plain data (a time as an ISO 8601 string).")


def encode(body: dict, what: str) -> bytes:
    """One message (``what`` names it in errors: ``call compute.conductor.instance_get``)."""
    doc = {"version": VERSION, **{k: _plain(v, k, what) for k, v in body.items()}}
    return json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def decode(data: bytes, what: str) -> dict:
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise WireError(f"{what}: the message is not JSON ({e}).") from None
    version = doc.get("version") if isinstance(doc, dict) else None
    if not isinstance(version, str):
        raise WireError(f"{what}: the message has no version; it is not a bus message.")
    if version.split(".")[0] != MAJOR:
        raise VersionError(f"{what}: message version {version} is not supported "
                           f"(this node speaks {MAJOR}.x).")
    return doc


def request(topic: str, method: str, args: dict) -> bytes:
    return encode({"method": method, "args": args}, f"call {topic}.{method}")


def notification(event_type: str, payload: dict, publisher: str) -> bytes:
    return encode({"event_type": event_type, "publisher": publisher, "payload": payload},
                  f"notification {event_type}")


def error_doc(e: BaseException) -> dict:
    name = e.remote_type if isinstance(e, RemoteError) else type(e).__name__  # passed on: its own name
    if isinstance(e, errors.ApiError):
        return {"type": name, "message": e.message, "code": e.status}
    return {"type": name, "message": str(e), "code": 500}


def _api_errors() -> dict[str, type[errors.ApiError]]:
    """Every ApiError class this process has loaded, by name (errors.* first)."""
    found: dict[str, type[errors.ApiError]] = {}
    todo = [errors.ApiError]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.__name__, cls)
        todo.extend(cls.__subclasses__())
    found.update({n: c for n, c in vars(errors).items()
                  if isinstance(c, type) and issubclass(c, errors.ApiError)})
    return found


def exception(doc: dict) -> Exception:
    """The exception an error reply stands for."""
    name, message, code = str(doc.get("type")), str(doc.get("message")), doc.get("code", 500)
    cls = _api_errors().get(name)
    if cls is not None and cls is not RemoteError:
        try:
            e = cls(message)
        except TypeError:  # a class made with other arguments
            return RemoteError(name, message, code)
        if isinstance(code, int) and code != e.status:
            e.status = code
        return e
    builtin = getattr(builtins, name, None)
    if isinstance(builtin, type) and issubclass(builtin, Exception):
        return builtin(message)
    return RemoteError(name, message, code)


def result(data: bytes, topic: str, method: str) -> Any:
    """A reply's result, or its error raised."""
    doc = decode(data, f"reply of {topic}.{method}")
    if "error" in doc:
        raise exception(doc["error"] if isinstance(doc["error"], dict) else {})
    return doc.get("result")


# ---------------------------------------------------------------- serving


class Endpoint:
    """An object served on a topic: its public methods answer requests."""

    def __init__(self, topic: str, obj: object):
        self.topic = topic
        self.obj = obj

    def handle(self, data: bytes, cast: bool = False) -> bytes:
        """Run one request; the encoded reply (a result, or the error raised)."""
        method = "?"
        try:
            doc = decode(data, f"request to {self.topic}")
            method = str(doc.get("method"))
            fn = getattr(self.obj, method, None)
            if fn is None or method.startswith("_") or not callable(fn):
                raise errors.BadRequest(f"Topic {self.topic!r} has no method {method!r}.")
            args = doc.get("args") or {}
            out = asyncio.run(fn(**args)) if inspect.iscoroutinefunction(fn) else fn(**args)
            return encode({"result": out}, f"reply of {self.topic}.{method}")
        except Exception as e:
            if cast or not isinstance(e, errors.ApiError):  # else the caller sees it
                log.exception("%s %s.%s failed", "cast" if cast else "call", self.topic, method)
            return encode({"error": error_doc(e)}, f"error of {self.topic}.{method}")


# -------------------------------------------------------------- interface


class Bus(ABC):
    """RPC and notifications. ``call`` waits for a result (BusTimeout after ``timeout``
    seconds), ``cast`` hands a request to one server of the topic, ``fanout`` to every
    server of it; both raise Undeliverable at once when nobody serves the topic (a
    fanout to nobody is no error)."""

    @abstractmethod
    async def call(self, topic: str, method: str, timeout: float = 60, **kwargs) -> Any: ...

    @abstractmethod
    async def cast(self, topic: str, method: str, **kwargs) -> None: ...

    @abstractmethod
    async def fanout(self, topic: str, method: str, **kwargs) -> None: ...

    @abstractmethod
    def call_sync(self, topic: str, method: str, timeout: float = 60, **kwargs) -> Any:
        """``call`` from a plain thread (agents and API handlers run in threads)."""

    @abstractmethod
    def cast_sync(self, topic: str, method: str, **kwargs) -> None:
        """``cast`` from a plain thread: queued, never blocks on the work."""

    @abstractmethod
    def fanout_sync(self, topic: str, method: str, **kwargs) -> None:
        """``fanout`` from a plain thread."""

    @abstractmethod
    def serve(self, topic: str, endpoint: object) -> None:
        """Answer calls, casts and fanouts on ``topic`` with ``endpoint``'s public methods.
        Several servers of one topic share its calls and casts (one each) and all get
        its fanouts."""

    @abstractmethod
    def notify(self, event_type: str, payload: dict, publisher: str = "") -> None:
        """Publish an event; safe to call from any thread, never blocks."""

    @abstractmethod
    def subscribe(self, pattern: str, callback: Callable[[str, dict], Any]) -> None:
        """Receive events whose type matches the glob ``pattern``."""

    @abstractmethod
    def close(self) -> None:
        """Stop serving and let go of connections."""
