"""CORS, as Swift's proxy does it (strict mode).

Origins are allowed per container (``X-Container-Meta-Access-Control-Allow-Origin``:
space-separated origins or ``*``) and for every container by the operator
(``object_store.cors_allow_origin``).

* Preflight ``OPTIONS /v1/a/c[/o]`` (routes below): 200 with the
  ``Access-Control-Allow-*`` headers, or 401 when the origin or method is not allowed.
* Actual requests with an ``Origin`` the container allows get
  ``Access-Control-Allow-Origin`` and ``Access-Control-Expose-Headers`` on
  their response, errors included: ``CorsMiddleware`` adds them in one
  place, with one container metadata lookup per such request.
"""

from __future__ import annotations

import logging
import re

import anyio.to_thread
from starlette.responses import Response

from onestack.common.http import Req
from onestack.object_store import proxy
from onestack.object_store.api import api
from onestack.object_store.api.common import Limits, live_metadata

log = logging.getLogger(__name__)

ORIGIN = "X-Container-Meta-Access-Control-Allow-Origin"
MAX_AGE = "X-Container-Meta-Access-Control-Max-Age"
EXPOSE = "X-Container-Meta-Access-Control-Expose-Headers"
METHODS = {  # what each kind of resource allows, as Swift's controllers
    "account": ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"],
    "container": ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"],
    "object": ["COPY", "DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"],
}
# simple response headers, Swift's own, and the request id
EXPOSED_ALWAYS = [
    "cache-control",
    "content-language",
    "content-type",
    "expires",
    "last-modified",
    "pragma",
    "etag",
    "x-timestamp",
    "x-trans-id",
    "x-openstack-request-id",
]
_PATH = re.compile(r"^/v1/([^/]+)/([^/]+)(?:/.*)?$")


def cors_info(account: str, container: str) -> dict[str, str]:
    """The container's CORS settings ({} when it has none or does not exist)."""
    cinfo = proxy.container_info(proxy.cluster(), account, container)
    meta = live_metadata(cinfo.metadata) if cinfo else {}
    return {
        k: meta[h]
        for k, h in (("allow_origin", ORIGIN), ("max_age", MAX_AGE), ("expose_headers", EXPOSE))
        if h in meta
    }


def origin_allowed(info: dict[str, str], origin: str) -> bool:
    allowed = set(info.get("allow_origin", "").split()) | set(Limits.cors_allow_origin)
    return origin in allowed or "*" in allowed


def _allow_origin(info: dict[str, str], origin: str, headers: dict[str, str]) -> None:
    if info.get("allow_origin", "").strip() == "*":
        headers["Access-Control-Allow-Origin"] = "*"
    else:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Vary"] = headers["Vary"] + ", Origin" if headers.get("Vary") else "Origin"


# --------------------------------------------------------------------------- preflight


def preflight(req: Req, kind: str) -> Response:
    methods = METHODS[kind]
    headers = {"Allow": ", ".join(methods)}
    origin = req.headers.get("origin")
    if not origin or kind == "account":  # not a CORS preflight (or not about a container)
        return Response(b"", 200, headers)
    info = cors_info(req.path["account"], req.path["container"])
    if (
        not origin_allowed(info, origin)
        or req.headers.get("access-control-request-method") not in methods
    ):
        body = (
            "<html><h1>Unauthorized</h1><p>This server could not verify that you are authorized "
            "to access the document you requested.</p></html>"
        )
        return Response(body, 401, headers, media_type="text/html")
    _allow_origin(info, origin, headers)
    if "max_age" in info:
        headers["Access-Control-Max-Age"] = info["max_age"]
    headers["Access-Control-Allow-Methods"] = ", ".join(methods)
    asked = [
        h.strip()
        for h in req.headers.get("access-control-request-headers", "").split(",")
        if h.strip()
    ]
    if asked:  # the list is unbounded anyway: allow what was asked, as Swift does
        headers["Access-Control-Allow-Headers"] = ", ".join(dict.fromkeys(asked))
        headers["Vary"] = (
            headers["Vary"] + ", Access-Control-Request-Headers"
            if headers.get("Vary")
            else "Access-Control-Request-Headers"
        )
    return Response(b"", 200, headers)


@api.route("/v1/{account}", ["OPTIONS"], auth=False)
@api.route("/v1/{account}/", ["OPTIONS"], auth=False)
def options_account(req: Req) -> Response:
    return preflight(req, "account")


@api.route("/v1/{account}/{container}", ["OPTIONS"], auth=False)
def options_container(req: Req) -> Response:
    return preflight(req, "container")


@api.route("/v1/{account}/{container}/{obj:path}", ["OPTIONS"], auth=False)
def options_object(req: Req) -> Response:
    return preflight(req, "object" if req.path["obj"] else "container")


# --------------------------------------------------------------------------- actual requests


def response_headers(
    info: dict[str, str], origin: str, sent: list[tuple[bytes, bytes]]
) -> dict[str, str]:
    """The CORS headers to add to a response whose headers are ``sent`` ({} if not allowed)."""
    if not origin_allowed(info, origin):
        return {}  # strict mode: say nothing to origins that are not allowed
    names = {k.decode("latin-1").lower() for k, _ in sent}
    out: dict[str, str] = {}
    if "access-control-expose-headers" not in names:
        expose = dict.fromkeys(EXPOSED_ALWAYS)
        expose.update(
            dict.fromkeys(n for n in names if n.startswith(("x-container-meta-", "x-object-meta-")))
        )
        expose.update(dict.fromkeys(h.lower() for h in info.get("expose_headers", "").split()))
        out["Access-Control-Expose-Headers"] = ", ".join(expose)
    if "access-control-allow-origin" not in names:
        vary = next((v.decode("latin-1") for k, v in sent if k.lower() == b"vary"), "")
        headers = {"Vary": vary} if vary else {}
        _allow_origin(info, origin, headers)
        out.update(headers)
    return out


class CorsMiddleware:
    """Adds CORS headers to container and object responses for allowed origins."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            return await self.app(scope, receive, send)
        origin = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"origin"), None)
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        m = _PATH.match(path)
        if not origin or m is None:
            return await self.app(scope, receive, send)
        try:
            info = await anyio.to_thread.run_sync(cors_info, m[1], m[2])
        except Exception as e:  # noqa: BLE001 (the request itself will report the failure)
            log.debug("no CORS information for %s: %r", path, e)
            return await self.app(scope, receive, send)

        async def send_with_cors(message):
            if message["type"] == "http.response.start":
                sent = list(message.get("headers", []))
                extra = response_headers(info, origin, sent)
                if "Vary" in extra:
                    sent = [(k, v) for k, v in sent if k.lower() != b"vary"]
                sent += [
                    (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()
                ]
                message = {**message, "headers": sent}
            await send(message)

        return await self.app(scope, receive, send_with_cors)
