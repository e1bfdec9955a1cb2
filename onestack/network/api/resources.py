"""Routes of the Networking v2.0 API: one generic set of CRUD routes for every
collection, plus router interfaces, tags, quotas, extensions and versions."""

from __future__ import annotations

import ipaddress

from onestack.common import db, errors
from onestack.common.http import Req, empty, json_response
from onestack.network import core, ipam
from onestack.network.api import api, listing, schemas, views

SINGULAR = {"networks": "network", "subnets": "subnet", "subnetpools": "subnetpool", "ports": "port",
            "routers": "router", "floatingips": "floatingip", "security-groups": "security_group",
            "security-group-rules": "security_group_rule", "rbac-policies": "rbac_policy"}
BODY_KEY = {k: v for k, v in SINGULAR.items()}
PLURAL_KEY = {"security-groups": "security_groups", "security-group-rules": "security_group_rules",
              "rbac-policies": "rbac_policies"}
UNTAGGED = ("rbac_policy",)  # Neutron's RBAC policies have no standard attributes (no tags)



def _kind(req: Req) -> tuple[str, str]:
    coll = req.path["collection"]
    if coll.endswith(".json"):
        coll = coll[:-5]
    if coll not in SINGULAR:
        raise errors.NotFound(f"The resource could not be found: {req.url.path}")
    return coll, SINGULAR[coll]


def _plural(coll: str) -> str:
    return PLURAL_KEY.get(coll, coll)


# --- versions and extensions -------------------------------------------------------


def _base(req: Req) -> str:
    return str(req.request.base_url).rstrip("/")


@api.route("/", ["GET"], auth=False)
def versions(req: Req):
    return json_response({"versions": [{"id": "v2.0", "status": "CURRENT",
                                        "links": [{"rel": "self", "href": f"{_base(req)}/v2.0/"}]}]})


@api.route("/v2.0", ["GET"], auth=False)
@api.route("/v2.0/", ["GET"], auth=False)
def v2(req: Req):
    res = []
    for coll, kind in SINGULAR.items():
        plural = _plural(coll)
        res.append({"name": kind, "collection": plural,
                    "links": [{"rel": "self", "href": f"{_base(req)}/v2.0/{coll}"}]})
    return json_response({"resources": res})


@api.route("/v2.0/extensions", ["GET"])
@api.route("/v2.0/extensions.json", ["GET"])
def list_extensions(req: Req):
    return json_response({"extensions": [views.extension(*e) for e in views.EXTENSIONS]})


@api.route("/v2.0/extensions/{alias}", ["GET"])
def show_extension(req: Req):
    for e in views.EXTENSIONS:
        if e[0] == req.path["alias"]:
            return json_response({"extension": views.extension(*e)})
    raise errors.NotFound(f"Extension with alias {req.path['alias']} does not exist", type="ExtensionNotFound")


# --- quotas ---------------------------------------------------------------------------


def _quota_project(req: Req, rule: str) -> str:
    pid = req.path["project_id"]
    core.authorize(rule, req.ctx, {"project_id": pid})
    return pid


@api.route("/v2.0/quotas", ["GET"])
def list_quotas(req: Req):
    core.authorize("admin_only", req.ctx)
    out = [{**core.quota_limits(p), "project_id": p, "tenant_id": p} for p in core.quota_projects()]
    return json_response({"quotas": out})


@api.route("/v2.0/quotas/{project_id}/default", ["GET"])
@api.route("/v2.0/quotas/{project_id}/default.json", ["GET"])
def default_quota(req: Req):
    _quota_project(req, "get_quota")
    return json_response({"quota": core.quota_defaults()})


@api.route("/v2.0/quotas/{project_id}/details", ["GET"])
@api.route("/v2.0/quotas/{project_id}/details.json", ["GET"])
def quota_details(req: Req):
    pid = _quota_project(req, "get_quota")
    limits = core.quota_limits(pid)
    with db.session() as s:
        out = {k: {"limit": v, "used": core.used(s, pid, k), "reserved": 0} for k, v in limits.items()}
    return json_response({"quota": out})


@api.route("/v2.0/quotas/{project_id}", ["GET"])
def show_quota(req: Req):
    pid = _quota_project(req, "get_quota")
    if pid.endswith(".json"):
        pid = pid[:-5]
    return json_response({"quota": core.quota_limits(pid)})


@api.route("/v2.0/quotas/{project_id}", ["PUT"])
def update_quota(req: Req):
    pid = _quota_project(req, "update_quota")
    body = req.json()
    quota = body.get("quota") if isinstance(body, dict) else None
    if not isinstance(quota, dict):
        raise ipam.bad("The request body must have a 'quota' object.")
    # clients send these flags along with the limits (Neutron's quota check options)
    quota = {k: v for k, v in quota.items() if k not in ("check_limit", "force")}
    for k, v in quota.items():
        if k not in core.State.settings.quotas:
            raise ipam.bad(f"Unrecognized attribute(s) '{k}'")
        try:
            iv = int(v)
        except (TypeError, ValueError):
            raise ipam.bad(f"'{v}' is not an integer") from None
        if iv < -1:
            raise ipam.bad(f"'{v}' should be greater than or equal to -1")
    core.set_quotas(pid, {k: int(v) for k, v in quota.items()})
    return json_response({"quota": core.quota_limits(pid)})


@api.route("/v2.0/quotas/{project_id}", ["DELETE"])
def delete_quota(req: Req):
    pid = _quota_project(req, "delete_quota")
    core.reset_quotas(pid)
    return empty(204)


# --- router interfaces ------------------------------------------------------------------


def _interface(req: Req, fn):
    body = req.json()
    with db.transaction() as s:
        router = core.get_own(s, req.ctx, "router", req.path["router_id"])
        out = fn(s, req.ctx, router, body)
    return json_response(out)


@api.route("/v2.0/routers/{router_id}/add_router_interface", ["PUT"])
def add_router_interface(req: Req):
    return _interface(req, core.add_router_interface)


@api.route("/v2.0/routers/{router_id}/remove_router_interface", ["PUT"])
def remove_router_interface(req: Req):
    return _interface(req, core.remove_router_interface)


# --- tags ----------------------------------------------------------------------------------


def _tagged(req: Req, s, write: bool = True):
    coll, kind = _kind(req)
    if kind in UNTAGGED:
        raise errors.NotFound(f"The resource could not be found: {req.url.path}")
    row = core.get_own(s, req.ctx, kind, req.path["id"]) if write else core.get(s, req.ctx, kind, req.path["id"])
    return row


def _check_tag(tag: str) -> str:
    if not isinstance(tag, str) or not tag or len(tag) > 255 or "," in tag:
        raise ipam.bad(f"'{tag}' is not a valid tag.")
    return tag


@api.route("/v2.0/{collection}/{id}/tags", ["GET"])
def get_tags(req: Req):
    with db.session() as s:
        return json_response({"tags": _tagged(req, s, False).data.get("tags", [])})


@api.route("/v2.0/{collection}/{id}/tags", ["PUT"])
def set_tags(req: Req):
    body = req.json()
    tags = body.get("tags") if isinstance(body, dict) else None
    if not isinstance(tags, list):
        raise ipam.bad("The body must have a list of 'tags'.")
    tags = list(dict.fromkeys(_check_tag(t) for t in tags))
    with db.transaction() as s:
        core.save(s, _tagged(req, s), {"tags": tags})
    return json_response({"tags": tags})


@api.route("/v2.0/{collection}/{id}/tags", ["DELETE"])
def clear_tags(req: Req):
    with db.transaction() as s:
        core.save(s, _tagged(req, s), {"tags": []})
    return empty(204)


@api.route("/v2.0/{collection}/{id}/tags/{tag}", ["GET"])
def check_tag(req: Req):
    with db.session() as s:
        if req.path["tag"] not in _tagged(req, s, False).data.get("tags", []):
            raise errors.NotFound(f"Tag {req.path['tag']} could not be found.", type="TagNotFound")
    return empty(204)


@api.route("/v2.0/{collection}/{id}/tags/{tag}", ["PUT"])
def add_tag(req: Req):
    tag = _check_tag(req.path["tag"])
    with db.transaction() as s:
        row = _tagged(req, s)
        if tag not in row.data.get("tags", []):
            core.save(s, row, {"tags": row.data.get("tags", []) + [tag]})
    return empty(201)


@api.route("/v2.0/{collection}/{id}/tags/{tag}", ["DELETE"])
def remove_tag(req: Req):
    with db.transaction() as s:
        row = _tagged(req, s)
        if req.path["tag"] not in row.data.get("tags", []):
            raise errors.NotFound(f"Tag {req.path['tag']} could not be found.", type="TagNotFound")
        core.save(s, row, {"tags": [t for t in row.data["tags"] if t != req.path["tag"]]})
    return empty(204)


# --- the collections ------------------------------------------------------------------------

READ_ONLY = {"id", "created_at", "updated_at", "revision_number", "status", "tenant_id", "project_id"}


def _body(req: Req, kind: str) -> dict | list:
    data = req.json()
    if not isinstance(data, dict):
        raise ipam.bad("The request body must be a JSON object.")
    plural = _plural(req.path["collection"].removesuffix(".json"))
    if kind in data:
        if not isinstance(data[kind], dict):
            raise ipam.bad(f"'{kind}' must be an object.")
        return data[kind]
    if plural in data and isinstance(data[plural], list):
        return data[plural]
    raise errors.BadRequest(f"Resource body required: '{kind}'.", type="HTTPBadRequest")


@api.route("/v2.0/{collection}", ["GET"])
def list_resources(req: Req):
    coll, kind = _kind(req)
    ctx = req.ctx
    if kind == "security_group" and ctx.project_id:
        core.quota_limits(ctx.project_id)
        with db.transaction() as s:
            core.ensure_default_sg(s, ctx.project_id)
    with db.session() as s:
        items = [core.expand(s, kind, d, ctx) for d in core.docs(s, kind) if core.visible(s, ctx, kind, d)]
        items = [views.resource(ctx, kind, d) for d in items]
    items = listing.sort_docs(req, listing.filter_docs(req, items))
    page, links = listing.page(req, items)
    fields = listing.fields(req)
    if fields:
        page = [{k: v for k, v in d.items() if k in fields} for d in page]
    out = {_plural(coll): page}
    if links:
        out[f"{_plural(coll)}_links"] = links
    return json_response(out)


@api.route("/v2.0/{collection}", ["POST"])
def create_resource(req: Req):
    coll, kind = _kind(req)
    body = _body(req, kind)
    bulk = isinstance(body, list)
    items = body if bulk else [body]
    out = []
    for item in items:  # (the limits are asked of identity before the write transaction)
        pid = (item.get("project_id") or item.get("tenant_id") or req.ctx.project_id) if isinstance(item, dict) else None
        if isinstance(pid, str):
            core.quota_limits(pid)
    with db.transaction() as s:
        for item in items:
            if not isinstance(item, dict):
                raise ipam.bad(f"'{kind}' must be an object.")
            schemas.check(kind, item, create=True)
            doc = core.CREATE[kind](s, req.ctx, dict(item))
            out.append(views.resource(req.ctx, kind, core.expand(s, kind, doc, req.ctx)))
    if bulk:
        return json_response({_plural(coll): out}, 201)
    return json_response({kind: out[0]}, 201)


@api.route("/v2.0/{collection}/{id}", ["GET"])
def show_resource(req: Req):
    coll, kind = _kind(req)
    rid = req.path["id"].removesuffix(".json")
    with db.session() as s:
        doc = core.expand(s, kind, core.get(s, req.ctx, kind, rid).data, req.ctx)
        return json_response({kind: views.resource(req.ctx, kind, doc, listing.fields(req))})


@api.route("/v2.0/{collection}/{id}", ["PUT"])
def update_resource(req: Req):
    coll, kind = _kind(req)
    if kind not in core.UPDATE:
        raise errors.MethodNotAllowed(f"Updating a {kind} is not supported.")
    body = _body(req, kind)
    if isinstance(body, list):
        raise ipam.bad(f"'{kind}' must be an object.")
    schemas.check(kind, body, create=False)
    for k in READ_ONLY & set(body):
        if k in ("id", "tenant_id", "project_id"):
            raise ipam.bad(f"Cannot update read-only attribute {k}")
    with db.transaction() as s:
        row = core.get_own(s, req.ctx, kind, req.path["id"])
        doc = core.UPDATE[kind](s, req.ctx, row, body)
        out = views.resource(req.ctx, kind, core.expand(s, kind, doc, req.ctx))
    return json_response({kind: out})


@api.route("/v2.0/{collection}/{id}", ["DELETE"])
def delete_resource(req: Req):
    coll, kind = _kind(req)
    with db.transaction() as s:
        row = core.get_own(s, req.ctx, kind, req.path["id"], "delete")
        core.DELETE[kind](s, req.ctx, row)
    return empty(204)


_ = ipaddress  # kept for filters on addresses
