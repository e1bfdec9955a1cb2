"""Version discovery: ``GET /placement/`` answers without a token."""

from __future__ import annotations

from onestack.common.http import Req, json_response
from onestack.placement.api import route, views


@route("/", "GET", None)
def versions(req: Req, v):
    return json_response(views.root(str(req.request.base_url)))
