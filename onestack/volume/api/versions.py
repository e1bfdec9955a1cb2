"""Version discovery: ``GET /volume/`` (300, every version) and ``GET /volume/v3/`` (this one)."""

from __future__ import annotations

from onestack.common.http import Req, json_response
from onestack.volume.api import MAX_VERSION, MIN_VERSION, api
from onestack.volume.api.views import base_url

UPDATED = "2023-08-31T00:00:00Z"


def version_doc(req: Req) -> dict:
    return {
        "id": "v3.0",
        "status": "CURRENT",
        "version": str(MAX_VERSION),
        "min_version": str(MIN_VERSION),
        "updated": UPDATED,
        "links": [{"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"},
                  {"rel": "self", "href": f"{base_url(req)}/v3/"}],
        "media-types": [{"base": "application/json",
                         "type": "application/vnd.openstack.volume+json;version=3"}],
    }


@api.route("/", ["GET"], auth=False)
def versions(req: Req):
    return json_response({"versions": [version_doc(req)]}, 300)


@api.route("/v3/", ["GET"], auth=False)
def version_v3(req: Req):
    return json_response({"versions": [version_doc(req)]})


@api.route("/v3", ["GET"], auth=False)
def version_v3_noslash(req: Req):
    return json_response({"versions": [version_doc(req)]})
