"""Stacks: create, list, show (302 by name), update (PUT, PATCH), delete, preview,
actions, abandon, and the template/environment/files a stack was made from."""

from __future__ import annotations

from urllib.parse import quote

from onestack.common import errors
from onestack.common.http import Req, empty, json_response
from onestack.common.timeutils import iso
from onestack.orchestration import stacks
from onestack.orchestration.api import Redirect, base_url, body, route, views

# /stacks/{name}/<word>...: the sub-paths a name lookup redirects to, under the stack's id
LOOKUP_WORDS = {"resources", "events", "template", "environment", "files", "outputs", "abandon",
                "snapshots", "actions", "preview", "export"}


def redirect_to(req: Req, name: str, rest: str = "", show_deleted: bool = False) -> Redirect:
    row = stacks.find(req.ctx, name, show_deleted=show_deleted)
    stacks.policies.authorize("stacks:show", req.ctx, row.project_id)
    url = views.stack_url(base_url(req), row) + (f"/{rest}" if rest else "")
    q = req.request.url.query
    return Redirect(url + (f"?{q}" if q else ""))


def stack_of(req: Req, rule: str = "stacks:show"):
    name, sid = req.path["name"], req.path["stack_id"]
    if sid in LOOKUP_WORDS:
        raise redirect_to(req, name, sid)
    return stacks.get(req.ctx, name, sid, rule)


@route("/stacks", ["GET"])
def list_stacks(req: Req):
    rows, count = stacks.list_stacks(req.ctx, req.query)
    base = base_url(req)
    admin = req.ctx.is_admin
    out: dict = {"stacks": [views.stack_summary(base, r, include_project=admin) for r in rows]}
    limit = req.query.get("limit")
    if limit and limit.isdigit() and int(limit) == len(rows) and rows:
        q = [(k, v) for k, v in req.query.multi_items() if k != "marker"] + [("marker", rows[-1].id)]
        out["links"] = [{"rel": "next", "href": f"{base}/stacks?" + "&".join(
            f"{quote(k)}={quote(str(v))}" for k, v in q)}]
    if count is not None:
        out["count"] = count
    return json_response(out)


@route("/stacks/detail", ["GET"])
def list_detail(req: Req):
    rows, _ = stacks.list_stacks(req.ctx, req.query)
    base = base_url(req)
    return json_response({"stacks": [views.stack_detail(base, r, stacks.parameters_view(r),
                                                        stacks.outputs(req.ctx, r)) for r in rows]})


@route("/stacks", ["POST"])
def create(req: Req):
    row = stacks.create(req.ctx, body(req))
    base = base_url(req)
    return json_response({"stack": {"id": row.id, "links": views.stack_links(base, row)}}, 201,
                         {"Location": views.stack_url(base, row)})


@route("/stacks/preview", ["POST"])
def preview(req: Req):
    out = stacks.preview(req.ctx, body(req))
    out["creation_time"] = iso(out["creation_time"])
    return json_response({"stack": out})


@route("/stacks/{name}", ["GET", "DELETE", "PUT", "PATCH", "POST"])
def by_name(req: Req):
    if req.method == "POST":
        raise errors.MethodNotAllowed(f"The method POST is not allowed for {req.url.path}.")
    raise redirect_to(req, req.path["name"], show_deleted=req.method == "GET")


@route("/stacks/{name}/{stack_id}", ["GET"])
def show(req: Req):
    row = stack_of(req)
    with_outputs = req.query.get("resolve_outputs", "true").lower() != "false"
    outputs = stacks.outputs(req.ctx, row) if with_outputs else None
    return json_response({"stack": views.stack_detail(base_url(req), row, stacks.parameters_view(row), outputs)})


@route("/stacks/{name}/{stack_id}", ["PUT", "PATCH"])
def update(req: Req):
    row = stack_of(req, "stacks:update")
    stacks.update(req.ctx, row, body(req), patch=req.method == "PATCH")
    return empty(202)


@route("/stacks/{name}/{stack_id}/preview", ["PUT", "PATCH"])
def preview_update(req: Req):
    row = stack_of(req, "stacks:update")
    changes = stacks.preview_update(req.ctx, row, body(req), patch=req.method == "PATCH")
    return json_response({"resource_changes": changes})


@route("/stacks/{name}/{stack_id}", ["DELETE"])
def delete(req: Req):
    row = stack_of(req, "stacks:delete")
    stacks.delete(req.ctx, row)
    return empty(204)


@route("/stacks/{name}/{stack_id}/actions", ["POST"])
def action(req: Req):
    row = stack_of(req, "stacks:action")
    stacks.stack_action(req.ctx, row, body(req))
    return empty(200)


@route("/stacks/{name}/{stack_id}/template", ["GET"])
def template(req: Req):
    return json_response(stack_of(req, "stacks:template").template)


@route("/stacks/{name}/{stack_id}/environment", ["GET"])
def environment(req: Req):
    env = dict(stack_of(req, "stacks:template").environment or {})
    for key in ("parameters", "parameter_defaults", "resource_registry", "event_sinks"):
        env.setdefault(key, {} if key != "event_sinks" else [])
    return json_response(env)


@route("/stacks/{name}/{stack_id}/files", ["GET"])
def files(req: Req):
    return json_response(stack_of(req, "stacks:template").files or {})
