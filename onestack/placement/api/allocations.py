"""Allocations of consumers (GET/PUT/DELETE one, POST many), usages, reshaper."""

from __future__ import annotations

from onestack.common import db, errors
from onestack.common.http import Req, empty, json_response
from onestack.placement import allocations, core, standard
from onestack.placement.allocations import INCOMPLETE, ConsumerWrite
from onestack.placement.api import body, params, route, views
from onestack.placement.api import schemas as sch
from onestack.placement.api import versions as mv


def _consumer_uuid(req: Req) -> str:
    u = core.norm_uuid(req.path["consumer_uuid"])
    if u is None:
        raise errors.BadRequest(f"Malformed consumer_uuid: {req.path['consumer_uuid']}")
    return u


def _write(uuid: str, data: dict, v) -> ConsumerWrite:
    """One consumer's request body (dict format) -> a ConsumerWrite."""
    allocs = {core.norm_uuid(rp): dict(a["resources"]) for rp, a in data["allocations"].items()}
    return ConsumerWrite(
        uuid=uuid, allocations=allocs,
        project_id=data.get("project_id") or INCOMPLETE, user_id=data.get("user_id") or INCOMPLETE,
        generation=data.get("consumer_generation"), check_generation=v >= mv.CONSUMER_GENERATION,
        consumer_type=data.get("consumer_type"), mappings=data.get("mappings") or {})


@route("/allocations/{consumer_uuid}", "GET", "placement:allocations:list")
def show_allocations(req: Req, v):
    uuid = core.norm_uuid(req.path["consumer_uuid"])
    with db.session() as s:
        c = allocations.consumer_allocations(s, uuid) if uuid else allocations.ConsumerAllocations({})
    return json_response(views.consumer_allocations(c, v))


@route("/allocations/{consumer_uuid}", "PUT", "placement:allocations:update")
def put_allocations(req: Req, v):
    uuid = _consumer_uuid(req)
    data = body(req, sch.pick(sch.PUT_ALLOCATIONS, v))
    if v >= mv.ALLOCATIONS_DICT:
        w = _write(uuid, data, v)
    else:
        merged: dict[str, dict[str, int]] = {}
        for a in data["allocations"]:
            res = merged.setdefault(core.norm_uuid(a["resource_provider"]["uuid"]), {})
            for rc, n in a["resources"].items():
                res[rc] = res.get(rc, 0) + n
        w = ConsumerWrite(uuid, merged, data.get("project_id") or INCOMPLETE,
                          data.get("user_id") or INCOMPLETE)
    with db.transaction() as s:
        allocations.write(s, [w])
    return empty()


@route("/allocations/{consumer_uuid}", "DELETE", "placement:allocations:delete")
def delete_allocations(req: Req, v):
    uuid = core.norm_uuid(req.path["consumer_uuid"])
    if uuid is None:
        raise errors.NotFound(f"No allocations for consumer '{req.path['consumer_uuid']}'")
    with db.transaction() as s:
        allocations.delete_consumer(s, uuid)
    return empty()


@route("/allocations", "POST", "placement:allocations:manage", since=mv.POST_ALLOCATIONS)
def post_allocations(req: Req, v):
    data = body(req, sch.pick(sch.POST_ALLOCATIONS, v))
    writes = [_write(core.norm_uuid(c), d, v) for c, d in data.items()]
    with db.transaction() as s:
        allocations.write(s, writes)
    return empty()


@route("/usages", "GET", "placement:usages", since=mv.USAGES)
def usages(req: Req, v):
    allowed = {"project_id", "user_id"} | ({"consumer_type"} if v >= mv.CONSUMER_TYPES else set())
    params.check_names(req, allowed)
    project_id = params.single(req, "project_id")
    if not project_id:
        raise errors.BadRequest("Invalid query string parameters: 'project_id' is a required property",
                                code=core.QUERY_MISSING_VALUE)
    consumer_type = params.single(req, "consumer_type")
    if consumer_type is not None and consumer_type not in ("all", "unknown") and \
            not standard.ANY_NAME.match(consumer_type):
        raise errors.BadRequest(f"Invalid query string parameters: invalid consumer_type {consumer_type!r}")
    with db.session() as s:
        data = allocations.usages(s, project_id, params.single(req, "user_id"), consumer_type,
                                  by_type=v >= mv.CONSUMER_TYPES)
    return json_response(views.usages(data))


@route("/reshaper", "POST", "placement:reshaper:reshape", since=mv.RESHAPER)
def reshape(req: Req, v):
    data = body(req, sch.pick(sch.RESHAPER, v))
    invs = {core.norm_uuid(rp): (d["resource_provider_generation"], d["inventories"])
            for rp, d in data["inventories"].items()}
    writes = [_write(core.norm_uuid(c), d, v) for c, d in data["allocations"].items()]
    with db.transaction() as s:
        allocations.reshape(s, invs, writes, v >= mv.RESERVED_EQUALS_TOTAL)
    return empty()
