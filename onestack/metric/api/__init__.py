"""The Metric v1 API (Gnocchi): routes in v1.py, errors in Gnocchi's shape.

Gnocchi's error body is ``{"code", "description", "title"}``; an invalid input's
description is an object ``{"cause", "reason", "detail"}`` where Gnocchi gives one
(``errors.ApiError(..., gnocchi={...})``).
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from onestack.common import auth, errors, openapi
from onestack.common.http import Api, Req, json_response, media_type


def error_view(exc: errors.ApiError) -> Response:
    headers = dict(exc.extra.get("headers", {}))
    if exc.status == 401:
        headers.setdefault("WWW-Authenticate", 'Keystone uri="/identity"')
    description = exc.extra.get("gnocchi") or exc.message
    if isinstance(description, dict):
        description = {"reason": exc.message, **description}
    return json_response({"code": exc.status, "description": description, "title": exc.title},
                         exc.status, headers)


def check_request(request: Request, body: bytes) -> None:
    """As Gnocchi: an Accept that JSON does not satisfy is a 406; a body (or a declared
    Content-Type on a write) that is not JSON is a 415, also when the type is missing."""
    accept = request.headers.get("accept", "").strip()
    if accept and not _accepts_json(accept):
        raise errors.NotAcceptable(f"406 Not Acceptable: the response can only be application/json, "
                                   f"not {accept}")
    kind = media_type(request)
    declared = kind and request.method in ("POST", "PUT", "PATCH")
    if (body or declared) and kind != "application/json" and not kind.endswith("+json"):
        raise errors.UnsupportedMediaType(f"Unsupported Content-Type {kind or '(none)'}: "
                                          "send application/json")


def _accepts_json(accept: str) -> bool:
    for item in accept.split(","):
        kind, _, params = item.partition(";")
        q = params.replace(" ", "").partition("q=")[2].partition(";")[0]
        try:
            refused = q != "" and float(q) <= 0
        except ValueError:
            refused = False
        if kind.strip().lower() in ("application/json", "application/*", "*/*", "*") and not refused:
            return True
    return False


api = Api("metric", error_view, auth.authenticate, redirect_slashes=True, check_body=check_request)


def body(req: Req):
    return req.json()


def build():
    from onestack.metric.api import v1  # noqa: F401  (registers the routes)

    openapi.serve(api, "Metric", "1.0")
    return _single_slashes(api.asgi())


def _single_slashes(app):
    """gnocchiclient asks for ``v1/archive_policy//<name>`` on update; Gnocchi (pecan)
    reads it as one slash, so do we."""

    async def asgi(scope, receive, send):
        if scope["type"] == "http" and "//" in scope["path"]:
            path = re.sub("/{2,}", "/", scope["path"])
            scope = {**scope, "path": path, "raw_path": path.encode()}
        await app(scope, receive, send)

    return asgi


__all__ = ["api", "body", "build", "json_response"]
