"""``GET /``: the versions of the orchestration API (300, as Heat answers); the guest's
signal URL (no token: a signature); build info."""

from __future__ import annotations

from onestack.common.http import Req, json_response
from onestack.orchestration import stacks
from onestack.orchestration.api import api, route


@api.route("/", ["GET"], auth=False)
def versions(req: Req):
    root = f"{req.url.scheme}://{req.url.netloc}{req.request.scope.get('root_path', '')}"
    return json_response({"versions": [{"id": "v1.0", "status": "CURRENT",
                                        "links": [{"rel": "self", "href": root + "/v1/"}]}]}, 300)


@api.route("/v1/signal/{stack_id}/{resource}", ["POST"], auth=False)
def signal(req: Req):
    details = req.json() if req.body.strip() else {}
    stacks.signal_by_url(req.path["stack_id"], req.path["resource"], req.query.get("sig", ""), details)
    return json_response(None, 200)


@route("/build_info", ["GET"])
def build_info(req: Req):
    return json_response({"api": {"revision": "onestack"}, "engine": {"revision": "onestack"}})
