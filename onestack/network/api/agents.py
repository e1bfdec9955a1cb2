"""Agents and availability zones: ``openstack network agent list|show|set|delete``,
``openstack availability zone list --network``, and which agents host a network's
DHCP or a router (``network agent list --network|--router``).

Agent records are made by the agents' heartbeats (``agent_records.report``); an agent is
alive while its last heartbeat is younger than ``network.agent_down_time``. Only
admins see agents; to others the collection is empty and an agent is not found, as
Neutron's per-item policy filtering does.
"""

from __future__ import annotations

from onestack.common import db, errors
from onestack.common.http import Req, empty, json_response
from onestack.network import agent_records, core, ipam
from onestack.network.api import api, listing, schemas, views

UPDATABLE = ("admin_state_up", "description")


def _agent(s, req: Req, rule: str = "get_agent"):
    aid = req.path["id"].removesuffix(".json")
    row = core.find(s, "agent", aid)
    if row is None or not core.allowed(rule, req.ctx):
        raise errors.NotFound(f"Agent {aid} could not be found.", type="AgentNotFound")
    return row


@api.route("/v2.0/agents", ["GET"])
@api.route("/v2.0/agents.json", ["GET"])
def list_agents(req: Req):
    if not core.allowed("get_agent", req.ctx):
        return json_response({"agents": []})
    with db.session() as s:
        items = [views.agent(d) for d in agent_records.agents(s)]
    items = listing.sort_docs(req, listing.filter_docs(req, items))
    fields = listing.fields(req)
    if fields:
        items = [{k: v for k, v in d.items() if k in fields} for d in items]
    return json_response({"agents": items})


@api.route("/v2.0/agents/{id}", ["GET"])
def show_agent(req: Req):
    with db.session() as s:
        return json_response({"agent": views.agent(_agent(s, req).data, listing.fields(req))})


@api.route("/v2.0/agents/{id}", ["PUT"])
def update_agent(req: Req):
    body = req.json()
    agent = body.get("agent") if isinstance(body, dict) else None
    if not isinstance(agent, dict):
        raise errors.BadRequest("Resource body required: 'agent'.", type="HTTPBadRequest")
    bad = sorted(set(agent) - set(UPDATABLE))
    if bad:
        raise ipam.bad(f"Cannot update read-only attribute {bad[0]}")
    schemas.convert_booleans("agent", agent)
    if "description" in agent and agent["description"] is not None and (
            not isinstance(agent["description"], str) or len(agent["description"]) > 255):
        raise ipam.bad("description must be a string of at most 255 characters.")
    with db.transaction() as s:
        row = _agent(s, req, "update_agent")
        doc = core.save(s, row, dict(agent))
    agent_records.notify("update", {"id": doc["id"], "host": doc["host"]})
    return json_response({"agent": views.agent(doc)})


@api.route("/v2.0/agents/{id}", ["DELETE"])
def delete_agent(req: Req):
    with db.transaction() as s:
        row = _agent(s, req, "delete_agent")
        gone = {"id": row.id, "host": row.data["host"]}
        core.remove(s, row)
    agent_records.notify("delete", gone)
    return empty(204)


# -- who hosts what -----------------------------------------------------------------


def _hosted_by(s, agent_type: str) -> list[dict]:
    host = agent_records.hosting(s, agent_type)
    return [views.agent(d) for d in agent_records.agents(s) if d["agent_type"] == agent_type and d["host"] == host]


@api.route("/v2.0/networks/{id}/dhcp-agents", ["GET"])
def network_dhcp_agents(req: Req):
    core.authorize("get_dhcp-agents", req.ctx)
    with db.session() as s:
        net = core.get(s, req.ctx, "network", req.path["id"])
        serves = any(p.get("device_owner") == agent_records.DHCP_OWNER for p in core.docs(s, "port", network_id=net.id))
        return json_response({"agents": _hosted_by(s, "DHCP agent") if serves else []})


@api.route("/v2.0/routers/{id}/l3-agents", ["GET"])
def router_l3_agents(req: Req):
    core.authorize("get_l3-agents", req.ctx)
    with db.session() as s:
        r = core.get(s, req.ctx, "router", req.path["id"])
        hosted = r.data.get("admin_state_up", True)
        return json_response({"agents": _hosted_by(s, "L3 agent") if hosted else []})


@api.route("/v2.0/agents/{id}/dhcp-networks", ["GET"])
def agent_dhcp_networks(req: Req):
    core.authorize("get_dhcp-networks", req.ctx)
    with db.session() as s:
        a = _agent(s, req).data
        nets = []
        if a["agent_type"] == "DHCP agent":
            ids = {p["network_id"] for p in core.docs(s, "port", device_owner=agent_records.DHCP_OWNER)
                   if p.get("binding:host_id") == a["host"]}
            nets = [views.resource(req.ctx, "network", d) for d in core.docs(s, "network") if d["id"] in ids]
        return json_response({"networks": nets})


@api.route("/v2.0/agents/{id}/l3-routers", ["GET"])
def agent_l3_routers(req: Req):
    core.authorize("get_l3-routers", req.ctx)
    with db.session() as s:
        a = _agent(s, req).data
        routers = []
        if a["agent_type"] == "L3 agent" and agent_records.hosting(s, "L3 agent") == a["host"]:
            routers = [views.resource(req.ctx, "router", d) for d in core.docs(s, "router")
                       if d.get("admin_state_up", True)]
        return json_response({"routers": routers})


# -- availability zones ---------------------------------------------------------------


@api.route("/v2.0/availability_zones", ["GET"])
def list_availability_zones(req: Req):
    core.authorize("get_availability_zone", req.ctx)
    zones: dict[tuple[str, str], bool] = {}
    with db.session() as s:
        for d in agent_records.agents(s):
            resource = {"DHCP agent": "network", "L3 agent": "router"}.get(d["agent_type"])
            if resource is None or not d.get("availability_zone"):
                continue
            key = (d["availability_zone"], resource)
            up = agent_records.alive(d) and bool(d.get("admin_state_up", True))
            zones[key] = zones.get(key, False) or up
    items = [views.availability_zone(name, res, up) for (name, res), up in sorted(zones.items())]
    return json_response({"availability_zones": listing.filter_docs(req, items)})
