"""Host aggregates (``/os-aggregates``): create, list, show, update, delete, and the
``add_host``, ``remove_host`` and ``set_metadata`` actions — admin-only by default.

As in Nova, create, delete and the actions answer 200; 2.41 adds each aggregate's
``uuid``. The rules (one zone per host, hosts with servers keep their zone) live
in ``onestack.compute.aggregates``.
"""

from __future__ import annotations

from onestack.common import errors, validation
from onestack.common.http import Req, empty, json_response
from onestack.common.microversion import Version
from onestack.common.timeutils import iso_plain
from onestack.compute import aggregates
from onestack.compute.api import api, mv
from onestack.compute.api import helpers as h

V_UUID = Version(2, 41)
_MAX_ID = 2**31 - 1

# ---------------------------------------------------------------- schemas (Nova's, 2.1+)

_NAME = {"type": "string", "minLength": 1, "maxLength": 255}
# a zone name: printable, no ':' (it separates a forced host), no edge whitespace
_AZ = {"oneOf": [{"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[^:\s]([^:]*[^:\s])?$"},
                 {"type": "null"}]}
_HOST = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[a-zA-Z0-9-._]*$"}
_META_KEY = r"^[a-zA-Z0-9-_:. ]{1,255}$"


def _wrapped(key: str, inner: dict) -> dict:
    return {"type": "object", "properties": {key: inner}, "required": [key], "additionalProperties": False}


CREATE = _wrapped("aggregate", {"type": "object", "properties": {"name": _NAME, "availability_zone": _AZ},
                                "required": ["name"], "additionalProperties": False})
UPDATE = _wrapped("aggregate", {"type": "object", "properties": {"name": _NAME, "availability_zone": _AZ},
                                "additionalProperties": False,
                                "anyOf": [{"required": ["name"]}, {"required": ["availability_zone"]}]})
ACTIONS = {
    "add_host": _wrapped("add_host", {"type": "object", "properties": {"host": _HOST}, "required": ["host"],
                                      "additionalProperties": False}),
    "remove_host": _wrapped("remove_host", {"type": "object", "properties": {"host": _HOST},
                                            "required": ["host"], "additionalProperties": False}),
    "set_metadata": _wrapped("set_metadata", {
        "type": "object", "required": ["metadata"], "additionalProperties": False,
        "properties": {"metadata": {
            "type": "object", "additionalProperties": False,
            "patternProperties": {_META_KEY: {"type": ["string", "null"], "maxLength": 255}}}}}),
}

# ---------------------------------------------------------------- views


def _view(agg: aggregates.AggregateInfo, v: Version, full: bool = True) -> dict:
    out = {"id": agg.id, "name": agg.name, "availability_zone": agg.availability_zone,
           "created_at": iso_plain(agg.created_at), "updated_at": iso_plain(agg.updated_at),
           "deleted": False, "deleted_at": None}
    if full:  # (the create response has neither, as Nova's)
        out["hosts"] = list(agg.hosts)
        out["metadata"] = dict(agg.metadata)
    if v >= V_UUID:
        out["uuid"] = agg.uuid
    return out


# ---------------------------------------------------------------- routes


def _id(req: Req) -> int:
    raw = req.path["aggregate_id"]
    try:
        agg_id = int(raw)
    except ValueError:
        raise errors.BadRequest(f"Invalid input received: id must be an integer, not {raw!r}.") from None
    if not 0 < agg_id <= _MAX_ID:
        raise errors.NotFound(f"Aggregate {raw} could not be found.")
    return agg_id


def _names(body: dict) -> dict:
    if "name" in body:
        h.check_name(body["name"])
    return body


@api.route("/v2.1/os-aggregates", ["GET"])
def list_aggregates(req: Req):
    v = mv(req)
    return json_response({"aggregates": [_view(a, v) for a in aggregates.list_all(req.ctx)]})


@api.route("/v2.1/os-aggregates", ["POST"])
def create_aggregate(req: Req):
    body = _names(validation.validate(CREATE, req.json())["aggregate"])
    agg = aggregates.create(req.ctx, body["name"], body.get("availability_zone"))
    return json_response({"aggregate": _view(agg, mv(req), full=False)})


@api.route("/v2.1/os-aggregates/{aggregate_id}", ["GET"])
def show_aggregate(req: Req):
    agg_id = _id(req)
    return json_response({"aggregate": _view(aggregates.get(req.ctx, agg_id), mv(req))})


@api.route("/v2.1/os-aggregates/{aggregate_id}", ["PUT"])
def update_aggregate(req: Req):
    agg_id = _id(req)
    body = _names(validation.validate(UPDATE, req.json())["aggregate"])
    return json_response({"aggregate": _view(aggregates.update(req.ctx, agg_id, body), mv(req))})


@api.route("/v2.1/os-aggregates/{aggregate_id}", ["DELETE"])
def delete_aggregate(req: Req):
    agg_id = _id(req)
    aggregates.delete(req.ctx, agg_id)
    return empty(200)


@api.route("/v2.1/os-aggregates/{aggregate_id}/action", ["POST"])
def aggregate_action(req: Req):
    agg_id = _id(req)
    body = req.json()
    if not isinstance(body, dict) or len(body) != 1:
        raise errors.BadRequest("Malformed request body: exactly one action is expected.")
    action = next(iter(body))
    if action not in ACTIONS:
        raise errors.BadRequest(f"There is no such action: {action}")
    args = validation.validate(ACTIONS[action], body)[action]
    if action == "add_host":
        agg = aggregates.add_host(req.ctx, agg_id, args["host"])
    elif action == "remove_host":
        agg = aggregates.remove_host(req.ctx, agg_id, args["host"])
    else:
        agg = aggregates.set_metadata(req.ctx, agg_id, args["metadata"])
    return json_response({"aggregate": _view(agg, mv(req))})
