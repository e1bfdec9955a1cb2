"""Devices of other hosts: ``RemoteNode`` (the proxy's ``Node``) and ``RemoteStore``
(the replicator's ``DeviceStore``) over HTTP to a node server (server.py; the
protocol is in wire.py), and ``Nodes``, which gives every ring device its
``Node`` and ``DeviceStore``, local or remote.

A node that does not answer, answers an error, or refuses our signature is a
failed replica, exactly like a dead local disk: every method raises
``NodeUnavailable`` and the proxy goes on with the other replicas (quorum
writes, reads that fall back). After a connection failure the node is left
alone for ``ERROR_SUPPRESSION`` seconds, so requests do not each wait for the
connect timeout of a dead host (Swift's error limiting).
"""

from __future__ import annotations

import functools
import json
import logging
import queue
import threading
import time
from collections.abc import Iterable, Iterator

import httpx

from onestack.object_store import wire
from onestack.object_store.localstore import LocalStore
from onestack.object_store.node import (
    AccountRow,
    ContainerRow,
    DbInfo,
    DeviceStore,
    Node,
    NodeUnavailable,
    NotEmpty,
    ObjectInfo,
    ObjectReader,
    ObjectWriter,
)
from onestack.object_store.storage import LocalNode

log = logging.getLogger(__name__)

ERROR_SUPPRESSION = 5.0  # seconds a node that did not answer is not asked
QUEUE_PIECES = 8  # frame headers and pieces of a PUT waiting for the node (about 4 MiB)
CLIENT_TIMEOUT = 60.0  # a PUT whose data stops coming for this long is cut (Swift's client_timeout)
_ABORT = object()


class NodeClient:
    """One node server: pooled keep-alive connections, signed requests, timeouts.
    Thread-safe; shared by every device of the node."""

    def __init__(self, url: str, secret: str, *, timeout: float = 10.0,
                 connect_timeout: float = 1.0, transport: httpx.BaseTransport | None = None):
        self.url, self.secret, self.timeout = url.rstrip("/"), secret, timeout
        self.connect_timeout = connect_timeout
        self.http = httpx.Client(base_url=self.url, trust_env=False, transport=transport,
                                 timeout=httpx.Timeout(timeout, connect=connect_timeout),
                                 limits=httpx.Limits(max_connections=100, max_keepalive_connections=32))
        self.down_until = 0.0

    def __repr__(self) -> str:
        return f"NodeClient({self.url})"

    def close(self) -> None:
        self.http.close()

    def send(self, method: str, path: str, *, params: dict | None = None, headers: dict | None = None,
             body: bytes | Iterable[bytes] | None = None, stream: bool = False) -> httpx.Response:
        """The node's response (any status); NodeUnavailable if there is none."""
        if time.monotonic() < self.down_until:
            raise NodeUnavailable(f"node {self.url} did not answer a moment ago")
        if not self.secret:
            raise NodeUnavailable(f"node {self.url}: object_store.node_secret is not set here")
        req = self.http.build_request(method, path, params=params, headers=headers, content=body)
        req.headers[wire.AUTH_HEADER] = wire.sign(self.secret, method, req.url.raw_path)
        try:
            resp = self.http.send(req, stream=stream)
        except (httpx.ConnectError, httpx.ConnectTimeout) as e:
            self.down_until = time.monotonic() + ERROR_SUPPRESSION
            log.warning("object node %s does not answer (%s): its devices count as failed "
                        "replicas for %g s", self.url, e, ERROR_SUPPRESSION)
            raise NodeUnavailable(f"node {self.url} does not answer: {e}") from None
        except httpx.TransportError as e:  # timeouts, dropped connections, broken responses
            raise NodeUnavailable(f"node {self.url}: {e!r}") from None
        if resp.status_code in (401, 403):
            log.error("node %s refused the request (HTTP %d): object_store.node_secret must be "
                      "the same here and there, and the clocks within %d s", self.url,
                      resp.status_code, wire.MAX_SKEW)
        return resp

    def call(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), missing=(404,),
             **kw) -> httpx.Response | None:
        """A request whose answer is read whole: the response for an ``ok`` status,
        None for a ``missing`` one, NodeUnavailable for anything else."""
        resp = self.send(method, path, **kw)
        if resp.status_code in ok:
            return resp
        if resp.status_code in missing:
            return None
        raise unavailable(self.url, method, path, resp)


def unavailable(url: str, method: str, path: str, resp: httpx.Response) -> NodeUnavailable:
    try:
        detail = resp.read()[:200].decode("utf-8", "replace")
    except (httpx.HTTPError, httpx.StreamError):
        detail = ""
    return NodeUnavailable(f"node {url}: {method} {path}: HTTP {resp.status_code} {detail}".rstrip())


# -- the proxy's Node ------------------------------------------------------------------------


def _answers(fn):
    """An answer that does not parse is a failed replica too (never an error of the proxy)."""

    @functools.wraps(fn)
    def wrapper(self, *args, **kw):
        try:
            return fn(self, *args, **kw)
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise NodeUnavailable(f"device {self.name}: the node's answer makes no sense: {e!r}") from None

    return wrapper


class RemoteNode(Node):
    """A device of a node server, named in the node's URLs by ``device.path``."""

    def __init__(self, device, client: NodeClient, ring=None):
        ring = ring if ring is not None else getattr(device, "_ring", None)
        if ring is None:
            raise ValueError("RemoteNode needs the ring (for its hash prefix and suffix)")
        self.device, self.client = device, client
        self.id, self.name, self.zone = device.id, device.name, device.zone
        self.dev = device.path
        self._hash = ring.hash_path

    def __repr__(self) -> str:
        return f"RemoteNode({self.name}, {self.client.url}/{self.dev})"

    def _headers(self, *names: str, timestamp: str | None = None) -> dict[str, str]:
        h = {"X-Backend-Hash": self._hash(*names)}
        if timestamp is not None:
            h["X-Timestamp"] = timestamp
        return h

    def _json(self, method: str, path: str, headers: dict, body=None, *, ok=(200,),
              missing=(404,), params: dict | None = None):
        resp = self.client.call(method, path, ok=ok, missing=missing, headers=headers,
                                params=params, body=None if body is None else wire.dumps(body))
        if resp is None:
            return None
        return resp.status_code, (resp.json() if resp.content else None)

    # -- objects -----------------------------------------------------------------------

    @_answers
    def object_writer(self, part, account, container, obj, timestamp) -> ObjectWriter:
        return RemoteObjectWriter(self, wire.path("object", self.dev, part, account, container, obj),
                                  self._headers(account, container, obj, timestamp=timestamp))

    @_answers
    def object_info(self, part, account, container, obj) -> ObjectInfo | None:
        r = self._json("GET", wire.path("object", self.dev, part, account, container, obj),
                       self._headers(account, container, obj), params={"info": "1"})
        return None if r is None else wire.to_object_info(r[1])

    @_answers
    def object_reader(self, part, account, container, obj) -> ObjectReader | None:
        path = wire.path("object", self.dev, part, account, container, obj)
        headers = self._headers(account, container, obj)
        opened = open_object(self.client, path, headers)
        return None if opened is None else RemoteObjectReader(self, path, headers, *opened)

    @_answers
    def object_post(self, part, account, container, obj, timestamp, metadata) -> bool:
        return self._json("POST", wire.path("object", self.dev, part, account, container, obj),
                          self._headers(account, container, obj, timestamp=timestamp),
                          {"metadata": metadata}, ok=(202,)) is not None

    @_answers
    def object_delete(self, part, account, container, obj, timestamp) -> bool:
        return self._json("DELETE", wire.path("object", self.dev, part, account, container, obj),
                          self._headers(account, container, obj, timestamp=timestamp),
                          ok=(204,)) is not None

    # -- containers ------------------------------------------------------------------------

    @_answers
    def container_put(self, part, account, container, timestamp, metadata) -> bool:
        r = self._json("PUT", wire.path("container", self.dev, part, account, container),
                       self._headers(account, container, timestamp=timestamp),
                       {"metadata": wire.db_meta(metadata)}, ok=(201, 202), missing=())
        return r[0] == 201

    @_answers
    def container_info(self, part, account, container) -> DbInfo | None:
        r = self._json("GET", wire.path("container", self.dev, part, account, container),
                       self._headers(account, container))
        return None if r is None else wire.to_db_info(r[1])

    @_answers
    def container_post(self, part, account, container, metadata) -> bool:
        return self._json("POST", wire.path("container", self.dev, part, account, container),
                          self._headers(account, container), {"metadata": wire.db_meta(metadata)},
                          ok=(204,)) is not None

    @_answers
    def container_delete(self, part, account, container, timestamp) -> bool:
        r = self._json("DELETE", wire.path("container", self.dev, part, account, container),
                       self._headers(account, container, timestamp=timestamp), ok=(204, 409))
        if r is not None and r[0] == 409:
            raise NotEmpty((r[1] or {}).get("error", f"container {container} is not empty"))
        return r is not None

    @_answers
    def container_update(self, part, account, container, row: ContainerRow) -> None:
        self._json("PUT", wire.path("container", self.dev, part, account, container, row.name),
                   self._headers(account, container), wire.row(row), ok=(204,), missing=())

    @_answers
    def container_list(self, part, account, container, *, limit, marker="", end_marker="",
                       prefix="", delimiter="", reverse=False, path=None):
        params = _list_params(limit, marker, end_marker, prefix, delimiter, reverse)
        if path is not None:
            params["path"] = path
        r = self._json("GET", wire.path("container", self.dev, part, account, container),
                       self._headers(account, container), params=params)
        return None if r is None else wire.to_listing(r[1], ContainerRow)

    # -- accounts ------------------------------------------------------------------------------

    @_answers
    def account_put(self, part, account, timestamp) -> bool:
        r = self._json("PUT", wire.path("account", self.dev, part, account),
                       self._headers(account, timestamp=timestamp), ok=(201, 202), missing=())
        return r[0] == 201

    @_answers
    def account_info(self, part, account) -> DbInfo | None:
        r = self._json("GET", wire.path("account", self.dev, part, account), self._headers(account))
        return None if r is None else wire.to_db_info(r[1])

    @_answers
    def account_post(self, part, account, metadata) -> bool:
        return self._json("POST", wire.path("account", self.dev, part, account),
                          self._headers(account), {"metadata": wire.db_meta(metadata)},
                          ok=(204,)) is not None

    @_answers
    def account_update(self, part, account, row: AccountRow) -> None:
        self._json("PUT", wire.path("account", self.dev, part, account, row.name),
                   self._headers(account), wire.row(row), ok=(204,), missing=())

    @_answers
    def account_list(self, part, account, *, limit, marker="", end_marker="", prefix="",
                     delimiter="", reverse=False):
        r = self._json("GET", wire.path("account", self.dev, part, account), self._headers(account),
                       params=_list_params(limit, marker, end_marker, prefix, delimiter, reverse))
        return None if r is None else wire.to_listing(r[1], AccountRow)


def _list_params(limit, marker, end_marker, prefix, delimiter, reverse) -> dict:
    return {"list": "1", "limit": str(limit), "marker": marker, "end_marker": end_marker,
            "prefix": prefix, "delimiter": delimiter, "reverse": "1" if reverse else ""}


# -- object data -------------------------------------------------------------------------


def open_object(client: NodeClient, path: str, headers: dict,
                span: tuple[int, int] | None = None):
    """GET an object's data: (response, its byte iterator, info, first bytes), or None
    if the node has no live data. ``span``: (offset, length) of a part."""
    if span is not None:
        headers = {**headers, "Range": f"bytes={span[0]}-{span[0] + span[1] - 1}"}
    resp = client.send("GET", path, headers=headers, stream=True)
    if resp.status_code == 404:
        resp.close()
        return None
    if resp.status_code not in (200, 206):
        exc = unavailable(client.url, "GET", path, resp)
        resp.close()
        raise exc
    pieces = resp.iter_bytes()  # (the node sets no Content-Encoding: the bytes as sent)
    head = b""
    try:
        while b"\n" not in head:
            head += next(pieces)  # the info line comes first
        line, _, head = head.partition(b"\n")
        info = wire.to_object_info(json.loads(line))
    except (StopIteration, httpx.HTTPError, httpx.StreamError, ValueError, KeyError, TypeError) as e:
        resp.close()
        raise NodeUnavailable(f"node {client.url}: GET {path}: no object info ({e!r})") from None
    return resp, pieces, info, head


class RemoteObjectReader(ObjectReader):
    """An object's data on a node: the GET opened by object_reader serves a whole
    read; a read of a part asks again for those bytes of the same version."""

    def __init__(self, node: RemoteNode, path: str, headers: dict, resp: httpx.Response,
                 pieces: Iterator[bytes], info: ObjectInfo, head: bytes):
        self.node, self.path, self.headers, self.info = node, path, headers, info
        self._open: tuple | None = (resp, pieces, head)

    def read(self, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        size = self.info.size
        end = size if length is None else min(size, offset + length)
        if offset >= end:
            return
        if self._open is not None and offset == 0 and end == size:
            (resp, pieces, head), self._open = self._open, None
        else:
            self.close()
            opened = open_object(self.node.client, self.path, self.headers, (offset, end - offset))
            if opened is None or opened[2].timestamp != self.info.timestamp:
                if opened is not None:
                    opened[0].close()
                raise NodeUnavailable(f"device {self.node.name}: the object changed while read")
            resp, pieces, _, head = opened
        yield from _stream(self.node.name, resp, pieces, head, end - offset)

    def close(self) -> None:
        if self._open is not None:
            self._open[0].close()
            self._open = None


def _stream(name: str, resp: httpx.Response, pieces: Iterator[bytes], head: bytes,
            expected: int) -> Iterator[bytes]:
    got = 0
    try:
        if head:
            got += len(head)
            yield head
        for data in pieces:
            got += len(data)
            yield data
    except (httpx.HTTPError, httpx.StreamError) as e:  # a node that died, or a copy that failed its md5 check
        raise NodeUnavailable(f"device {name}: the data stopped: {e!r}") from None
    finally:
        resp.close()
    if got != expected:
        raise NodeUnavailable(f"device {name}: {got} bytes of data instead of {expected}")


class RemoteObjectWriter(ObjectWriter):
    """A PUT to the node that streams while the proxy writes: a thread sends the
    request, its body taken from a small queue (the node's pace holds the proxy's)."""

    def __init__(self, node: RemoteNode, path: str, headers: dict):
        self.node = node
        self._q: queue.Queue = queue.Queue(maxsize=QUEUE_PIECES)
        self._ready = threading.Event()  # the node took the request, or it failed
        self._done = threading.Event()
        self._resp: httpx.Response | None = None
        self._error: BaseException | None = None
        self._closed = False
        threading.Thread(target=self._send, args=(path, headers), daemon=True,
                         name=f"object-put-{node.name}").start()
        # an unreachable node is a failed replica at once, so the proxy takes a handoff
        self._ready.wait(node.client.connect_timeout + node.client.timeout)
        if self._done.is_set() or not self._ready.is_set():
            self.abort()
            raise self._failure()

    def _send(self, path: str, headers: dict) -> None:
        try:
            self._resp = self.node.client.send("PUT", path, headers=headers, body=self._body())
        except BaseException as e:  # noqa: BLE001 (handed to the proxy's thread)
            self._error = e
        finally:
            self._done.set()
            self._ready.set()

    def _body(self) -> Iterator[bytes]:
        self._ready.set()  # connected: the request's headers are sent
        while True:
            try:  # (a writer the proxy forgot does not hold a thread and a connection forever)
                item = self._q.get(timeout=CLIENT_TIMEOUT)
            except queue.Empty:
                raise _Aborted() from None
            if item is None:
                return
            if item is _ABORT:
                raise _Aborted()
            yield item

    def _failure(self) -> NodeUnavailable:
        if isinstance(self._error, NodeUnavailable):
            return self._error
        if self._resp is not None:
            return NodeUnavailable(f"device {self.node.name}: the node answered "
                                   f"HTTP {self._resp.status_code} {self._resp.text[:200]}".rstrip())
        if self._error is not None:
            return NodeUnavailable(f"device {self.node.name}: {self._error!r}")
        return NodeUnavailable(f"device {self.node.name}: the node does not take the object")

    def _put(self, item) -> None:
        deadline = time.monotonic() + self.node.client.timeout
        while True:
            if self._done.is_set() or self._closed:
                self.abort()
                raise self._failure()
            try:
                self._q.put(item, timeout=0.1)
                return
            except queue.Full:
                if time.monotonic() > deadline:
                    self.abort()
                    raise NodeUnavailable(f"device {self.node.name}: the node took no data for "
                                          f"{self.node.client.timeout:g} s") from None

    def write(self, data: bytes) -> None:
        if not data:
            return
        self._put(wire.frame_header(wire.DATA, len(data)))
        self._put(data)

    def commit(self, metadata: dict[str, str]) -> None:
        payload = wire.dumps(metadata)
        self._put(wire.frame_header(wire.META, len(payload)))
        self._put(payload)
        self._put(None)
        if not self._done.wait(self.node.client.timeout + 1):
            self.abort()
            raise NodeUnavailable(f"device {self.node.name}: no answer to the commit")
        self._closed = True
        if self._error is not None or self._resp is None or self._resp.status_code != 201:
            raise self._failure()

    def abort(self) -> None:
        if self._closed:
            return
        self._closed = True
        # the sending thread stops at the next item it takes: drop what it has not sent,
        # and cut the request (the node then keeps nothing)
        try:
            while True:
                self._q.get_nowait()
        except queue.Empty:
            pass
        try:
            self._q.put_nowait(_ABORT)
        except queue.Full:
            pass

    def __del__(self):  # a writer dropped without commit or abort ends its request
        if not getattr(self, "_closed", True):
            self.abort()


class _Aborted(Exception):
    """Raised in a PUT's body to cut the request."""


# -- the replicator's DeviceStore ------------------------------------------------------------


class RemoteStore(DeviceStore):
    """A device of a node server, for the replicator and the expirer."""

    def __init__(self, device, client: NodeClient):
        self.device, self.client = device, client
        self.name, self.dev = device.name, device.path

    def __repr__(self) -> str:
        return f"RemoteStore({self.name}, {self.client.url}/{self.dev})"

    def _rpc(self, op: str, **args):
        path = wire.path("replicate", self.dev, op)
        resp = self.client.call("POST", path, body=wire.dumps(args))
        if resp is None:
            raise FileNotFoundError(f"{self.name}: {op}: not found")
        try:
            return resp.json()
        except ValueError:
            raise NodeUnavailable(f"device {self.name}: {op}: the answer is not JSON") from None

    def available(self) -> bool:
        try:
            return bool(self._rpc("available"))
        except NodeUnavailable:
            return False

    def clean_tmp(self) -> None:
        self._rpc("clean_tmp")

    def partitions(self, kind):
        return [int(p) for p in self._rpc("partitions", kind=kind)]

    def suffix_hashes(self, part, reclaim_before=None):
        return self._rpc("suffix_hashes", part=part, reclaim_before=reclaim_before)

    def hash_listings(self, part, suffix):
        return {h: tuple(v) for h, v in self._rpc("hash_listings", part=part, suffix=suffix).items()}

    def _file(self, part, suffix, hsh, name) -> str:
        return wire.path("replicate", self.dev, "file", part, suffix, hsh, name)

    def read_file(self, part, suffix, hsh, name) -> Iterator[bytes]:
        path = self._file(part, suffix, hsh, name)
        resp = self.client.send("GET", path, stream=True)
        if resp.status_code == 404:
            resp.close()
            raise FileNotFoundError(f"{self.name}: {hsh}/{name}")
        if resp.status_code != 200:
            exc = unavailable(self.client.url, "GET", path, resp)
            resp.close()
            raise exc
        return _stream(self.name, resp, resp.iter_bytes(), b"", int(resp.headers["content-length"]))

    def install_file(self, part, suffix, hsh, name, data) -> None:
        # an error of ``data`` (the source replica) goes through as it is: a
        # FileNotFoundError says the source was replaced meanwhile
        self.client.call("PUT", self._file(part, suffix, hsh, name), body=iter(data), ok=(201,),
                         missing=())

    def remove_suffixes(self, part, digests):
        return int(self._rpc("remove_suffixes", part=part, digests=digests))

    def databases(self, kind, part):
        return self._rpc("databases", kind=kind, part=part)

    def db_state(self, kind, part, hsh):
        return self._rpc("db_state", kind=kind, part=part, hsh=hsh)

    def db_rows(self, kind, part, hsh, remote_id, after, limit):
        rows, point = self._rpc("db_rows", kind=kind, part=part, hsh=hsh, remote_id=remote_id,
                                after=after, limit=limit)
        return rows, point

    def db_synced(self, kind, part, hsh, remote_id, point):
        self._rpc("db_synced", kind=kind, part=part, hsh=hsh, remote_id=remote_id, point=point)

    def db_merge(self, kind, part, hsh, state, rows):
        db_id, changed = self._rpc("db_merge", kind=kind, part=part, hsh=hsh, state=state, rows=rows)
        return db_id, changed

    def db_reclaim(self, kind, part, hsh, before):
        return bool(self._rpc("db_reclaim", kind=kind, part=part, hsh=hsh, before=before))

    def db_remove(self, kind, part, hsh):
        self._rpc("db_remove", kind=kind, part=part, hsh=hsh)

    def expiring_due(self, now):
        return self._rpc("expiring_due", now=now)

    def expiring_done(self, entries):
        return int(self._rpc("expiring_done", entries=entries))


# -- every device's Node and DeviceStore ------------------------------------------------------


class Nodes:
    """The ``Node`` and ``DeviceStore`` of each ring device: this host's directories
    directly, devices of node servers over HTTP (one pooled client per node)."""

    def __init__(self, secret: str = "", *, timeout: float = 10.0, connect_timeout: float = 1.0):
        self.secret, self.timeout, self.connect_timeout = secret, timeout, connect_timeout
        self._clients: dict[str, NodeClient] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_conf(cls, conf) -> Nodes:
        o = conf.object_store
        return cls(o.node_secret, timeout=o.node_timeout, connect_timeout=o.node_connect_timeout)

    def client(self, url: str) -> NodeClient:
        with self._lock:
            c = self._clients.get(url)
            if c is None:
                c = self._clients[url] = NodeClient(url, self.secret, timeout=self.timeout,
                                                    connect_timeout=self.connect_timeout)
            return c

    def node(self, device) -> Node:
        url = device.node_url
        return RemoteNode(device, self.client(url)) if url else LocalNode(device)

    def store(self, device) -> DeviceStore | None:
        url = device.node_url
        if url:
            return RemoteStore(device, self.client(url))
        return LocalStore(device) if device.host == "local" else None

    def close(self) -> None:
        with self._lock:
            for c in self._clients.values():
                c.close()
            self._clients.clear()
