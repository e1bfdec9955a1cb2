"""The Image v2 API: routes in the modules of this package, wire format in views."""

from __future__ import annotations

import html
import json

from starlette.requests import Request
from starlette.responses import Response

from onestack.common import auth, errors, openapi
from onestack.common.http import Api

# What version discovery advertises: 2.7 adds os_hidden to 2.6's interoperable
# import, and both are implemented; 2.8+ (multiple stores, copy-image, cache
# API) are not.
# Interoperable import: glance-direct only (see imports.py for why not web-download).
IMPORT_METHODS = ["glance-direct"]
VERSIONS = ["2.7", "2.6", "2.5", "2.4", "2.3", "2.2", "2.1", "2.0"]


def error_view(exc: errors.ApiError, request: Request | None = None) -> Response:
    """Glance's errors as webob writes them, in the first of HTML and JSON that the
    client's Accept allows, else plain text: the status line and the explanation
    (followed by webob's ``<br /><br />``), which openstacksdk and glanceclient
    both turn back into one message."""
    status = f"{exc.status} {exc.title}"
    explained = f"{exc.message}<br /><br />\n\n\n"
    fmt = error_format(request.headers.get("accept", "") if request is not None else "*/*")
    if fmt == "application/json":
        body = json.dumps({"message": explained, "code": status, "title": exc.title})
    elif fmt == "text/html":
        body = (f"<html>\n <head>\n  <title>{status}</title>\n </head>\n <body>\n  <h1>{status}</h1>\n"
                f"  {html.escape(exc.message, quote=False)}<br /><br />\n\n\n\n </body>\n</html>")
    else:
        body = f"{status}\n\n{exc.message}\n\n   "
    headers = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Keystone uri="/identity"'
    headers.update(exc.extra.get("headers", {}))
    return Response(body, exc.status, headers, media_type=fmt)


ERROR_FORMATS = ("text/html", "application/json")  # webob's offers, in its order of preference


def error_format(accept: str) -> str:
    """The media type webob answers an error in for this Accept header: the offer
    with the highest q (the most specific range that matches decides it; ties go
    to HTML), or text/plain when Accept (absent counts as empty) allows neither."""
    ranges = []
    for part in accept.split(","):
        mtype, *params = (p.strip() for p in part.split(";"))
        if "/" not in mtype:
            continue
        q = 1.0
        for p in params:
            name, _, value = p.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    return ERROR_FORMATS[0]  # an invalid header counts as none at all: anything goes
        ranges.append((mtype.lower(), q))
    best, best_q = "text/plain", 0.0
    for offer in ERROR_FORMATS:
        kind = offer.split("/")[0]
        matches = [(3 if r == offer else 2 if r == f"{kind}/*" else 1, q) for r, q in ranges
                   if r in (offer, f"{kind}/*", "*/*")]
        q = max(matches)[1] if matches else 0.0
        if q > best_q:
            best, best_q = offer, q
    return best


api = Api("image", error_view, auth.authenticate, redirect_slashes=False, request_error_view=error_view)


def build():
    """Import the route modules (they register on ``api``) and return the ASGI app."""
    from onestack.image.api import data, discovery, images, imports, members, schemas  # noqa: F401

    openapi.serve(api, "Image", VERSIONS[0], {
        "POST /v2/images": images.WRITE_SCHEMA,
        "POST /v2/images/{image_id}/members": members.CREATE,
    })
    return api.asgi()
