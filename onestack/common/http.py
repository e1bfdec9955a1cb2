"""HTTP plumbing shared by every service's API.

* ``RequestIdMiddleware`` gives every response an ``x-openstack-request-id`` and
  logs each request once (id, user, project, method, path, status, latency).
* ``Api`` is a small route table: handlers are plain (sync) functions taking a
  ``Req`` and returning a Response; they run in a worker thread so database
  work never blocks the event loop. Errors raised anywhere become the
  service's own error body through the ``error_view`` it supplies.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio.from_thread
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from onestack.common import errors

log = logging.getLogger("onestack.api")

REQUEST_ID_HEADER = "x-openstack-request-id"
MAX_BODY = 1024 * 1024  # JSON APIs: 1 MiB is far beyond any legitimate body
# How uvicorn serves every API. An idle keep-alive connection is kept 75 s, not
# uvicorn's 5: clients that poll every 5 s (heatclient's --wait, httpx's pools)
# otherwise reuse a connection the server is closing at that instant and get a reset.
SERVER_OPTIONS: dict[str, Any] = dict(log_level="warning", access_log=False, lifespan="on",
                                      timeout_graceful_shutdown=5, timeout_keep_alive=75)
STREAM_BATCH = 1024 * 1024  # a streamed body reaches the handler in pieces of about this size
# The database cannot be reached (or the pool has no connection to give): a 503, not a 500
DB_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout)


class RequestIdMiddleware:
    """Pure ASGI middleware: request id on every response, one log line per request;
    with ``hsts_max_age``, Strict-Transport-Security on every HTTPS response."""

    def __init__(self, app, hsts_max_age: int = 0):
        self.app = app
        self.hsts = f"max-age={hsts_max_age}".encode() if hsts_max_age > 0 else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = f"req-{uuid.uuid4()}"
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        start = time.perf_counter()
        status = 500
        hsts = self.hsts if scope.get("scheme") == "https" else None

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), rid.encode()))
                if hsts:
                    headers.append((b"strict-transport-security", hsts))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            ctx = state.get("context")
            log.info(
                "%s user=%s project=%s %s %s -> %s %.1fms",
                rid,
                getattr(ctx, "user_id", "-") or "-",
                getattr(ctx, "project_id", "-") or "-",
                scope["method"],
                scope["path"] + (("?" + scope["query_string"].decode()) if scope.get("query_string") else ""),
                status,
                (time.perf_counter() - start) * 1000,
            )


def json_response(body: Any, status: int = 200, headers: dict | None = None) -> Response:
    data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    return Response(data, status_code=status, headers=headers, media_type="application/json")


def empty(status: int = 204, headers: dict | None = None) -> Response:
    return Response(b"", status_code=status, headers=headers)


@dataclass
class Req:
    """What a handler sees of a request."""

    request: Request
    body: bytes
    ctx: Any = None  # RequestContext when the route is authenticated
    path: dict[str, str] = field(default_factory=dict)
    streamed: bool = False  # the route takes its body through chunks(), unread

    def chunks(self) -> Iterator[bytes]:
        """The body of a ``stream=True`` route, read as the handler consumes it.

        Called from the handler's worker thread: each step pulls about
        STREAM_BATCH bytes from the event loop, so memory stays flat however
        large the body, and a slow consumer slows the client (TCP back-pressure).
        A client that goes away raises ``starlette.requests.ClientDisconnect``.
        """
        if not self.streamed:
            yield self.body
            return
        source = self.request.stream()

        async def batch() -> bytes | None:
            parts, size = [], 0
            async for part in source:
                if part:
                    parts.append(part)
                    size += len(part)
                if size >= STREAM_BATCH:
                    break
            return b"".join(parts) if parts else None

        while (data := anyio.from_thread.run(batch)) is not None:
            yield data

    @property
    def query(self):
        return self.request.query_params

    @property
    def headers(self):
        return self.request.headers

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def url(self):
        return self.request.url

    @property
    def request_id(self) -> str:
        return self.request.scope.get("state", {}).get("request_id", "")

    def json(self) -> Any:
        if not self.body.strip():
            raise errors.BadRequest("The request body is empty; a JSON body is required.")
        try:
            data = json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as e:
            raise errors.BadRequest(f"Malformed JSON in request body: {e}") from None
        if b"\\u0000" in self.body:  # no database stores NUL in text (PostgreSQL refuses it)
            raise errors.BadRequest("Request body strings must not contain the NUL character (\\u0000).")
        if _SURROGATE.search(self.body) and not _utf8(data):  # "\\ud800" alone: no text any database stores
            raise errors.BadRequest("Request body strings must be Unicode text: a lone surrogate "
                                    "(\\ud800-\\udfff) is not.")
        return data


_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def _utf8(data: Any) -> bool:
    """Whether every string in ``data`` (keys too) can be written as UTF-8: a JSON escape of
    half a surrogate pair, alone, cannot."""
    try:
        json.dumps(data, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


Handler = Callable[[Req], Response]


def media_type(request: Request) -> str:
    """The request's Content-Type without parameters, lower-cased ('' when absent)."""
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


class Api:
    """A service's routes and its error style, built into one ASGI app.

    ``check_body(request, body)``, when given, is the service's rule on what a
    request body may be sent as (its Content-Type): it raises the service's
    error before the handler runs. ``request_error_view``, when given, renders
    errors instead of ``error_view`` and also sees the request (Glance answers
    in the format the client's Accept asks for)."""

    def __init__(
        self,
        name: str,
        error_view: Callable[[errors.ApiError], Response],
        authenticate: Callable[[Request], Any] | None = None,
        redirect_slashes: bool = True,
        check_body: Callable[[Request, bytes], None] | None = None,
        request_error_view: Callable[[errors.ApiError, Request], Response] | None = None,
    ):
        self.name = name
        self.error_view = error_view
        self.authenticate = authenticate
        self.redirect_slashes = redirect_slashes  # False: "/things/" is a 404, not "/things"
        self.check_body = check_body
        self.request_error_view = request_error_view
        self.routes: list[Route] = []

    def render_error(self, exc: errors.ApiError, request: Request) -> Response:
        if self.request_error_view is not None:
            return self.request_error_view(exc, request)
        return self.error_view(exc)

    def route(self, path: str, methods: list[str], *, auth: bool = True, stream: bool = False):
        """Register a handler. ``stream=True``: the body is not read up front
        (nor limited to MAX_BODY); the handler consumes it with ``req.chunks()``."""

        def register(fn: Handler) -> Handler:
            self.routes.append(Route(path, self._endpoint(fn, auth, stream), methods=methods))
            return fn

        return register

    def _endpoint(self, fn: Handler, auth: bool, stream: bool = False):
        async def endpoint(request: Request) -> Response:
            body = b"" if stream else await _read_body(request)
            if "\x00" in request.url.path or b"%00" in request.scope.get("query_string", b""):
                raise errors.BadRequest("The URL must not contain the NUL character.")

            def run() -> Response:
                ctx = None
                try:
                    if auth:
                        if self.authenticate is None:
                            raise errors.Unauthorized("The request you have made requires authentication.")
                        ctx = self.authenticate(request)
                        request.scope.setdefault("state", {})["context"] = ctx
                    if self.check_body is not None and not stream:
                        self.check_body(request, body)
                    return fn(Req(request, body, ctx, dict(request.path_params), streamed=stream))
                except errors.ApiError:
                    raise
                except DB_UNAVAILABLE as e:
                    # e.g. PostgreSQL restarting: the pool reconnects (pre-ping) once it is back
                    reason = str(getattr(e, "orig", None) or e).strip() or type(e).__name__
                    log.warning("database unavailable in %s %s: %s", request.method, request.url.path,
                                reason.splitlines()[0])
                    raise errors.DatabaseUnavailable() from None
                except IntegrityError as e:
                    # a concurrent request stored the same thing first
                    log.info("conflict in %s %s: %s", request.method, request.url.path,
                             str(e.orig).splitlines()[0])
                    raise errors.Conflict("Conflict occurred attempting to store the resource: "
                                          "it already exists or is in use.") from None
                except Exception:
                    # answered as a 500 here, so the connection stays usable
                    log.exception("unhandled error in %s %s", request.method, request.url.path)
                    raise errors.ApiError("An unexpected error prevented the server from "
                                          "fulfilling your request.") from None

            return await run_in_threadpool(run)

        endpoint.__name__ = fn.__name__
        endpoint.__doc__ = fn.__doc__
        endpoint.authenticated = auth  # what the OpenAPI description says of it (common/openapi.py)
        return endpoint

    def asgi(self) -> Starlette:
        async def api_error(request: Request, exc: errors.ApiError) -> Response:
            return self.render_error(exc, request)

        async def http_error(request: Request, exc: HTTPException) -> Response:
            cls = {
                400: errors.BadRequest,
                404: errors.NotFound,
                405: errors.MethodNotAllowed,
            }.get(exc.status_code, errors.ApiError)
            if exc.status_code == 404:
                err = cls(f"The resource could not be found: {request.url.path}")
            elif exc.status_code == 405:
                err = cls(f"The method {request.method} is not allowed for {request.url.path}.")
            else:
                err = cls(str(exc.detail))
            resp = self.render_error(err, request)
            if exc.status_code == 405 and exc.headers:
                resp.headers.update(exc.headers)
            return resp

        async def crash(request: Request, exc: Exception) -> Response:
            log.exception("unhandled error in %s %s", request.method, request.url.path)
            return self.render_error(
                errors.ApiError("An unexpected error prevented the server from fulfilling your request."), request
            )

        app = Starlette(
            routes=self.routes,
            exception_handlers={
                errors.ApiError: api_error,
                HTTPException: http_error,
                Exception: crash,
            },
        )
        app.router.redirect_slashes = self.redirect_slashes
        return app


async def _read_body(request: Request) -> bytes:
    if request.method in ("GET", "HEAD", "DELETE", "OPTIONS"):
        # Bodies on these are ignored, but must still be drained for keep-alive.
        return await request.body()
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_BODY:
        raise errors.PayloadTooLarge(f"Request body is larger than {MAX_BODY} bytes.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise errors.PayloadTooLarge(f"Request body is larger than {MAX_BODY} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)
