"""Servers: create, list, show, update, delete; their metadata, tags, addresses and actions log."""

from __future__ import annotations

import sqlalchemy as sa

from onestack.common import booleans, db, errors, pagination, validation
from onestack.common.http import Req, empty, json_response
from onestack.common.microversion import Version
from onestack.common.timeutils import utcnow
from onestack.compute import actions, build, instances, policies, quotas, settings, states
from onestack.compute import models as m
from onestack.compute.api import api, mv, views
from onestack.compute.schemas import servers as schemas


def _admin(ctx) -> bool:
    return policies.allowed("extended_server_attributes", ctx)


def _host_status(s, inst: m.Instance, known: dict[str, str]) -> str:
    if not inst.host:
        return ""
    if inst.host not in known:
        known[inst.host] = _service_status(s.scalar(sa.select(m.Service).where(
            m.Service.host == inst.host, m.Service.binary == "nova-compute")))
    return known[inst.host]


def _host_statuses(s, rows: list[m.Instance]) -> dict[str, str]:
    """The host status of every host of a page, in one query (a page spans many hosts)."""
    hosts = {r.host for r in rows if r.host}
    out = dict.fromkeys(hosts, "UNKNOWN")
    if hosts:  # (the columns only: a page may span a thousand hosts)
        for svc in s.execute(sa.select(m.Service.host, m.Service.forced_down, m.Service.disabled,
                                       m.Service.last_seen_up).where(m.Service.host.in_(hosts),
                                                                     m.Service.binary == "nova-compute")):
            out[svc.host] = _service_status(svc)
    return out


def _service_status(svc) -> str:
    if svc is None:
        return "UNKNOWN"
    if svc.forced_down:
        return "DOWN"
    seen = svc.last_seen_up
    if seen is None or (utcnow() - seen).total_seconds() > settings.current.service_down_time:
        return "UNKNOWN"
    return "MAINTENANCE" if svc.disabled else "UP"


def server_view(req: Req, s, inst: m.Instance, *, groups: bool = False, minimal: bool = False,
                cache: dict | None = None) -> dict:
    """``cache``: the request's answers (version, policy, host statuses), kept across a page."""
    if cache is None or "v" not in cache:
        cache = {} if cache is None else cache
        cache.update(v=mv(req), base=views.base_url(req), admin=_admin(req.ctx),
                     host_status=policies.allowed("servers:show:host_status", req.ctx))
        cache.setdefault("hosts", {})
    v = cache["v"]
    hs = _host_status(s, inst, cache["hosts"]) if v >= Version(2, 16) and cache["host_status"] else None
    grp = None
    if groups and v >= Version(2, 71):
        grp = [inst.server_group] if inst.server_group else []
    return views.server(inst, v, cache["base"], admin=cache["admin"], host_status=hs, groups=grp,
                        minimal=minimal)


def _list(req: Req, detail: bool):
    ctx = req.ctx
    policies.authorize("servers:detail" if detail else "servers:index", ctx)
    q = req.query
    with db.session() as s:
        rows, more, limit = instances.list_servers(s, ctx, q, mv(req), detail)
        base = views.base_url(req)
        if detail:
            cache = {"hosts": _host_statuses(s, rows)}
            items = [server_view(req, s, r, cache=cache) for r in rows]
        else:
            items = [views.summary(r, base) for r in rows]
    out = {"servers": items}
    if more and rows:
        url = f"{base}/v2.1/servers" + ("/detail" if detail else "")
        # every parameter kept, repeated ones (sort_key, sort_dir, status) too
        out["servers_links"] = [{"rel": "next", "href": pagination.next_link(url, q, rows[-1].uuid, limit)}]
    return json_response(out)


@api.route("/v2.1/servers", ["GET"])
def list_servers(req: Req):
    return _list(req, detail=False)


@api.route("/v2.1/servers/detail", ["GET"])
def list_servers_detail(req: Req):
    return _list(req, detail=True)


@api.route("/v2.1/servers/{server_id}", ["GET"])
def show_server(req: Req):
    policies.authorize("servers:show", req.ctx)
    with db.session() as s:
        inst = instances.get(s, req.ctx, req.path["server_id"])
        return json_response({"server": server_view(req, s, inst, groups=True)})


@api.route("/v2.1/servers", ["POST"])
def create_server(req: Req):
    ctx, v = req.ctx, mv(req)
    policies.authorize("servers:create", ctx)
    data = validation.validate(schemas.create_schema(v), req.json(), style=validation.NOVA)
    body = data["server"]
    hints = data.get("os:scheduler_hints") or data.get("OS-SCH-HNT:scheduler_hints") or {}
    spec = build.validate(ctx, body, hints, v)
    quotas.prefetch(ctx.project_id)  # (identity is asked before the write transaction)
    with db.transaction() as s:
        created = instances.create_records(s, ctx, spec, req.request_id)
        uuids = [i.uuid for i in created]
        reservation = created[0].reservation_id
        first = created[0]
        base = views.base_url(req)
        out = {"id": first.uuid, "links": views.links(base, "servers", first.uuid),
               "OS-DCF:diskConfig": "MANUAL"}
        if spec.networks != "none" or v < Version(2, 37):
            out["security_groups"] = [{"name": n} for n in spec.security_groups]
        if spec.admin_pass is not None:
            out["adminPass"] = spec.admin_pass
    if any(b.get("destination_type") == "volume" for b in spec.block_device_mapping):
        _volumes_for(req, uuids[0], spec)
    instances.schedule(uuids, spec, req.request_id)
    if booleans.to_bool(body.get("return_reservation_id", False)):
        return json_response({"reservation_id": reservation}, 202)
    return json_response({"server": out}, 202,
                         headers={"Location": f"{base}/v2.1/servers/{first.uuid}"})


def _volumes_for(req: Req, uuid: str, spec) -> None:
    """Volumes made (or reserved) for a server booting with volume mappings, recorded on its
    row; if the volume service refuses, the server is gone again and the refusal is the answer."""
    try:
        bdms = build.create_volumes(req.ctx, uuid, spec.block_device_mapping)
    except Exception:
        with db.transaction() as s:
            inst = s.get(m.Instance, uuid)
            if inst is not None and not inst.deleted:
                instances.mark_deleted(s, inst)
        raise
    with db.transaction() as s:
        inst = s.get(m.Instance, uuid)
        inst.block_device_mapping = bdms
    spec.block_device_mapping = bdms


@api.route("/v2.1/servers/{server_id}", ["PUT"])
def update_server(req: Req):
    ctx, v = req.ctx, mv(req)
    body = validation.validate(schemas.update_schema(v), req.json(), style=validation.NOVA)["server"]
    with db.transaction() as s:
        inst = instances.get(s, ctx, req.path["server_id"])
        policies.authorize("servers:update", ctx, {"project_id": inst.project_id})
        if "name" in body:
            inst.name = body["name"]
            instances.notify_later(s, "update", inst)
        if "description" in body:
            inst.description = body["description"]
        if "accessIPv4" in body:
            inst.access_ip_v4 = instances.check_ip(body["accessIPv4"], 4, "accessIPv4")
        if "accessIPv6" in body:
            inst.access_ip_v6 = instances.check_ip(body["accessIPv6"], 6, "accessIPv6")
        inst.updated_at = utcnow()
        s.flush()
        return json_response({"server": server_view(req, s, inst, groups=True, minimal=True)})


@api.route("/v2.1/servers/{server_id}", ["DELETE"])
def delete_server(req: Req):
    actions.delete(req.ctx, req.path["server_id"], req.request_id)
    return empty(204)


# ---------------------------------------------------------------- metadata

def _owned(req: Req, s, write: bool = True) -> m.Instance:
    inst = instances.get(s, req.ctx, req.path["server_id"])
    policies.authorize("servers:update" if write else "servers:show", req.ctx, {"project_id": inst.project_id})
    if write and inst.locked and not req.ctx.is_admin and inst.locked_by == "admin":
        raise errors.Conflict(f"Instance {inst.uuid} is locked")
    return inst


def _metadata_body(req: Req, key: str = "metadata") -> dict:
    data = req.json()
    if not isinstance(data, dict) or key not in data:
        raise errors.BadRequest(f"Malformed request body: '{key}' is required.")
    return instances.check_metadata(data[key], key)


def _check_meta_quota(s, inst: m.Instance, md: dict) -> None:
    quotas.check_metadata(s, inst.project_id, len(md))


def _not_building(inst: m.Instance) -> None:
    if inst.vm_state == states.BUILDING and inst.task_state not in (None, states.SCHEDULING):
        pass


@api.route("/v2.1/servers/{server_id}/metadata", ["GET"])
def list_metadata(req: Req):
    with db.session() as s:
        inst = _owned(req, s, write=False)
        return json_response({"metadata": dict(inst.metadata_ or {})})


@api.route("/v2.1/servers/{server_id}/metadata", ["POST"])
def update_metadata(req: Req):
    md = _metadata_body(req)
    with db.transaction() as s:
        inst = _owned(req, s)
        new = {**(inst.metadata_ or {}), **md}
        _check_meta_quota(s, inst, new)
        inst.metadata_ = new
        inst.updated_at = utcnow()
        return json_response({"metadata": new})


@api.route("/v2.1/servers/{server_id}/metadata", ["PUT"])
def replace_metadata(req: Req):
    md = _metadata_body(req)
    with db.transaction() as s:
        inst = _owned(req, s)
        _check_meta_quota(s, inst, md)
        inst.metadata_ = dict(md)
        inst.updated_at = utcnow()
        return json_response({"metadata": md})


@api.route("/v2.1/servers/{server_id}/metadata/{key}", ["GET"])
def show_metadata_item(req: Req):
    with db.session() as s:
        inst = _owned(req, s, write=False)
        key = req.path["key"]
        if key not in (inst.metadata_ or {}):
            raise errors.NotFound("Metadata item was not found")
        return json_response({"meta": {key: inst.metadata_[key]}})


@api.route("/v2.1/servers/{server_id}/metadata/{key}", ["PUT"])
def set_metadata_item(req: Req):
    md = _metadata_body(req, "meta")
    key = req.path["key"]
    if len(md) != 1:
        raise errors.BadRequest("Request body contains too many items")
    if key not in md:
        raise errors.BadRequest("Request body and URI mismatch")
    with db.transaction() as s:
        inst = _owned(req, s)
        new = {**(inst.metadata_ or {}), **md}
        _check_meta_quota(s, inst, new)
        inst.metadata_ = new
        inst.updated_at = utcnow()
        return json_response({"meta": md})


@api.route("/v2.1/servers/{server_id}/metadata/{key}", ["DELETE"])
def delete_metadata_item(req: Req):
    with db.transaction() as s:
        inst = _owned(req, s)
        key = req.path["key"]
        md = dict(inst.metadata_ or {})
        if key not in md:
            raise errors.NotFound("Metadata item was not found")
        del md[key]
        inst.metadata_ = md
        inst.updated_at = utcnow()
    return empty(204)


# ---------------------------------------------------------------- tags (2.26+)

def _need_tags(req: Req) -> None:
    if mv(req) < Version(2, 26):
        raise errors.NotFound(f"The resource could not be found: {req.url.path}")


@api.route("/v2.1/servers/{server_id}/tags", ["GET"])
def list_tags(req: Req):
    _need_tags(req)
    with db.session() as s:
        return json_response({"tags": list(_owned(req, s, write=False).tags or [])})


@api.route("/v2.1/servers/{server_id}/tags", ["PUT"])
def replace_tags(req: Req):
    _need_tags(req)
    data = req.json()
    tags = data.get("tags") if isinstance(data, dict) else None
    if not isinstance(tags, list):
        raise errors.BadRequest("Invalid input for field/attribute tags: a list is required.")
    tags = list(dict.fromkeys(instances.check_tag(t) for t in tags))
    if len(tags) > instances.MAX_TAGS:
        raise errors.BadRequest(f"The number of tags exceeded the per-server limit {instances.MAX_TAGS}")
    with db.transaction() as s:
        inst = _owned(req, s)
        inst.tags = tags
        inst.updated_at = utcnow()
    return json_response({"tags": tags})


@api.route("/v2.1/servers/{server_id}/tags", ["DELETE"])
def delete_tags(req: Req):
    _need_tags(req)
    with db.transaction() as s:
        inst = _owned(req, s)
        inst.tags = []
        inst.updated_at = utcnow()
    return empty(204)


@api.route("/v2.1/servers/{server_id}/tags/{tag}", ["GET"])
def check_tag(req: Req):
    _need_tags(req)
    with db.session() as s:
        if req.path["tag"] not in (_owned(req, s, write=False).tags or []):
            raise errors.NotFound(f"Tag {req.path['tag']} could not be found.")
    return empty(204)


@api.route("/v2.1/servers/{server_id}/tags/{tag}", ["PUT"])
def add_tag(req: Req):
    _need_tags(req)
    tag = instances.check_tag(req.path["tag"])
    with db.transaction() as s:
        inst = _owned(req, s)
        tags = list(inst.tags or [])
        if tag in tags:
            return empty(204)
        if len(tags) >= instances.MAX_TAGS:
            raise errors.BadRequest(f"The number of tags exceeded the per-server limit {instances.MAX_TAGS}")
        inst.tags = tags + [tag]
        inst.updated_at = utcnow()
    base = views.base_url(req)
    return empty(201, headers={"Location": f"{base}/v2.1/servers/{req.path['server_id']}/tags/{tag}"})


@api.route("/v2.1/servers/{server_id}/tags/{tag}", ["DELETE"])
def delete_tag(req: Req):
    _need_tags(req)
    with db.transaction() as s:
        inst = _owned(req, s)
        tags = list(inst.tags or [])
        if req.path["tag"] not in tags:
            raise errors.NotFound(f"Tag {req.path['tag']} could not be found.")
        tags.remove(req.path["tag"])
        inst.tags = tags
        inst.updated_at = utcnow()
    return empty(204)


# ---------------------------------------------------------------- addresses

@api.route("/v2.1/servers/{server_id}/ips", ["GET"])
def list_ips(req: Req):
    with db.session() as s:
        inst = _owned(req, s, write=False)
        return json_response({"addresses": {k: [{"version": a["version"], "addr": a["addr"]} for a in v]
                                            for k, v in views.addresses(inst).items()}})


@api.route("/v2.1/servers/{server_id}/ips/{network}", ["GET"])
def show_ips(req: Req):
    with db.session() as s:
        inst = _owned(req, s, write=False)
        addrs = views.addresses(inst)
        net = req.path["network"]
        if net not in addrs:
            raise errors.NotFound("Network could not be found")
        return json_response({net: [{"version": a["version"], "addr": a["addr"]} for a in addrs[net]]})


# ---------------------------------------------------------------- instance actions

@api.route("/v2.1/servers/{server_id}/os-instance-actions", ["GET"])
def list_actions(req: Req):
    ctx, v = req.ctx, mv(req)
    with db.session() as s:
        inst = s.get(m.Instance, req.path["server_id"]) if instances.is_uuid(req.path["server_id"]) else None
        if inst is None or (inst.project_id != ctx.project_id and not ctx.is_admin) or (
                inst.deleted and v < Version(2, 21)):
            raise instances.not_found(req.path["server_id"])
        rows = list(s.scalars(sa.select(m.InstanceAction).where(m.InstanceAction.instance_uuid == inst.uuid)
                              .order_by(m.InstanceAction.start_time.desc(), m.InstanceAction.id.desc())))
        return json_response({"instanceActions": [views.action(a, None, v, False) for a in rows]})


@api.route("/v2.1/servers/{server_id}/os-instance-actions/{request_id}", ["GET"])
def show_action(req: Req):
    ctx, v = req.ctx, mv(req)
    with db.session() as s:
        inst = s.get(m.Instance, req.path["server_id"]) if instances.is_uuid(req.path["server_id"]) else None
        if inst is None or (inst.project_id != ctx.project_id and not ctx.is_admin) or (
                inst.deleted and v < Version(2, 21)):
            raise instances.not_found(req.path["server_id"])
        a = s.scalar(sa.select(m.InstanceAction).where(m.InstanceAction.instance_uuid == inst.uuid,
                                                       m.InstanceAction.request_id == req.path["request_id"]))
        if a is None:
            raise errors.NotFound(f"Action {req.path['request_id']} not found")
        show_events = v >= Version(2, 51) or policies.allowed("os-instance-actions:events", ctx)
        events = list(s.scalars(sa.select(m.InstanceActionEvent).where(m.InstanceActionEvent.action_id == a.id)
                                .order_by(m.InstanceActionEvent.start_time.desc()))) if show_events else None
        details = policies.allowed("os-instance-actions:events:details", ctx)
        return json_response({"instanceAction": views.action(a, events, v, details)})
