"""The Image v2 API: routes in the modules of this package, wire format in views."""

from __future__ import annotations

import html

from starlette.responses import Response

from onestack.common import auth, errors
from onestack.common.http import Api

# What version discovery advertises: 2.7 adds os_hidden to 2.6's interoperable
# import, and both are implemented; 2.8+ (multiple stores, copy-image, cache
# API) are not.
# Interoperable import: glance-direct only (see imports.py for why not web-download).
IMPORT_METHODS = ["glance-direct"]
VERSIONS = ["2.7", "2.6", "2.5", "2.4", "2.3", "2.2", "2.1", "2.0"]


def error_view(exc: errors.ApiError) -> Response:
    """Glance's (webob's) error page: the status line and the explanation, in
    HTML that openstacksdk and glanceclient both turn back into one message."""
    status = f"{exc.status} {exc.title}"
    body = (
        f"<html>\n <head>\n  <title>{status}</title>\n </head>\n <body>\n"
        f"  <h1>{status}</h1>\n  {html.escape(exc.message, quote=False)}<br /><br />\n\n\n\n </body>\n</html>"
    )
    headers = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Keystone uri="/identity"'
    headers.update(exc.extra.get("headers", {}))
    return Response(body, exc.status, headers, media_type="text/html")


api = Api("image", error_view, auth.authenticate, redirect_slashes=False)


def build():
    """Import the route modules (they register on ``api``) and return the ASGI app."""
    from onestack.image.api import data, discovery, images, imports, members, schemas  # noqa: F401

    return api.asgi()
