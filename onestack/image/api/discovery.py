"""Version discovery: ``/image``, ``/image/versions``, ``/image/v2``."""

from __future__ import annotations

from onestack.common.http import Req, json_response
from onestack.image.api import VERSIONS, api


def _versions(req: Req) -> dict:
    base = str(req.request.base_url).rstrip("/")  # .../image: the mount point
    return {
        "versions": [
            {
                "id": f"v{v}",
                "status": "CURRENT" if i == 0 else "SUPPORTED",
                "links": [{"rel": "self", "href": f"{base}/v2/"}],
            }
            for i, v in enumerate(VERSIONS)
        ]
    }


@api.route("/", ["GET"], auth=False)
def root(req: Req):
    # 300 Multiple Choices at the root, as Glance answers
    return json_response(_versions(req), 300)


@api.route("/versions", ["GET"], auth=False)
def versions(req: Req):
    return json_response(_versions(req))


@api.route("/v2", ["GET"], auth=False)
@api.route("/v2/", ["GET"], auth=False)
def v2(req: Req):
    return json_response(_versions(req), 300)
