"""Version discovery: ``GET /compute/`` and ``GET /compute/v2.1/`` (no token needed)."""

from __future__ import annotations

from onestack.common.http import Req, json_response
from onestack.compute.api import MAX_VERSION, MIN_VERSION, api


def _base(req: Req) -> str:
    return str(req.url.replace(query="", fragment="")).split("/v2.1")[0].rstrip("/") + "/"


def _v21(base: str) -> dict:
    return {"id": "v2.1", "status": "CURRENT", "version": str(MAX_VERSION), "min_version": str(MIN_VERSION),
            "updated": "2013-07-23T11:33:21Z",
            "links": [{"rel": "self", "href": base + "v2.1/"},
                      {"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.compute+json;version=2.1"}]}


def _v20(base: str) -> dict:
    """The legacy v2.0 API, listed first as Nova lists it (served here as v2.1 at its base)."""
    return {"id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "",
            "updated": "2011-01-21T11:33:21Z", "links": [{"rel": "self", "href": base + "v2/"}]}


@api.route("/", ["GET"], auth=False)
def versions(req: Req):
    base = _base(req)
    return json_response({"versions": [_v20(base), _v21(base)]})


@api.route("/v2.1", ["GET"], auth=False)
@api.route("/v2.1/", ["GET"], auth=False)
def version_v21(req: Req):
    return json_response({"version": _v21(_base(req))})
