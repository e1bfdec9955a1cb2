"""The Block Storage v3 API (Cinder): one module per resource, wire format in views.py.

Every request is negotiated to a microversion (``OpenStack-API-Version: volume
3.x``); handlers read it with ``mv(req)``. Routes exist with the project id in
the URL (``/v3/{project_id}/volumes``) and, as 3.67 allows, without it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from onestack.common import auth, errors, openapi
from onestack.common.http import Api, Req, json_response, media_type
from onestack.common.microversion import MicroversionMiddleware, Negotiator, Version

MIN_VERSION = Version(3, 0)
MAX_VERSION = Version(3, 71)
NEGOTIATOR = Negotiator("volume", MIN_VERSION, MAX_VERSION)

# Cinder's fault names by status
FAULTS = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound", 405: "badMethod",
          406: "notAcceptable", 409: "conflictingRequest", 413: "overLimit", 415: "badMediaType",
          429: "overLimit", 501: "notImplemented", 503: "serviceUnavailable"}


def error_view(exc: errors.ApiError) -> Response:
    """Cinder's error body: ``{"itemNotFound": {"code": 404, "message": "..."}}``."""
    name = FAULTS.get(exc.status, "computeFault")
    headers = dict(exc.extra.get("headers", {}))
    if exc.status == 401:
        headers.setdefault("WWW-Authenticate", 'Keystone uri="/identity"')
    return json_response({name: {"code": exc.status, "message": exc.message}}, exc.status, headers)


CONTENT_TYPES = ("application/json", "application/vnd.openstack.volume+json")


def check_body(request: Request, body: bytes) -> None:
    """Cinder reads a body sent as JSON (or with no Content-Type) and refuses any other."""
    kind = media_type(request)
    if body and kind and kind not in CONTENT_TYPES:
        raise errors.UnsupportedMediaType("Unsupported Content-Type")


api = Api("volume", error_view, auth.authenticate, redirect_slashes=False,  # "/volumes/" is a 404
          check_body=check_body)


def mv(req: Req) -> Version:
    return req.request.scope.get("state", {}).get("microversion", MIN_VERSION)


def route(path: str, methods: list[str], **kw):
    """Register ``/v3/{project_id}<path>`` and ``/v3<path>`` (3.67)."""

    def register(fn):
        def checked(req: Req):
            project = req.path.pop("project_id", None)
            if project is not None and req.ctx is not None and project != req.ctx.project_id \
                    and not req.ctx.is_admin:
                raise errors.BadRequest("Malformed request url: the project id in the URL is not the "
                                        "token's project.")
            return fn(req)

        checked.__name__ = fn.__name__
        api.route("/v3/{project_id}" + path, methods, **kw)(checked)
        api.route("/v3" + path, methods, **kw)(checked)
        return fn

    return register


def body_of(req: Req, key: str) -> dict:
    """The ``{key: {...}}`` document of a request, or 400 naming what is wrong."""
    data = req.json()
    if not isinstance(data, dict) or not isinstance(data.get(key), dict):
        raise errors.BadRequest(f"Missing required element '{key}' in request body.")
    return data[key]


def build():
    from onestack.volume.api import (  # noqa: F401  (each registers its routes)
        versions,
    )

    for name in ("volumes", "actions", "snapshots", "types", "attachments", "transfers", "backups", "misc"):
        __import__(f"onestack.volume.api.{name}")
    from onestack.volume.api import schemas

    openapi.serve(api, "Block Storage", str(MAX_VERSION), {
        **{f"POST {base}/volumes": schemas.CREATE for base in ("/v3", "/v3/{project_id}")},
        **{f"PUT {base}/volumes/{{volume_id}}": schemas.UPDATE for base in ("/v3", "/v3/{project_id}")},
    })
    return MicroversionMiddleware(api.asgi(), NEGOTIATOR, error_view)


__all__ = ["api", "mv", "route", "body_of", "build"]
