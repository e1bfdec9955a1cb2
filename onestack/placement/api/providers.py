"""Resource providers and what hangs off one: inventories, aggregates, traits,
usages and allocations."""

from __future__ import annotations

from onestack.common import db, errors
from onestack.common.http import Req, empty, json_response
from onestack.placement import allocations, core
from onestack.placement.api import body, location, params, prefix, route, views
from onestack.placement.api import schemas as sch
from onestack.placement.api import versions as mv

RP = "/resource_providers/{uuid}"


def _rp(s, req: Req) -> core.Provider:
    return core.get_provider(s, req.path["uuid"])


# --- providers --------------------------------------------------------------------------------

_LIST_PARAMS = [(mv.MIN, {"name", "uuid"}), (mv.MEMBER_OF, {"member_of"}),
                (mv.RESOURCES_FILTER, {"resources"}), (mv.NESTED, {"in_tree"}),
                (mv.PROVIDERS_REQUIRED, {"required"})]


@route("/resource_providers", "GET", "placement:resource_providers:list")
def list_providers(req: Req, v):
    params.check_names(req, {n for since, names in _LIST_PARAMS if v >= since for n in names})
    f = core.ProviderFilter(name=params.single(req, "name"), uuid=params.single(req, "uuid"),
                            in_tree=params.single(req, "in_tree"))
    if f.uuid is not None and core.norm_uuid(f.uuid) is None:
        raise errors.BadRequest(f"Invalid query string parameters: Invalid uuid value: {f.uuid}")
    if f.in_tree is not None and core.norm_uuid(f.in_tree) is None:
        raise errors.BadRequest(f"Invalid query string parameters: Invalid uuid value: {f.in_tree}")
    with db.session() as s:
        values = params.many(req, "member_of", repeatable=v >= mv.MULTI_MEMBER_OF)
        if values:
            any_sets, forbidden = params.member_of(values, v)
            f.member_of = params.member_of_filter(any_sets, forbidden)
        text = params.single(req, "resources")
        if text is not None:
            f.resources = params.resource_ids(s, params.resources(text))
        values = params.many(req, "required", repeatable=v >= mv.ANY_TRAITS)
        if values:
            any_sets, forbidden = params.required(values, v)
            f.required, f.forbidden = params.trait_ids(s, any_sets, forbidden)
        found = core.list_providers(s, f)
    return json_response(views.providers(prefix(req), found, v))


@route("/resource_providers", "POST", "placement:resource_providers:create")
def create_provider(req: Req, v):
    data = body(req, sch.pick(sch.CREATE_PROVIDER, v))
    with db.transaction() as s:
        p = core.create_provider(s, data["name"], data.get("uuid"), data.get("parent_provider_uuid"))
    headers = {"Location": location(req, f"/resource_providers/{p.uuid}")}
    if v >= mv.CREATE_RETURNS_PROVIDER:
        return json_response(views.provider(prefix(req), p, v), 200, headers)
    return empty(201, headers)


@route(RP, "GET", "placement:resource_providers:show")
def show_provider(req: Req, v):
    with db.session() as s:
        p = _rp(s, req)
    resp = json_response(views.provider(prefix(req), p, v))
    if v >= mv.CACHE_HEADERS:
        resp.headers["last-modified"] = p.updated_at.strftime("%a, %d %b %Y %H:%M:%S GMT")
    return resp


@route(RP, "PUT", "placement:resource_providers:update")
def update_provider(req: Req, v):
    data = body(req, sch.pick(sch.UPDATE_PROVIDER, v))
    with db.transaction() as s:
        extra = {"parent_uuid": data["parent_provider_uuid"]} if "parent_provider_uuid" in data else {}
        p = core.update_provider(s, req.path["uuid"], data["name"], allow_reparent=v >= mv.REPARENT,
                                 **extra)
    return json_response(views.provider(prefix(req), p, v))


@route(RP, "DELETE", "placement:resource_providers:delete")
def delete_provider(req: Req, v):
    with db.transaction() as s:
        core.delete_provider(s, req.path["uuid"])
    return empty()


# --- inventories ---------------------------------------------------------------------------------


@route(RP + "/inventories", "GET", "placement:resource_providers:inventories:list")
def list_inventories(req: Req, v):
    with db.session() as s:
        p = _rp(s, req)
        invs = core.inventories(s, p.id)
    return json_response(views.inventories(invs, p.generation))


@route(RP + "/inventories", "PUT", "placement:resource_providers:inventories:update")
def set_inventories(req: Req, v):
    data = body(req, sch.SET_INVENTORIES)
    with db.transaction() as s:
        invs, gen = core.set_inventories(s, req.path["uuid"], data["resource_provider_generation"],
                                         data["inventories"], v >= mv.RESERVED_EQUALS_TOTAL)
    return json_response(views.inventories(invs, gen))


@route(RP + "/inventories", "POST", "placement:resource_providers:inventories:create")
def create_inventory(req: Req, v):
    data = body(req, sch.CREATE_INVENTORY)
    rc = data["resource_class"]
    with db.transaction() as s:
        p = _rp(s, req)
        gen = data.get("resource_provider_generation", p.generation)
        inv, gen = core.set_inventory(s, p.uuid, rc, gen, data, v >= mv.RESERVED_EQUALS_TOTAL,
                                      create_only=True)
    return json_response(views.inventory(inv, gen), 201,
                         {"Location": location(req, f"/resource_providers/{p.uuid}/inventories/{rc}")})


@route(RP + "/inventories", "DELETE", "placement:resource_providers:inventories:delete",
       since=mv.DELETE_INVENTORIES)
def delete_inventories(req: Req, v):
    with db.transaction() as s:
        core.delete_inventories(s, req.path["uuid"])
    return empty()


@route(RP + "/inventories/{rc}", "GET", "placement:resource_providers:inventories:show")
def show_inventory(req: Req, v):
    rc = req.path["rc"]
    with db.session() as s:
        p = _rp(s, req)
        inv = core.inventories(s, p.id).get(rc)
    if inv is None:
        raise errors.NotFound(f"No inventory of class {rc} for {p.uuid}")
    return json_response(views.inventory(inv, p.generation))


@route(RP + "/inventories/{rc}", "PUT", "placement:resource_providers:inventories:update")
def set_inventory(req: Req, v):
    data = body(req, sch.SET_INVENTORY)
    with db.transaction() as s:
        inv, gen = core.set_inventory(s, req.path["uuid"], req.path["rc"], data["resource_provider_generation"],
                                      data, v >= mv.RESERVED_EQUALS_TOTAL)
    return json_response(views.inventory(inv, gen))


@route(RP + "/inventories/{rc}", "DELETE", "placement:resource_providers:inventories:delete")
def delete_inventory(req: Req, v):
    with db.transaction() as s:
        core.delete_inventory(s, req.path["uuid"], req.path["rc"])
    return empty()


# --- aggregates -------------------------------------------------------------------------------------


@route(RP + "/aggregates", "GET", "placement:resource_providers:aggregates:list", since=mv.AGGREGATES)
def list_aggregates(req: Req, v):
    with db.session() as s:
        p = _rp(s, req)
        aggs = core.aggregates(s, p.id)
    return json_response(views.aggregates(aggs, p.generation, v))


@route(RP + "/aggregates", "PUT", "placement:resource_providers:aggregates:update", since=mv.AGGREGATES)
def set_aggregates(req: Req, v):
    data = body(req, sch.pick(sch.SET_AGGREGATES, v))
    with_gen = v >= mv.AGGREGATES_GENERATION
    aggs = data["aggregates"] if with_gen else data
    with db.transaction() as s:
        aggs, gen = core.set_aggregates(s, req.path["uuid"], aggs,
                                        data["resource_provider_generation"] if with_gen else None, with_gen)
    return json_response(views.aggregates(aggs, gen, v))


# --- traits of a provider -----------------------------------------------------------------------------


@route(RP + "/traits", "GET", "placement:resource_providers:traits:list", since=mv.TRAITS)
def list_provider_traits(req: Req, v):
    with db.session() as s:
        p = _rp(s, req)
        names = core.provider_traits(s, p.id)
    return json_response(views.traits(names, p.generation))


@route(RP + "/traits", "PUT", "placement:resource_providers:traits:update", since=mv.TRAITS)
def set_provider_traits(req: Req, v):
    data = body(req, sch.SET_TRAITS)
    with db.transaction() as s:
        names, gen = core.set_provider_traits(s, req.path["uuid"], data["traits"],
                                              data["resource_provider_generation"])
    return json_response(views.traits(names, gen))


@route(RP + "/traits", "DELETE", "placement:resource_providers:traits:delete", since=mv.TRAITS)
def delete_provider_traits(req: Req, v):
    with db.transaction() as s:
        core.set_provider_traits(s, req.path["uuid"], [], None, check=False)
    return empty()


# --- usages and allocations of a provider ---------------------------------------------------------------


@route(RP + "/usages", "GET", "placement:resource_providers:usages")
def provider_usages(req: Req, v):
    with db.session() as s:
        p = _rp(s, req)
        usages = allocations.provider_usages(s, p.id)
    return json_response(views.provider_usages(usages, p.generation))


@route(RP + "/allocations", "GET", "placement:resource_providers:allocations:list")
def provider_allocations(req: Req, v):
    with db.session() as s:
        p = _rp(s, req)
        allocs = allocations.provider_allocations(s, p.id)
    return json_response(views.provider_allocations(allocs, p.generation))
