"""``/servers/{id}/os-interface``: a server's network interfaces, listed, shown,
hot-plugged (POST) and unplugged (DELETE).

As Nova does, they are read from the network service with the caller's token: the
ports whose device is the server (Tempest finds the port to give a floating IP this
way). The tag (2.70) is the one the server was booted or the port attached with (2.49).
POST takes a ``port_id``, or a ``net_id`` (with at most one fixed IP), or neither (the
project's only network) and answers 200 with the attached port once the compute agent
plugged it; DELETE answers 202 and the agent unplugs it (onestack.compute.interfaces).
"""

from __future__ import annotations

from onestack.common import db, errors, validation
from onestack.common.http import Req, empty, json_response
from onestack.common.microversion import Version
from onestack.compute import clients, instances, interfaces
from onestack.compute.api import api, mv
from onestack.compute.api.helpers import authorize
from onestack.compute.schemas import interfaces as schemas


def view(port: dict, v: Version, tag: str | None) -> dict:
    out = {"net_id": port["network_id"], "port_id": port["id"], "mac_addr": port["mac_address"],
           "port_state": port.get("status"), "fixed_ips": port.get("fixed_ips")}
    if v >= Version(2, 70):
        out["tag"] = tag
    return out


def _server(req: Req, rule: str) -> tuple[str, dict[str, str | None]]:
    """The server's id and its ports' boot-time tags, once the caller may see it."""
    with db.session() as s:
        inst = instances.get(s, req.ctx, req.path["server_id"])
        authorize(f"os-attach-interfaces:{rule}", req.ctx, {"project_id": inst.project_id},
                  fallback="os_compute_api:servers:show")
        return inst.uuid, {v["port_id"]: v.get("tag") for v in inst.network_info or []}


@api.route("/v2.1/servers/{server_id}/os-interface", ["GET"])
def interfaces_index(req: Req):
    uuid, tags = _server(req, "list")
    ports = clients.get().network.get("/v2.0/ports", params={"device_id": uuid},
                                      token=req.ctx.auth_token)["ports"]
    return json_response({"interfaceAttachments": [view(p, mv(req), tags.get(p["id"])) for p in ports]})


@api.route("/v2.1/servers/{server_id}/os-interface/{port_id}", ["GET"])
def interface_show(req: Req):
    uuid, tags = _server(req, "show")
    port_id = req.path["port_id"]
    try:
        port = clients.get().network.get(f"/v2.0/ports/{port_id}", token=req.ctx.auth_token)["port"]
    except errors.NotFound:
        raise errors.NotFound(f"Port {port_id} could not be found.") from None
    if port.get("device_id") != uuid:
        raise errors.NotFound(f"Instance {uuid} does not have a port with id {port_id}")
    return json_response({"interfaceAttachment": view(port, mv(req), tags.get(port_id))})


@api.route("/v2.1/servers/{server_id}/os-interface", ["POST"])
def interface_create(req: Req):
    v = mv(req)
    body = req.json() if req.body.strip() else {}  # no body: as {} (the project's only network)
    att = validation.validate(validation.variant(schemas.CREATE, v), body,
                              style=validation.NOVA).get("interfaceAttachment") or {}
    tag = att.get("tag")
    port = interfaces.attach(req.ctx, req.path["server_id"], req.request_id, net_id=att.get("net_id"),
                             port_id=att.get("port_id"), fixed_ip=(att.get("fixed_ips") or [{}])[0].get("ip_address"),
                             tag=tag)
    return json_response({"interfaceAttachment": view(port, v, tag)})


@api.route("/v2.1/servers/{server_id}/os-interface/{port_id}", ["DELETE"])
def interface_delete(req: Req):
    interfaces.detach(req.ctx, req.path["server_id"], req.path["port_id"], req.request_id)
    return empty(202)
