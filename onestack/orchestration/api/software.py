"""Software configs and deployments."""

from __future__ import annotations

from onestack.common.http import Req, empty, json_response
from onestack.orchestration import software
from onestack.orchestration.api import body, route, views


@route("/software_configs", ["POST"])
def create_config(req: Req):
    return json_response({"software_config": views.software_config(software.create_config(req.ctx, body(req)))})


@route("/software_configs", ["GET"])
def list_configs(req: Req):
    return json_response({"software_configs": [
        {k: v for k, v in views.software_config(c).items() if k in ("id", "name", "group", "creation_time")}
        for c in software.list_configs(req.ctx, req.query)]})


@route("/software_configs/{config_id}", ["GET"])
def show_config(req: Req):
    return json_response({"software_config": views.software_config(
        software.get_config(req.ctx, req.path["config_id"]))})


@route("/software_configs/{config_id}", ["DELETE"])
def delete_config(req: Req):
    software.delete_config(req.ctx, req.path["config_id"])
    return empty(204)


@route("/software_deployments", ["POST"])
def create_deployment(req: Req):
    d = software.create_deployment(req.ctx, body(req))
    return json_response({"software_deployment": views.software_deployment(d)})


@route("/software_deployments", ["GET"])
def list_deployments(req: Req):
    return json_response({"software_deployments": [
        views.software_deployment(d) for d in software.list_deployments(req.ctx, req.query)]})


@route("/software_deployments/metadata/{server_id}", ["GET"])
def server_metadata(req: Req):
    return json_response({"metadata": software.server_metadata(req.ctx, req.path["server_id"])})


@route("/software_deployments/{deployment_id}", ["GET"])
def show_deployment(req: Req):
    return json_response({"software_deployment": views.software_deployment(
        software.get_deployment(req.ctx, req.path["deployment_id"]))})


@route("/software_deployments/{deployment_id}", ["PUT"])
def update_deployment(req: Req):
    d = software.update_deployment(req.ctx, req.path["deployment_id"], body(req))
    return json_response({"software_deployment": views.software_deployment(d)})


@route("/software_deployments/{deployment_id}", ["DELETE"])
def delete_deployment(req: Req):
    software.delete_deployment(req.ctx, req.path["deployment_id"])
    return empty(204)
