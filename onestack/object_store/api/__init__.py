"""The Object Storage v1 API (Swift): routes in the modules of this package.

Authentication is optional here (anonymous requests are allowed where a
container ACL or a temporary URL says so); ``access.py`` decides who may do
what, as Swift's keystoneauth middleware does.
"""

from __future__ import annotations

import html
import time
from urllib.parse import unquote_to_bytes

from starlette.responses import Response

from onestack.common import auth, errors, openapi
from onestack.common.http import Api

SWIFT_VERSION = "2.34.0"  # the Swift API level whose behaviour this follows


def error_view(exc: errors.ApiError) -> Response:
    """Swift's error page: a title and a sentence, in a tiny HTML body."""
    body = f"<html><h1>{exc.title}</h1><p>{html.escape(exc.message, quote=False)}</p></html>"
    headers = dict(exc.extra.get("headers", {}))
    if exc.status == 401:
        headers.setdefault("WWW-Authenticate", 'Keystone uri="/identity"')
    return Response(body, exc.status, headers, media_type="text/html")


def optional_auth(request):
    """A validated token's context, or None for an anonymous request."""
    token = request.headers.get("x-auth-token") or request.headers.get("x-storage-token")
    if not token:
        return None
    return auth.validate(token.strip())


api = Api("object_store", error_view, optional_auth, redirect_slashes=False)


def build():
    from onestack.object_store.api import accounts, containers, cors, info, objects  # noqa: F401

    openapi.serve(api, "Object Storage", SWIFT_VERSION)
    # CORS headers for allowed origins, on every container/object response (cors.py)
    return SwiftHeaders(Utf8Paths(cors.CorsMiddleware(api.asgi())))


def swift_trans_id(request_id: str) -> str:
    """Swift's transaction id form, ``tx<21 hex>-<10 hex of the time>``, made from
    the request id (its first 21 hex digits), so logs and clients still agree."""
    digits = request_id.removeprefix("req-").replace("-", "")[:21].ljust(21, "0")
    return f"tx{digits}-{int(time.time()):010x}"


class Utf8Paths:
    """Swift's proxy refuses, with a 412, a path that is not valid UTF-8 once
    percent-decoded or that holds a NUL: no such account, container or object
    name is ever stored (the decoded path alone would hide bad bytes as U+FFFD)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            raw = unquote_to_bytes(scope.get("raw_path") or scope["path"].encode())
            try:
                bad = b"\x00" in raw or not raw.decode("utf-8")
            except UnicodeDecodeError:
                bad = True
            if bad:
                resp = error_view(errors.PreconditionFailed("Invalid UTF8 or contains NULL"))
                return await resp(scope, receive, send)
        return await self.app(scope, receive, send)


class SwiftHeaders:
    """Every response carries what Swift's always do: ``X-Trans-Id`` (the request
    id) and a ``Content-Type`` (even on 204s; Swift clients and Tempest rely on it)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        trans_id = swift_trans_id(scope.get("state", {}).get("request_id", ""))

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                if b"content-type" not in names:
                    headers.append((b"content-type", b"text/html; charset=UTF-8"))
                headers.append((b"x-trans-id", trans_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, send_with_headers)
