"""The Networking v2.0 API: routes in resources.py, wire format in views.py."""

from __future__ import annotations

from starlette.responses import Response

from onestack.common import auth, errors, openapi
from onestack.common.http import Api, json_response

# Neutron's type names for errors raised without an explicit ``type=``
DEFAULT_TYPES = {400: "HTTPBadRequest", 401: "HTTPUnauthorized", 403: "HTTPForbidden", 404: "HTTPNotFound",
                 405: "HTTPMethodNotAllowed", 409: "HTTPConflict", 413: "HTTPRequestEntityTooLarge",
                 500: "HTTPInternalServerError", 501: "HTTPNotImplemented", 503: "HTTPServiceUnavailable"}


def error_view(exc: errors.ApiError) -> Response:
    """Neutron's error body: ``{"NeutronError": {"type", "message", "detail"}}``."""
    kind = exc.extra.get("type") or DEFAULT_TYPES.get(exc.status, "HTTPError")
    headers = dict(exc.extra.get("headers", {}))
    if exc.status == 401:
        headers.setdefault("WWW-Authenticate", 'Keystone uri="/identity"')
    body = {"NeutronError": {"type": kind, "message": exc.message, "detail": ""}}
    return json_response(body, exc.status, headers)


api = Api("network", error_view, auth.authenticate, redirect_slashes=False)


def build():
    # agents first: their routes must win over the generic /v2.0/{collection} ones
    from onestack.network.api import agents, resources, schemas  # noqa: F401

    # one route creates every kind: a body is one of them, alone or as a list (bulk); the
    # kinds without a schema of their own share the attributes every resource has
    checked = {**{kind: schema for kind, schema in schemas.CREATE.items()},
               **{f"{kind}s": {"type": "array", "items": schema} for kind, schema in schemas.CREATE.items()}}
    others = {"type": "object", "minProperties": 1, "maxProperties": 1,
              "not": {"anyOf": [{"required": [key]} for key in checked]},
              "additionalProperties": {"anyOf": [schemas.OTHER, {"type": "array", "items": schemas.OTHER}]}}
    openapi.serve(api, "Networking", "2.0", {"POST /v2.0/{collection}": {
        **{key: openapi.member(key, schema) for key, schema in checked.items()}, "others": others}})
    return api.asgi()
