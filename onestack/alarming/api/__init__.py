"""The Alarming v2 API (Aodh): routes here, wire format in views.py, logic in the domain.

Errors are Aodh's ``{"error_message": {"faultcode", "faultstring", "debuginfo"}}``.
"""

from __future__ import annotations

from starlette.requests import Request

from onestack.alarming import alarms
from onestack.alarming.api import views
from onestack.common import auth, errors, openapi
from onestack.common.http import Api, Req, empty, json_response, media_type


def check_body(request: Request, body: bytes) -> None:
    kind = media_type(request)
    if body and kind and kind not in ("application/json", "text/plain"):
        raise errors.UnsupportedMediaType(f"Unsupported Content-Type {kind}: the API takes JSON.")


api = Api("alarming", views.error, auth.authenticate, check_body=check_body)


def _sort(req: Req) -> list[str]:
    return req.query.getlist("sort")


def _q(req: Req) -> list[tuple[str, str, str, str | None]]:
    """q.field/q.op/q.value(/q.type) triples, in order (op defaults to eq)."""
    fields, ops = req.query.getlist("q.field"), req.query.getlist("q.op")
    values, types = req.query.getlist("q.value"), req.query.getlist("q.type")
    if len(values) != len(fields):
        raise errors.BadRequest("Each q.field needs its q.value.")
    if ops and len(ops) != len(fields):
        raise errors.BadRequest("Each q.field needs its q.op (or give none: eq).")
    return [(f, ops[i] if ops else "eq", values[i], types[i] if i < len(types) else None)
            for i, f in enumerate(fields)]


@api.route("/", ["GET"], auth=False)
def versions(req: Req):
    root = f"{req.url.scheme}://{req.url.netloc}{req.request.scope.get('root_path', '')}"
    return json_response({"versions": {"values": [{
        "id": "v2", "status": "stable", "updated": "2013-02-13T00:00:00Z",
        "links": [{"href": root + "/v2", "rel": "self"},
                  {"href": "https://docs.openstack.org/", "rel": "describedby", "type": "text/html"}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.telemetry-v2+json"},
                        {"base": "application/xml", "type": "application/vnd.openstack.telemetry-v2+xml"}],
    }]}})


@api.route("/v2/alarms", ["GET"])
def list_alarms(req: Req):
    rows = alarms.list_alarms(req.ctx, _q(req), _sort(req), req.query.get("limit"), req.query.get("marker"))
    return json_response([views.alarm(a) for a in rows])


@api.route("/v2/alarms", ["POST"])
def create_alarm(req: Req):
    a = alarms.create(req.ctx, req.json())
    location = f"{req.url.scheme}://{req.url.netloc}{req.request.scope.get('root_path', '')}/v2/alarms/" \
               f"{a['alarm_id']}"
    return json_response(views.alarm(a), 201, {"Location": location})


@api.route("/v2/alarms/{alarm_id}", ["GET"])
def show_alarm(req: Req):
    return json_response(views.alarm(alarms.get(req.ctx, req.path["alarm_id"])))


@api.route("/v2/alarms/{alarm_id}", ["PUT"])
def update_alarm(req: Req):
    return json_response(views.alarm(alarms.update(req.ctx, req.path["alarm_id"], req.json())))


@api.route("/v2/alarms/{alarm_id}", ["DELETE"])
def delete_alarm(req: Req):
    alarms.delete(req.ctx, req.path["alarm_id"])
    return empty(204)


@api.route("/v2/alarms/{alarm_id}/state", ["GET"])
def get_state(req: Req):
    return json_response(alarms.get_state(req.ctx, req.path["alarm_id"]))


@api.route("/v2/alarms/{alarm_id}/state", ["PUT"])
def set_state(req: Req):
    return json_response(alarms.set_state(req.ctx, req.path["alarm_id"], req.json()))


@api.route("/v2/alarms/{alarm_id}/history", ["GET"])
def history(req: Req):
    rows = alarms.history(req.ctx, req.path["alarm_id"], _sort(req), req.query.get("limit"),
                          req.query.get("marker"))
    return json_response([views.change(c) for c in rows])


def _optional_json(req: Req):
    return req.json() if req.body.strip() else {}


@api.route("/v2/query/alarms", ["POST"])
def query_alarms(req: Req):
    return json_response([views.alarm(a) for a in alarms.query_alarms(req.ctx, _optional_json(req))])


@api.route("/v2/query/alarms/history", ["POST"])
def query_history(req: Req):
    return json_response([views.change(c) for c in alarms.query_history(req.ctx, _optional_json(req))])


CAPABILITIES = {
    "api": {"alarms:query:simple": True, "alarms:query:complex": True,
            "alarms:history:query:simple": True, "alarms:history:query:complex": True},
    "alarm_storage": {"storage:production_ready": True},
}


@api.route("/v2/capabilities", ["GET"])
@api.route("/v2/capabilities/", ["GET"])
def capabilities(req: Req):
    return json_response(CAPABILITIES)


@api.route("/v2/metrics", ["GET"])
def metrics(req: Req):
    # Aodh's evaluation-result counters, off by default there (enable_evaluation_results_metrics)
    raise errors.Forbidden("metrics endpoint is disabled")


@api.route("/v2/quotas", ["GET"])
def get_quotas(req: Req):
    return json_response(alarms.get_quotas(req.ctx, req.query.get("project_id")))


@api.route("/v2/quotas", ["POST"])
def set_quotas(req: Req):
    return json_response(alarms.set_quotas(req.ctx, req.json()), 201)


@api.route("/v2/quotas", ["DELETE"])
def delete_quotas(req: Req):
    alarms.delete_quotas(req.ctx, req.query.get("project_id"))
    return empty(204)


def build():
    openapi.serve(api, "Alarming", "2.0")
    return api.asgi()
