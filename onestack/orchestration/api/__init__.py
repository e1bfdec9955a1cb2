"""The Orchestration v1 API (Heat): one module per resource, wire format in views.py.

Routes live under ``/v1/{tenant_id}``; the tenant in the URL must be the token's
project (an admin may name any). ``GET``/``DELETE /stacks/{name}`` (and its sub-paths)
answer 302 to the stack's canonical ``/stacks/{name}/{id}`` URL, as Heat does.
Errors are Heat's fault body: ``{"code", "title", "explanation", "error": {"message",
"type", "traceback": null}}``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from onestack.common import auth, errors, openapi
from onestack.common.http import Api, Req, json_response, media_type

# webob's explanation of each status, which Heat's fault body carries
EXPLANATIONS = {
    400: "The server could not comply with the request since it is either malformed or otherwise "
         "incorrect.",
    401: "This server could not verify that you are authorized to access the document you requested. "
         "Either you supplied the wrong credentials (e.g., bad password), or your browser does not "
         "understand how to supply the credentials required.",
    403: "Access was denied to this resource.",
    404: "The resource could not be found.",
    405: "The server could not comply with the request since it is either malformed or otherwise "
         "incorrect.",
    409: "There was a conflict when trying to complete your request.",
    413: "The request is larger than the server is willing or able to process.",
    415: "The request media type is not supported by this server.",
    500: "The server has either erred or is incapable of performing the requested operation.",
    503: "The server is currently unavailable. Please try again at a later time.",
}
TYPES = {400: "HTTPBadRequest", 401: "HTTPUnauthorized", 403: "Forbidden", 404: "HTTPNotFound",
         405: "HTTPMethodNotAllowed", 409: "HTTPConflict", 413: "RequestLimitExceeded",
         415: "HTTPUnsupportedMediaType", 500: "HTTPInternalServerError", 503: "HTTPServiceUnavailable"}


def error_view(exc: errors.ApiError) -> Response:
    kind = getattr(exc, "heat_type", None) or TYPES.get(exc.status, type(exc).__name__)
    headers = dict(exc.extra.get("headers", {}))
    if exc.status == 401:
        headers.setdefault("WWW-Authenticate", 'Keystone uri="/identity"')
    body = {"code": exc.status, "title": exc.title,
            "explanation": EXPLANATIONS.get(exc.status, exc.title),
            "error": {"message": exc.message, "type": kind, "traceback": None}}
    return json_response(body, exc.status, headers)


def check_body(request: Request, body: bytes) -> None:
    kind = media_type(request)
    if "/v1/signal/" in request.url.path:
        return  # a guest's busybox wget posts its JSON as a form
    if body and kind and kind not in ("application/json", "text/plain", "application/x-yaml",
                                      "application/octet-stream"):
        raise errors.UnsupportedMediaType(f"Unsupported Content-Type {kind}")


api = Api("orchestration", error_view, auth.authenticate, redirect_slashes=False, check_body=check_body)


class Redirect(Exception):
    """Answer 302 to ``location`` (a stack looked up by name)."""

    def __init__(self, location: str):
        self.location = location


def route(path: str, methods: list[str], **kw):
    """Register ``/v1/{tenant_id}<path>``."""

    def register(fn):
        def checked(req: Req):
            tenant = req.path.pop("tenant_id", None)
            if tenant is not None and req.ctx is not None and tenant != req.ctx.project_id \
                    and not req.ctx.is_admin:
                raise errors.Forbidden("The tenant in the URL is not the token's project.")
            try:
                return fn(req)
            except Redirect as r:
                return Response(b"", status_code=302, headers={"Location": r.location})

        checked.__name__ = fn.__name__
        api.route("/v1/{tenant_id}" + path, methods, **kw)(checked)
        return fn

    return register


def body(req: Req) -> dict:
    data = req.json()
    if not isinstance(data, dict):
        raise errors.BadRequest("The request body must be a JSON object.")
    return data


def base_url(req: Req) -> str:
    """``http://host/orchestration/v1/{tenant}``: the root of this API's links."""
    root = req.request.scope.get("root_path", "")
    url = req.url
    return f"{url.scheme}://{url.netloc}{root}/v1/{req.ctx.project_id if req.ctx else ''}"


def build():
    from onestack.orchestration.api import versions  # noqa: F401  (registers its routes first)

    for name in ("software", "types", "stacks", "snapshots", "resources", "lookup"):  # lookup last: a catch-all
        __import__(f"onestack.orchestration.api.{name}")
    openapi.serve(api, "Orchestration", "1.0")
    return api.asgi()


__all__ = ["api", "route", "body", "base_url", "build", "Redirect", "json_response"]
