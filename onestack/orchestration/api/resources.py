"""A stack's resources (list, show, metadata, signal, mark unhealthy), events and outputs."""

from __future__ import annotations

from onestack.common.http import Req, json_response
from onestack.orchestration import stacks
from onestack.orchestration.api import base_url, route, views
from onestack.orchestration.api.stacks import stack_of

S = "/stacks/{name}/{stack_id}"


@route(S + "/resources", ["GET"])
def list_resources(req: Req):
    row = stack_of(req, "resource:index")
    base = base_url(req)
    detail = req.query.get("with_detail", "false").lower() == "true"
    out = []
    for st, r, required_by in stacks.resources(req.ctx, row, req.query):
        attrs = stacks.resource_attributes(req.ctx, st, r) if detail else None
        out.append(views.resource(base, st, r, required_by, nested=stacks.nested_stack(r),
                                  attributes=None, with_detail=detail) | ({"attributes": attrs} if detail else {}))
    return json_response({"resources": out})


@route(S + "/resources/{resource}", ["GET"])
def show_resource(req: Req):
    row = stack_of(req, "resource:show")
    r, required_by = stacks.resource(req.ctx, row, req.path["resource"])
    attrs = stacks.resource_attributes(req.ctx, row, r, req.query.getlist("with_attr"))
    return json_response({"resource": views.resource(base_url(req), row, r, required_by,
                                                     nested=stacks.nested_stack(r), attributes=attrs)})


@route(S + "/resources/{resource}", ["PATCH"])
def mark_unhealthy(req: Req):
    row = stack_of(req, "resource:mark_unhealthy")
    stacks.mark_unhealthy(req.ctx, row, req.path["resource"], req.json())
    return json_response(None, 200)


@route(S + "/resources/{resource}/metadata", ["GET"])
def metadata(req: Req):
    row = stack_of(req, "resource:metadata")
    r, _ = stacks.resource(req.ctx, row, req.path["resource"], "resource:metadata")
    return json_response({"metadata": r.metadata_ or {}})


@route(S + "/resources/{resource}/signal", ["POST"])
def signal(req: Req):
    row = stack_of(req, "resource:signal")
    details = req.json() if req.body.strip() else None
    stacks.signal(req.ctx, row, req.path["resource"], details)
    return json_response(None, 200)


@route(S + "/events", ["GET"])
def stack_events(req: Req):
    row = stack_of(req, "events:index")
    base = base_url(req)
    return json_response({"events": [views.event(base, row, e)
                                     for e in stacks.list_events(req.ctx, row, None, req.query)]})


@route(S + "/resources/{resource}/events", ["GET"])
def resource_events(req: Req):
    row = stack_of(req, "events:index")
    base = base_url(req)
    rows = stacks.list_events(req.ctx, row, req.path["resource"], req.query)
    return json_response({"events": [views.event(base, row, e) for e in rows]})


@route(S + "/resources/{resource}/events/{event_id}", ["GET"])
def show_event(req: Req):
    row = stack_of(req, "events:index")
    e = stacks.event(req.ctx, row, req.path["resource"], req.path["event_id"])
    return json_response({"event": views.event(base_url(req), row, e, detail=True)})


@route(S + "/outputs", ["GET"])
def list_outputs(req: Req):
    row = stack_of(req)
    return json_response({"outputs": [{"output_key": o["output_key"], "description": o.get("description")}
                                      for o in stacks.outputs(req.ctx, row)]})


@route(S + "/outputs/{key}", ["GET"])
def show_output(req: Req):
    row = stack_of(req)
    return json_response({"output": stacks.output(req.ctx, row, req.path["key"])})
