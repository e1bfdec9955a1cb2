"""The Identity v3 API: routes in the modules of this package, wire format in views."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from onestack.common import auth, errors, openapi
from onestack.common.http import Api, json_response, media_type

VERSION = "3.14"
MEDIA_TYPE = "application/vnd.openstack.identity-v3+json"


def error_view(exc: errors.ApiError) -> Response:
    """Keystone's error body: {"error": {"code", "message", "title"}}."""
    body = {"error": {"code": exc.status, "message": exc.message, "title": exc.title}}
    headers = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Keystone uri="/identity"'
    headers.update(exc.extra.get("headers", {}))
    return json_response(body, exc.status, headers)


def check_body(request: Request, body: bytes) -> None:
    """Keystone reads a body as JSON only: sent as application/json (or another
    application/*+json type) or with no Content-Type at all."""
    kind = media_type(request)
    if body and kind and kind != "application/json" and not (kind.startswith("application/")
                                                              and kind.endswith("+json")):
        raise errors.BadRequest("Expecting to find application/json in Content-Type header. The server could "
                                "not comply with the request since it is either malformed or otherwise "
                                "incorrect. The client is assumed to be in error.")


api = Api("identity", error_view, auth.authenticate, check_body=check_body)


def build():
    """Import the route modules (they register on ``api``) and return the ASGI app."""
    from onestack.identity.api import (  # noqa: F401
        appcreds,
        assignments,
        catalog,
        discovery,
        limits,
        projects,
        tokens,
        trusts,
        users,
    )

    openapi.serve(api, "Identity", VERSION, {
        "POST /v3/regions": openapi.member("region", catalog.REGION_CREATE),
        "POST /v3/services": openapi.member("service", catalog.SERVICE_CREATE),
        "POST /v3/endpoints": openapi.member("endpoint", catalog.ENDPOINT_CREATE),
        "POST /v3/registered_limits": limits.REGISTERED_CREATE,
        "POST /v3/limits": limits.LIMITS_CREATE,
    })
    return api.asgi()
