"""Server groups (``/os-server-groups``): affinity policies for the scheduler.

Before 2.64 a group has ``policies`` (a list of one) and ``metadata``; from
2.64 ``policy`` and ``rules`` (``max_server_per_host`` for anti-affinity).
2.13 shows ``project_id`` and ``user_id``; 2.15 adds the soft policies.
Members are written by server create; a group shows only members that exist.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from onestack.common import db, errors, validation
from onestack.common.http import Req, empty, json_response
from onestack.common.microversion import Version
from onestack.common.timeutils import utcnow
from onestack.compute import models as m
from onestack.compute import quotas
from onestack.compute.api import api, body_of, mv
from onestack.compute.api import helpers as h

V_OWNER = Version(2, 13)
V_SOFT = Version(2, 15)
V_POLICY = Version(2, 64)

HARD = ["anti-affinity", "affinity"]
SOFT = ["soft-anti-affinity", "soft-affinity"]

_NAME = {"type": "string", "minLength": 1, "maxLength": 255}


def _schema(v: Version) -> dict:
    names = HARD + (SOFT if v >= V_SOFT else [])
    if v >= V_POLICY:
        props = {"name": _NAME, "policy": {"type": "string", "enum": names},
                 "rules": {"type": "object", "properties": {
                     "max_server_per_host": {"type": ["integer", "string"], "pattern": "^[0-9]+$",
                                             "minimum": 1}},
                     "additionalProperties": False}}
        required = ["name", "policy"]
    else:
        props = {"name": _NAME, "policies": {"type": "array", "items": {"type": "string", "enum": names},
                                             "uniqueItems": True, "minItems": 1, "maxItems": 1}}
        required = ["name", "policies"]
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


_SCHEMAS = {k: _schema(k) for k in (Version(2, 1), V_SOFT, V_POLICY)}


def view(g: m.ServerGroup, members: list[str], v: Version) -> dict:
    out: dict = {"id": g.uuid, "name": g.name}
    if v >= V_POLICY:
        out["policy"] = g.policy
        out["rules"] = dict(g.rules or {})
    else:
        out["policies"] = [g.policy]
    out["members"] = members
    if v < V_POLICY:
        out["metadata"] = {}
    if v >= V_OWNER:
        out["project_id"] = g.project_id
        out["user_id"] = g.user_id
    return out


def _live_members(s, groups: list[m.ServerGroup]) -> dict[str, list[str]]:
    """Each group's members that are servers still (deleted ones drop out)."""
    wanted = {u for g in groups for u in (g.members or [])}
    alive = set()
    if wanted:
        alive = set(s.scalars(sa.select(m.Instance.uuid).where(m.Instance.uuid.in_(wanted),
                                                               m.Instance.deleted.is_(False))))
    return {g.uuid: [u for u in (g.members or []) if u in alive] for g in groups}


def _get(s, req: Req, action: str) -> m.ServerGroup:
    gid = req.path["group_id"]
    g = s.scalar(sa.select(m.ServerGroup).where(m.ServerGroup.uuid == gid))
    if g is None:
        raise errors.NotFound(f"Instance group {gid} could not be found.")
    fallback = "os_compute_api:servers:show" if action == "show" else "os_compute_api:servers:delete"
    h.authorize(f"os-server-groups:{action}", req.ctx, {"project_id": g.project_id}, fallback=fallback)
    return g


@api.route("/v2.1/os-server-groups", ["GET"])
def list_groups(req: Req):
    ctx = req.ctx
    h.authorize("os-server-groups:index", ctx, {"project_id": ctx.project_id},
                fallback="os_compute_api:servers:index")
    h.strict_query(req, {"all_projects", "limit", "offset"})
    offset, limit = h.offset_limit(req)
    with db.session() as s:
        q = sa.select(m.ServerGroup).order_by(m.ServerGroup.id)
        everyone = "all_projects" in req.query and h.allowed("os-server-groups:index:all_projects", ctx)
        if not everyone:
            q = q.where(m.ServerGroup.project_id == ctx.project_id)
        groups = list(s.scalars(q))[offset:offset + limit]
        members = _live_members(s, groups)
        v = mv(req)
        return json_response({"server_groups": [view(g, members[g.uuid], v) for g in groups]})


@api.route("/v2.1/os-server-groups", ["POST"])
def create_group(req: Req):
    ctx = req.ctx
    h.authorize("os-server-groups:create", ctx, {"project_id": ctx.project_id},
                fallback="os_compute_api:servers:create")
    v = mv(req)
    body = body_of(req, "server_group")
    validation.validate(_SCHEMAS[V_POLICY if v >= V_POLICY else V_SOFT if v >= V_SOFT else Version(2, 1)], body,
                        style=validation.NOVA)
    h.check_name(body["name"])
    if v >= V_POLICY:
        policy = body["policy"]
        rules = dict(body.get("rules") or {})
        if rules and policy != "anti-affinity":
            raise errors.BadRequest("Only anti-affinity policy supports 'max_server_per_host' rule.")
        if "max_server_per_host" in rules:
            rules["max_server_per_host"] = int(rules["max_server_per_host"])
            if rules["max_server_per_host"] < 1:
                raise errors.BadRequest("Invalid input for field/attribute max_server_per_host: it must be "
                                        "a positive integer.")
    else:
        policy, rules = body["policies"][0], {}
    with db.transaction() as s:
        quotas.check_server_groups(s, ctx.project_id)
        g = m.ServerGroup(uuid=str(uuid.uuid4()), name=body["name"], project_id=ctx.project_id,
                          user_id=ctx.user_id, policy=policy, rules=rules, members=[], created_at=utcnow())
        s.add(g)
        s.flush()
        out = view(g, [], v)
    return json_response({"server_group": out})


@api.route("/v2.1/os-server-groups/{group_id}", ["GET"])
def show_group(req: Req):
    with db.session() as s:
        g = _get(s, req, "show")
        return json_response({"server_group": view(g, _live_members(s, [g])[g.uuid], mv(req))})


@api.route("/v2.1/os-server-groups/{group_id}", ["DELETE"])
def delete_group(req: Req):
    with db.transaction() as s:
        g = _get(s, req, "delete")
        s.delete(g)
    return empty(204)
