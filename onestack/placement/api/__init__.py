"""The Placement API: routes in the modules of this package, wire format in views.py.

Microversions are negotiated at the edge (``_Versioned``): the requested
``OpenStack-API-Version: placement X.Y`` is checked (406 outside 1.0..max, with
``min_version``/``max_version`` in the error as Placement gives them), kept in
the request's state, and every answer carries ``OpenStack-API-Version`` and
``Vary``. A route is registered with the versions it exists in and its policy
rule (``route``); one path may have several handlers for different versions.
"""

from __future__ import annotations

from contextvars import ContextVar
from email.utils import formatdate

from sqlalchemy.exc import IntegrityError
from starlette.datastructures import Headers
from starlette.responses import Response

from onestack.common import auth, errors, validation
from onestack.common.http import Api, Req, json_response
from onestack.common.microversion import Version
from onestack.placement import core
from onestack.placement.api import versions

# (version, request id) of the request being served, for error bodies
_current: ContextVar[tuple[Version | None, str]] = ContextVar("placement_request", default=(None, ""))


def error_view(exc: errors.ApiError) -> Response:
    """Placement's error body: ``{"errors": [{"status", "title", "detail", "code", "request_id"}]}``
    (``code`` from 1.23 on, as Placement)."""
    version, request_id = _current.get()
    err = {"status": exc.status, "title": exc.title, "detail": exc.message, "request_id": request_id}
    if version is None or version >= versions.ERROR_CODES:
        err["code"] = exc.extra.get("code", "placement.undefined_code")
    if exc.status == 406:
        err["min_version"] = str(versions.MIN)
        err["max_version"] = str(versions.MAX)
    headers = dict(exc.extra.get("headers", {}))
    if exc.status == 401:
        headers.setdefault("WWW-Authenticate", 'Keystone uri="/identity"')
    return json_response({"errors": [err]}, exc.status, headers)


api = Api("placement", error_view, auth.authenticate, redirect_slashes=False)

# path -> method -> [(min version, max version, handler, policy rule)]
_ROUTES: dict[str, dict[str, list]] = {}


def route(path: str, method: str, rule: str | None, since: Version = versions.MIN,
          until: Version = versions.MAX):
    """Register ``handler(req, version)`` for ``method path`` in versions [since, until],
    allowed by policy ``rule`` (None: no authentication, as the version document)."""

    def register(fn):
        _ROUTES.setdefault(path, {}).setdefault(method, []).append((since, until, fn, rule))
        return fn

    return register


def version_of(req: Req) -> Version:
    return req.request.scope.get("state", {}).get("placement_version") or versions.MIN


def _dispatcher(path: str, table: dict[str, list]):
    def dispatch(req: Req) -> Response:
        v = version_of(req)
        variants = table.get(req.method if req.method != "HEAD" else "GET", [])
        match = next(((fn, rule) for since, until, fn, rule in variants if since <= v <= until), None)
        if match is None:
            raise errors.NotFound("The resource could not be found.")
        fn, rule = match
        if rule is not None:
            if req.ctx is None:
                req.ctx = auth.authenticate(req.request)
                req.request.scope.setdefault("state", {})["context"] = req.ctx
            core.authorize(rule, req.ctx)
        try:
            resp = fn(req, v)
        except IntegrityError:
            # a concurrent request wrote the same consumer or name first
            raise core.conflict("Another request changed the same resources concurrently; retry.",
                                core.CONCURRENT_UPDATE) from None
        if (v >= versions.CACHE_HEADERS and req.method in ("GET", "PUT", "POST")
                and resp.status_code in (200, 201) and resp.body):
            resp.headers.setdefault("cache-control", "no-cache")
            resp.headers.setdefault("last-modified", formatdate(usegmt=True))
        return resp

    dispatch.__name__ = "placement_" + (path.strip("/").replace("/", "_").replace("{", "").replace("}", "")
                                        or "root")
    return dispatch


def body(req: Req, schema: dict):
    """The request's JSON body, checked against ``schema`` (415 unless JSON, as Placement)."""
    ctype = req.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise errors.UnsupportedMediaType(
            f"The media type {ctype or None} is not supported, use application/json")
    data = req.json()
    try:
        return validation.validate(schema, data)
    except errors.BadRequest as e:
        raise errors.BadRequest(f"JSON does not validate: {e.message}") from None


def location(req: Req, path: str) -> str:
    return str(req.request.base_url).rstrip("/") + path


def prefix(req: Req) -> str:
    """The API's path prefix (``/placement``), for the links Placement writes relative."""
    return req.request.scope.get("root_path", "")


class _Versioned:
    """ASGI: microversion negotiation and the version headers of every answer."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        state = scope.setdefault("state", {})
        request_id = state.get("request_id", "")
        try:
            v = versions.NEGOTIATOR.requested(Headers(scope=scope))
        except errors.ApiError as e:
            _current.set((None, request_id))
            return await error_view(e)(scope, receive, send)
        state["placement_version"] = v
        _current.set((v, request_id))
        extra = [(k.lower().encode(), val.encode()) for k, val in versions.NEGOTIATOR.headers(v).items()]

        async def send_versioned(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": list(message.get("headers", [])) + extra}
            await send(message)

        return await self.app(scope, receive, send_versioned)


def build():
    """Import the route modules (they register in ``_ROUTES``) and return the ASGI app."""
    from onestack.placement.api import allocations, candidates, classes, providers, root  # noqa: F401

    if not api.routes:
        for path, table in _ROUTES.items():
            # authentication happens in the dispatcher, once the version's handler is known
            api.route(path, sorted(table), auth=False)(_dispatcher(path, table))
    return _Versioned(api.asgi())
