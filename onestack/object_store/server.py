"""The object node server: the devices of one storage host over HTTP.

What Swift's object, container and account servers (and their REPLICATE verb)
are, on one port: the proxy's ``RemoteNode`` reaches a device's objects and
databases here, and the replicator's ``RemoteStore`` its partitions and files
(wire.py has the protocol). Each request works on a ``LocalNode`` or
``LocalStore`` of ``<devices dir>/<device>``, exactly as the all-in-one proxy
works on its own directories; a device whose directory is missing answers 507.

The node keeps no ring and no hash secret (the proxy sends each name's hash):
it needs its devices directory, the secret it shares with the proxy and an
address. ``serve_node`` runs it, with the auditor over its devices (the
replicator and the expirer run beside the proxy and reach every device).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from onestack.common import http
from onestack.config import ConfigError
from onestack.object_store import agents, wire
from onestack.object_store.localstore import LocalStore, check_names
from onestack.object_store.node import AccountRow, ContainerRow, NodeUnavailable, NotEmpty
from onestack.object_store.ring import RingDevice, devices_dir
from onestack.object_store.storage import LocalNode

log = logging.getLogger(__name__)

MAX_JSON = 64 * 1024 * 1024  # a batch of database rows is the largest JSON body
THREADS = 128  # blocking file work at once (a streaming PUT or GET holds one)
_DEVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HASH = re.compile(r"^[0-9a-f]{32}$")
_TIMESTAMP = re.compile(r"^\d{1,10}(\.\d{1,5})?$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d+)$")
# what the replicator may call on a device (DeviceStore's methods)
RPC = {"available", "clean_tmp", "partitions", "suffix_hashes", "hash_listings", "remove_suffixes",
       "databases", "db_state", "db_rows", "db_synced", "db_merge", "db_reclaim", "db_remove",
       "expiring_due", "expiring_done"}


class BadRequest(Exception):
    pass


class Devices:
    """The devices of this node: the directories under its devices dir."""

    def __init__(self, root: Path):
        self.root = root

    def device(self, name: str) -> RingDevice:
        if not _DEVICE.match(name):
            raise BadRequest(f"{name!r} is not a device name")
        return RingDevice(0, name, 0, 0.0, str(self.root / name))

    @property
    def devices(self) -> list[RingDevice]:
        """(as a ring's ``devices``: the auditor walks them; copies on them agree)"""
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        return [self.device(n) for n in names if _DEVICE.match(n) and (self.root / n).is_dir()]


def node_app(conf):
    """The node server's ASGI app for this host's devices (``object_store.devices_dir``)."""
    secret = conf.object_store.node_secret
    if not secret:
        raise ConfigError("the object node server needs object_store.node_secret (the secret "
                          "the proxy and its storage nodes share)")
    return build(Devices(devices_dir(conf)), secret)


def build(devices: Devices, secret: str):
    h = _Handlers(devices)
    routes = [
        Route("/object/{device}/{part:int}/{account}/{container}/{obj:path}", h.object,
              methods=["GET", "PUT", "POST", "DELETE"]),
        Route("/container/{device}/{part:int}/{account}/{container}/{obj:path}", h.container_row,
              methods=["PUT"]),
        Route("/container/{device}/{part:int}/{account}/{container}", h.container,
              methods=["GET", "PUT", "POST", "DELETE"]),
        Route("/account/{device}/{part:int}/{account}/{container}", h.account_row, methods=["PUT"]),
        Route("/account/{device}/{part:int}/{account}", h.account, methods=["GET", "PUT", "POST"]),
        Route("/replicate/{device}/file/{part:int}/{suffix}/{hsh}/{name}", h.file,
              methods=["GET", "PUT"]),
        Route("/replicate/{device}/{op}", h.rpc, methods=["POST"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app):
        anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
        yield

    app = Starlette(routes=routes, lifespan=lifespan)
    app.router.redirect_slashes = False
    return Authenticated(app, secret)


class Authenticated:
    """Only signed requests reach the app (wire.py): 401 without a signature, 403
    with a wrong or stale one."""

    def __init__(self, app, secret: str):
        self.app, self.secret = app, secret

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            target = scope.get("raw_path") or scope["path"].encode()
            if scope.get("query_string"):
                target += b"?" + scope["query_string"]
            value = next((v.decode("latin-1") for k, v in scope["headers"]
                          if k == wire.AUTH_HEADER.lower().encode()), None)
            if value is None or not wire.verify(self.secret, scope["method"], target, value):
                status = 401 if value is None else 403
                log.warning("refused %s %s from %s: %s", scope["method"], scope["path"],
                            (scope.get("client") or ("?",))[0],
                            "no signature" if value is None else "bad signature")
                await _error(status, "a signed request (X-Node-Auth) is needed" if status == 401
                             else "the request's signature is wrong or stale")(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status)


def guarded(fn):
    """Device and input problems as statuses: 507 for an unavailable device (the
    proxy counts a failed replica), 400 for bad input, 404 for missing files."""

    async def handler(self, request: Request) -> Response:
        try:
            return await fn(self, request)
        except NodeUnavailable as e:
            return _error(507, str(e))
        except NotEmpty as e:
            return _error(409, str(e))
        except FileNotFoundError:
            return _error(404, "not found")
        except OSError as e:  # a disk that fails (full, I/O error) is an unavailable device
            return _error(507, f"device error: {e}")
        except (BadRequest, ValueError, KeyError, TypeError) as e:
            return _error(400, f"bad request: {e}")
        except ClientDisconnect:
            return Response(status_code=499)

    return handler


class _Handlers:
    def __init__(self, devices: Devices):
        self.devices = devices

    # -- helpers -----------------------------------------------------------------------

    def node(self, request: Request) -> LocalNode:
        dev = self.devices.device(request.path_params["device"])
        hsh = request.headers.get("x-backend-hash", "")
        if not _HASH.match(hsh):
            raise BadRequest("X-Backend-Hash must be the name's hash (32 hex digits)")
        return LocalNode(dev, hash_path=lambda *names: hsh, peers=self.devices.devices)

    def store(self, request: Request) -> LocalStore:
        return LocalStore(self.devices.device(request.path_params["device"]))

    @staticmethod
    def timestamp(request: Request) -> str:
        ts = request.headers.get("x-timestamp", "")
        if not _TIMESTAMP.match(ts):
            raise BadRequest("X-Timestamp must be a timestamp")
        return ts

    @staticmethod
    async def body(request: Request):
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_JSON:
                raise BadRequest("the body is too large")
        return json.loads(raw) if raw else {}

    @staticmethod
    def names(request: Request, *keys: str) -> list:
        p = request.path_params
        return [p["part"], *(p[k] for k in keys)]

    # -- objects -----------------------------------------------------------------------

    @guarded
    async def object(self, request: Request) -> Response:
        node = self.node(request)
        args = self.names(request, "account", "container", "obj")
        if request.method == "PUT":
            return await self._object_put(request, node, args)
        if request.method == "GET":
            return await self._object_get(request, node, args)
        ts = self.timestamp(request)
        if request.method == "POST":
            meta = {str(k): str(v) for k, v in (await self.body(request))["metadata"].items()}
            ok = await run_in_threadpool(node.object_post, *args, ts, meta)
            return Response(status_code=202 if ok else 404)
        live = await run_in_threadpool(node.object_delete, *args, ts)
        return Response(status_code=204 if live else 404)

    async def _object_put(self, request: Request, node: LocalNode, args: list) -> Response:
        ts = self.timestamp(request)
        writer = await run_in_threadpool(node.object_writer, *args, ts)

        def receive() -> bool:  # (on a worker thread: the writes block)
            try:
                for kind, payload in wire.read_frames(_sync_body(request)):
                    if kind == wire.DATA:
                        writer.write(payload)
                    else:
                        writer.commit(json.loads(payload))
                        return True
            except BaseException:
                writer.abort()
                raise
            writer.abort()
            return False

        if await run_in_threadpool(receive):
            return Response(status_code=201)
        return _error(400, "the object stream ended before its metadata: nothing was stored")

    async def _object_get(self, request: Request, node: LocalNode, args: list) -> Response:
        if "info" in request.query_params:
            info = await run_in_threadpool(node.object_info, *args)
            return _error(404, "no such object") if info is None else JSONResponse(wire.object_info(info))
        reader = await run_in_threadpool(node.object_reader, *args)
        if reader is None:
            return _error(404, "no such object")
        size, status = reader.info.size, 200
        offset, length = 0, size
        if "range" in request.headers:
            m = _RANGE.match(request.headers["range"])
            if m is None:
                reader.close()
                raise BadRequest("Range must be bytes=FIRST-LAST")
            offset = min(int(m[1]), size)
            length, status = max(0, min(int(m[2]) + 1, size) - offset), 206
        line = wire.dumps(wire.object_info(reader.info)) + b"\n"
        whole = offset == 0 and length == size

        def body() -> Iterator[bytes]:
            try:
                yield line
                if length:
                    try:
                        yield from reader.read(offset, None if whole else length)
                    except NodeUnavailable as e:  # cut the response: the proxy reads another replica
                        log.warning("object data of %s stopped: %s", "/".join(args[1:]), e)
                        raise
            finally:
                reader.close()

        return StreamingResponse(body(), status, {"Content-Length": str(len(line) + length)},
                                 media_type="application/octet-stream")

    # -- containers and accounts --------------------------------------------------------

    @guarded
    async def container(self, request: Request) -> Response:
        node = self.node(request)
        args = self.names(request, "account", "container")
        if request.method == "GET":
            if "list" in request.query_params:
                items = await run_in_threadpool(lambda: node.container_list(
                    *args, **_list_args(request), path=request.query_params.get("path")))
                return _error(404, "no such container") if items is None else JSONResponse(wire.listing(items))
            info = await run_in_threadpool(node.container_info, *args)
            return _error(404, "no such container") if info is None else JSONResponse(wire.db_info(info))
        if request.method == "PUT":
            ts = self.timestamp(request)
            meta = wire.to_db_meta((await self.body(request)).get("metadata") or {})
            created = await run_in_threadpool(node.container_put, *args, ts, meta)
            return Response(status_code=201 if created else 202)
        if request.method == "POST":
            meta = wire.to_db_meta((await self.body(request))["metadata"])
            ok = await run_in_threadpool(node.container_post, *args, meta)
            return Response(status_code=204 if ok else 404)
        ok = await run_in_threadpool(node.container_delete, *args, self.timestamp(request))
        return Response(status_code=204 if ok else 404)

    @guarded
    async def container_row(self, request: Request) -> Response:
        node = self.node(request)
        row = ContainerRow(**{**await self.body(request), "name": request.path_params["obj"]})
        await run_in_threadpool(node.container_update, *self.names(request, "account", "container"), row)
        return Response(status_code=204)

    @guarded
    async def account(self, request: Request) -> Response:
        node = self.node(request)
        args = self.names(request, "account")
        if request.method == "GET":
            if "list" in request.query_params:
                items = await run_in_threadpool(lambda: node.account_list(*args, **_list_args(request)))
                return _error(404, "no such account") if items is None else JSONResponse(wire.listing(items))
            info = await run_in_threadpool(node.account_info, *args)
            return _error(404, "no such account") if info is None else JSONResponse(wire.db_info(info))
        if request.method == "PUT":
            created = await run_in_threadpool(node.account_put, *args, self.timestamp(request))
            return Response(status_code=201 if created else 202)
        meta = wire.to_db_meta((await self.body(request))["metadata"])
        ok = await run_in_threadpool(node.account_post, *args, meta)
        return Response(status_code=204 if ok else 404)

    @guarded
    async def account_row(self, request: Request) -> Response:
        node = self.node(request)
        row = AccountRow(**{**await self.body(request), "name": request.path_params["container"]})
        await run_in_threadpool(node.account_update, *self.names(request, "account"), row)
        return Response(status_code=204)

    # -- replication ------------------------------------------------------------------------

    @guarded
    async def rpc(self, request: Request) -> Response:
        op = request.path_params["op"]
        if op not in RPC:
            return _error(404, f"no operation {op!r}")
        store = self.store(request)
        args = await self.body(request)
        if not isinstance(args, dict):
            raise BadRequest("the body is an object of arguments")
        result = await run_in_threadpool(lambda: getattr(store, op)(**args))
        return JSONResponse(result)

    @guarded
    async def file(self, request: Request) -> Response:
        store = self.store(request)
        p = request.path_params
        args = (p["part"], p["suffix"], p["hsh"], p["name"])
        check_names(*args)
        if request.method == "PUT":
            await run_in_threadpool(store.install_file, *args, _sync_body(request))
            return Response(status_code=201)
        size, pieces = await run_in_threadpool(store.open_file, *args)
        return StreamingResponse(pieces, 200, {"Content-Length": str(size)},
                                 media_type="application/octet-stream")


def _list_args(request: Request) -> dict:
    q = request.query_params
    limit = int(q.get("limit", ""))
    return {"limit": limit, "marker": q.get("marker", ""), "end_marker": q.get("end_marker", ""),
            "prefix": q.get("prefix", ""), "delimiter": q.get("delimiter", ""),
            "reverse": q.get("reverse", "") == "1"}


def _sync_body(request: Request) -> Iterator[bytes]:
    """The request body for blocking code on a worker thread (each piece is awaited on
    the event loop)."""
    stream = request.stream()

    async def next_piece() -> bytes | None:
        try:
            return await stream.__anext__()
        except StopAsyncIteration:
            return None

    while (piece := anyio.from_thread.run(next_piece)) is not None:
        if piece:
            yield piece


# -- running it -----------------------------------------------------------------------------


def serve_node(conf, host: str | None = None, port: int | None = None) -> None:
    """Serve this host's storage devices until SIGTERM/SIGINT, on ``host``:``port``
    (default ``object_store.node_host``/``node_port``), auditing them every
    ``object_store.auditor_interval`` seconds."""
    app = node_app(conf)
    running = agents.start(conf, Devices(devices_dir(conf)), kinds=("audit",))
    try:
        uvicorn.run(app, host=host or conf.object_store.node_host,
                    port=port or conf.object_store.node_port, **http.SERVER_OPTIONS)
    finally:
        running.stop()
