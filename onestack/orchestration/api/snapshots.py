"""A stack's snapshots (create, list, show, delete, restore), export and abandon."""

from __future__ import annotations

from onestack.common.http import Req, empty, json_response
from onestack.orchestration import snapshots
from onestack.orchestration.api import body, route
from onestack.orchestration.api.stacks import stack_of

S = "/stacks/{name}/{stack_id}"


@route(S + "/snapshots", ["POST"])
def create_snapshot(req: Req):
    row = stack_of(req, "stacks:snapshot")
    return json_response(snapshots.view(snapshots.create_snapshot(req.ctx, row, body(req))))


@route(S + "/snapshots", ["GET"])
def list_snapshots(req: Req):
    row = stack_of(req, "stacks:list_snapshots")
    return json_response({"snapshots": [snapshots.view(s) for s in snapshots.list_snapshots(req.ctx, row)]})


@route(S + "/snapshots/{snapshot_id}", ["GET"])
def show_snapshot(req: Req):
    row = stack_of(req, "stacks:show_snapshot")
    return json_response({"snapshot": snapshots.view(snapshots.get_snapshot(req.ctx, row,
                                                                            req.path["snapshot_id"]))})


@route(S + "/snapshots/{snapshot_id}", ["DELETE"])
def delete_snapshot(req: Req):
    row = stack_of(req, "stacks:delete_snapshot")
    snapshots.delete_snapshot(req.ctx, row, req.path["snapshot_id"])
    return empty(204)


@route(S + "/snapshots/{snapshot_id}/restore", ["POST"])
def restore_snapshot(req: Req):
    row = stack_of(req, "stacks:restore_snapshot")
    snapshots.restore(req.ctx, row, req.path["snapshot_id"])
    return empty(202)


@route(S + "/export", ["GET"])
def export(req: Req):
    return json_response(snapshots.export(req.ctx, stack_of(req, "stacks:export")))


@route(S + "/abandon", ["DELETE"])
def abandon(req: Req):
    return json_response(snapshots.abandon(req.ctx, stack_of(req, "stacks:abandon")))
