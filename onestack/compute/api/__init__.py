"""The Compute v2.1 API: one module per resource, wire format in views modules.

Every request is negotiated to a microversion (``OpenStack-API-Version:
compute 2.x`` or ``X-OpenStack-Nova-API-Version``); handlers read it with
``mv(req)`` and views pick their variant from it.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response

from onestack.common import auth, errors, openapi
from onestack.common.http import Api, Req, json_response, media_type
from onestack.common.microversion import MicroversionMiddleware, Negotiator, Version
from onestack.compute.schemas import interfaces as interface_schemas
from onestack.compute.schemas import servers as server_schemas

MIN_VERSION = Version(2, 1)
MAX_VERSION = Version(2, 79)
NEGOTIATOR = Negotiator("compute", MIN_VERSION, MAX_VERSION, "X-OpenStack-Nova-API-Version")

# Nova's fault names by status
FAULTS = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound", 405: "badMethod",
          409: "conflictingRequest", 413: "overLimit", 415: "badMediaType", 429: "overLimit",
          501: "notImplemented", 503: "serviceUnavailable"}


def error_view(exc: errors.ApiError) -> Response:
    """Nova's error body: ``{"itemNotFound": {"code": 404, "message": "..."}}``."""
    name = FAULTS.get(exc.status, "computeFault")
    headers = dict(exc.extra.get("headers", {}))
    if exc.status == 401:
        headers.setdefault("WWW-Authenticate", 'Keystone uri="/identity"')
    return json_response({name: {"code": exc.status, "message": exc.message}}, exc.status, headers)


# What Nova reads a body as; text/plain (a WSGI server's default) and no type count as JSON too
CONTENT_TYPES = ("application/json", "application/vnd.openstack.compute+json", "text/plain", "")


def check_body(request: Request, body: bytes) -> None:
    """Nova refuses any request whose Content-Type it cannot read, body or not."""
    if media_type(request) not in CONTENT_TYPES:
        raise errors.UnsupportedMediaType("Unsupported Content-Type")


api = Api("compute", error_view, auth.authenticate, check_body=check_body)


def mv(req: Req) -> Version:
    """The microversion this request was negotiated to."""
    return req.request.scope.get("state", {}).get("microversion", MIN_VERSION)


def body_of(req: Req, key: str) -> dict:
    """The ``{key: {...}}`` document of a request, or 400 naming what is wrong."""
    data = req.json()
    if not isinstance(data, dict) or not isinstance(data.get(key), dict):
        raise errors.BadRequest(f"Invalid input for field/attribute {key}: the body must be an object "
                                f"with a '{key}' object.")
    return data[key]


def build():
    from onestack.compute.api import (  # noqa: F401  (each registers its routes)
        versions,
    )

    for name in ("flavors", "keypairs", "servers", "actions", "images", "misc", "consoles", "metadata_api",
                 "hosts", "aggregates", "migrations", "quotas", "server_groups", "usage", "volumes", "events", "interfaces"):
        try:
            __import__(f"onestack.compute.api.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"onestack.compute.api.{name}":
                raise
    from onestack.compute.api import aggregates, keypairs

    openapi.serve(api, "Compute", str(MAX_VERSION), {
        "POST /v2.1/servers": server_schemas.CREATE,
        "PUT /v2.1/servers/{server_id}": server_schemas.UPDATE,
        "POST /v2.1/os-keypairs": openapi.member("keypair", keypairs._SCHEMAS),
        "POST /v2.1/os-aggregates": aggregates.CREATE,
        "POST /v2.1/servers/{server_id}/os-interface": interface_schemas.CREATE,
    })
    return MicroversionMiddleware(api.asgi(), NEGOTIATOR, error_view, "x-compute-request-id")


__all__ = ["api", "mv", "body_of", "json", "build"]
