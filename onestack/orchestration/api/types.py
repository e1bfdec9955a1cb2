"""Template validation, resource types (list, schema, template) and template versions
(and their functions)."""

from __future__ import annotations

from onestack.common.http import Req, json_response
from onestack.orchestration import stacks
from onestack.orchestration.api import body, route


@route("/validate", ["POST"])
def validate(req: Req):
    return json_response(stacks.validate_template(req.ctx, body(req), req.query.get("show_nested", "").lower() == "true"))


@route("/resource_types", ["GET"])
def list_types(req: Req):
    return json_response({"resource_types": stacks.resource_types(req.ctx, req.query)})


@route("/resource_types/{type_name}", ["GET"])
def show_type(req: Req):
    return json_response(stacks.resource_type_schema(req.ctx, req.path["type_name"]))


@route("/resource_types/{type_name}/template", ["GET"])
def type_template(req: Req):
    return json_response(stacks.resource_type_template(req.ctx, req.path["type_name"],
                                                       req.query.get("template_type", "cfn")))


@route("/template_versions", ["GET"])
def versions(req: Req):
    return json_response({"template_versions": stacks.template_versions(req.ctx)})


@route("/template_versions/{version}/functions", ["GET"])
def functions(req: Req):
    cond = req.query.get("with_condition_func", "false").lower() == "true"
    return json_response({"template_functions": stacks.template_functions(req.ctx, req.path["version"], cond)})
