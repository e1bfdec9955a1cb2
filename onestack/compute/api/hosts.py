"""What the cloud is made of: ``os-services``, ``os-hypervisors``,
``os-availability-zone`` and the legacy ``os-hosts`` (until 2.43).

A compute host's zone is its aggregates' availability zone, else the one its
service reported (see ``onestack.compute.aggregates``).

The compute agents and the controller keep Service rows alive with heartbeats
(``last_seen_up``); a service is *up* while its last heartbeat is younger than
``compute.service_down_time`` and it was not forced down. Hypervisor usage
(vcpus/memory/disk used, running VMs) is counted from the non-deleted instances
on each node, with their flavor snapshots.
"""

from __future__ import annotations

import json
import socket
import uuid as uuidlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from onestack.common import db, errors, validation
from onestack.common.http import Req, empty, json_response
from onestack.common.microversion import Version
from onestack.common.timeutils import iso_plain, utcnow
from onestack.compute import aggregates, settings, states
from onestack.compute import models as m
from onestack.compute.api import api, mv
from onestack.compute.api import helpers as h

V_FORCED_DOWN = Version(2, 11)
V_CPU_INFO_DICT = Version(2, 28)
V_HYP_PAGING = Version(2, 33)
V_NO_OS_HOSTS = Version(2, 43)
V_UUIDS = Version(2, 53)
V_ALWAYS_SERVERS = Version(2, 75)

INTERNAL_ZONE = aggregates.INTERNAL_ZONE

# ---------------------------------------------------------------- state


def is_up(svc: m.Service, now: datetime | None = None) -> bool:
    """A service is up while it heartbeats and nobody forced it down."""
    if svc.forced_down or svc.last_seen_up is None:
        return False
    now = now or utcnow()
    return abs((now - svc.last_seen_up).total_seconds()) <= settings.current.service_down_time


def _updated(svc: m.Service) -> datetime | None:
    times = [t for t in (svc.updated_at, svc.last_seen_up) if t is not None]
    return max(times) if times else None


@dataclass
class NodeUsage:
    vcpus: int = 0
    memory_mb: int = 0
    local_gb: int = 0
    running_vms: int = 0
    workload: int = 0
    servers: list[tuple[str, str]] = field(default_factory=list)


_BUSY_TASKS = {states.RESIZE_MIGRATING, "rebuild_spawning", states.IMAGE_SNAPSHOT, "image_backup",
               states.RESCUING, states.UNSHELVING}


def _usage(s, nodes: list[str] | None = None) -> dict[str, NodeUsage]:
    q = sa.select(m.Instance.uuid, m.Instance.name, m.Instance.node, m.Instance.flavor, m.Instance.vm_state,
                  m.Instance.task_state).where(m.Instance.deleted.is_(False), m.Instance.node.is_not(None))
    if nodes is not None:
        q = q.where(m.Instance.node.in_(nodes))
    out: dict[str, NodeUsage] = {}
    for uuid, name, node, flavor, vm_state, task_state in s.execute(q.order_by(m.Instance.created_at)):
        u = out.setdefault(node, NodeUsage())
        f = flavor or {}
        u.vcpus += int(f.get("vcpus") or 0)
        u.memory_mb += int(f.get("memory_mb") or 0)
        u.local_gb += int(f.get("root_gb") or 0) + int(f.get("ephemeral_gb") or 0)
        u.running_vms += 1
        if vm_state == states.BUILDING or task_state in _BUSY_TASKS:
            u.workload += 1
        u.servers.append((uuid, name))
    return out


# ---------------------------------------------------------------- views


def service_view(svc: m.Service, v: Version, now: datetime, zones: dict[str, str]) -> dict:
    out = {"id": svc.uuid if v >= V_UUIDS else svc.id, "binary": svc.binary, "host": svc.host,
           "zone": aggregates.service_zone(svc, zones), "status": "disabled" if svc.disabled else "enabled",
           "state": "up" if is_up(svc, now) else "down", "updated_at": iso_plain(_updated(svc)),
           "disabled_reason": svc.disabled_reason}
    if v >= V_FORCED_DOWN:
        out["forced_down"] = bool(svc.forced_down)
    return out


def _hyp_brief(node: m.ComputeNode, svc: m.Service, v: Version, now: datetime) -> dict:
    return {"id": node.uuid if v >= V_UUIDS else node.id, "hypervisor_hostname": node.hypervisor_hostname,
            "state": "up" if is_up(svc, now) else "down", "status": "disabled" if svc.disabled else "enabled"}


def _hyp_detail(node: m.ComputeNode, svc: m.Service, u: NodeUsage, v: Version, now: datetime) -> dict:
    out = _hyp_brief(node, svc, v, now)
    mem_used = u.memory_mb + settings.current.reserved_host_memory_mb
    cpu_info = node.cpu_info or {}
    out.update({
        "cpu_info": cpu_info if v >= V_CPU_INFO_DICT else json.dumps(cpu_info),
        "current_workload": u.workload, "disk_available_least": node.local_gb - u.local_gb,
        "host_ip": node.host_ip, "free_disk_gb": node.local_gb - u.local_gb,
        "free_ram_mb": node.memory_mb - mem_used, "hypervisor_type": node.hypervisor_type,
        "hypervisor_version": node.hypervisor_version, "local_gb": node.local_gb, "local_gb_used": u.local_gb,
        "memory_mb": node.memory_mb, "memory_mb_used": mem_used, "running_vms": u.running_vms,
        "service": {"host": svc.host, "id": svc.uuid if v >= V_UUIDS else svc.id,
                    "disabled_reason": svc.disabled_reason},
        "vcpus": node.vcpus, "vcpus_used": u.vcpus,
    })
    return out


def _with_servers(out: dict, u: NodeUsage, v: Version) -> dict:
    if u.servers or v >= V_ALWAYS_SERVERS:
        out["servers"] = [{"uuid": i, "name": n} for i, n in u.servers]
    return out


# ---------------------------------------------------------------- os-services


def _services(s, host: str | None = None, binary: str | None = None) -> list[m.Service]:
    q = sa.select(m.Service).order_by(m.Service.id)
    if host:
        q = q.where(m.Service.host == host)
    if binary:
        q = q.where(m.Service.binary == binary)
    return list(s.scalars(q))


@api.route("/v2.1/os-services", ["GET"])
def list_services(req: Req):
    h.authorize("os-services:list", req.ctx, {}, fallback="os_compute_api:os-services")
    v, now = mv(req), utcnow()
    with db.session() as s:
        rows = _services(s, req.query.get("host"), req.query.get("binary"))
        zones = aggregates.host_zones(s)
        return json_response({"services": [service_view(r, v, now, zones) for r in rows]})


_LEGACY_SCHEMAS = {
    "enable": {"required": ["host", "binary"]},
    "disable": {"required": ["host", "binary"]},
    "disable-log-reason": {"required": ["host", "binary"]},
    "force-down": {"required": ["host", "binary", "forced_down"]},
}
_HOST = {"type": "string", "minLength": 1, "maxLength": 255}
_LEGACY_PROPS = {"host": _HOST, "binary": _HOST, "disabled_reason": {"type": "string", "minLength": 1,
                                                                      "maxLength": 255},
                 "forced_down": {"type": "boolean"}}
_UPDATE_SCHEMA = {"type": "object", "additionalProperties": False, "properties": {
    "status": {"type": "string", "enum": ["enabled", "disabled"]},
    "disabled_reason": {"type": "string", "minLength": 1, "maxLength": 255},
    "forced_down": {"type": "boolean"}}}


def _legacy_update(req: Req, action: str):
    """``PUT /os-services/enable|disable|disable-log-reason|force-down`` (before 2.53)."""
    v = mv(req)
    if action not in _LEGACY_SCHEMAS or (action == "force-down" and v < V_FORCED_DOWN):
        raise errors.NotFound("Unknown action")
    body = req.json()
    if not isinstance(body, dict):
        raise errors.BadRequest("Malformed request body: an object is expected.")
    validation.validate({"type": "object", "properties": _LEGACY_PROPS, **_LEGACY_SCHEMAS[action]}, body)
    host, binary = body["host"], body["binary"]
    if action == "disable-log-reason" and not body.get("disabled_reason"):
        raise errors.BadRequest("Missing disabled reason field")
    with db.transaction() as s:
        svc = s.scalar(sa.select(m.Service).where(m.Service.host == host, m.Service.binary == binary))
        if svc is None:
            raise errors.NotFound(f"Host {host} with binary {binary} could not be found.")
        out: dict = {"host": host, "binary": binary}
        if action == "enable":
            svc.disabled, svc.disabled_reason = False, None
            out["status"] = "enabled"
        elif action in ("disable", "disable-log-reason"):
            svc.disabled = True
            svc.disabled_reason = body.get("disabled_reason") if action == "disable-log-reason" else None
            out["status"] = "disabled"
            if action == "disable-log-reason":
                out["disabled_reason"] = svc.disabled_reason
        else:
            svc.forced_down = bool(body["forced_down"])
            out["forced_down"] = svc.forced_down
        svc.updated_at = utcnow()
    return json_response({"service": out})


@api.route("/v2.1/os-services/{service_id}", ["PUT"])
def update_service(req: Req):
    h.authorize("os-services:update", req.ctx, {}, fallback="os_compute_api:os-services")
    v = mv(req)
    sid = req.path["service_id"]
    if v < V_UUIDS:
        return _legacy_update(req, sid)
    if not _is_uuid(sid):
        raise errors.BadRequest(f"Invalid uuid {sid}")
    body = req.json()
    if not isinstance(body, dict):
        raise errors.BadRequest("Malformed request body: an object is expected.")
    validation.validate(_UPDATE_SCHEMA, body)
    status = body.get("status")
    if "disabled_reason" in body and status != "disabled":
        raise errors.BadRequest(f"Specifying 'disabled_reason' with status '{status}' is invalid.")
    if status is None and "forced_down" not in body:
        raise errors.BadRequest("No updates were requested. Fields 'status' or 'forced_down' should be "
                                "specified.")
    with db.transaction() as s:
        svc = s.scalar(sa.select(m.Service).where(m.Service.uuid == sid))
        if svc is None:
            raise errors.NotFound(f"Service {sid} could not be found.")
        if svc.binary != "nova-compute":
            raise errors.BadRequest(f"Updating a {svc.binary} service is not supported. Only nova-compute "
                                    f"services can be updated.")
        if status == "enabled":
            svc.disabled, svc.disabled_reason = False, None
        elif status == "disabled":
            svc.disabled, svc.disabled_reason = True, body.get("disabled_reason")
        if "forced_down" in body:
            svc.forced_down = bool(body["forced_down"])
        svc.updated_at = utcnow()
        s.flush()
        out = service_view(svc, v, utcnow(), aggregates.host_zones(s, [svc.host]))
    return json_response({"service": out})


def _is_uuid(text: str) -> bool:
    try:
        uuidlib.UUID(text)
    except ValueError:
        return False
    return True


@api.route("/v2.1/os-services/{service_id}", ["DELETE"])
def delete_service(req: Req):
    h.authorize("os-services:delete", req.ctx, {}, fallback="os_compute_api:os-services")
    v = mv(req)
    sid = req.path["service_id"]
    with db.transaction() as s:
        if v >= V_UUIDS:
            if not _is_uuid(sid):
                raise errors.BadRequest(f"Invalid uuid {sid}")
            svc = s.scalar(sa.select(m.Service).where(m.Service.uuid == sid))
        else:
            svc = s.get(m.Service, int(sid)) if sid.isdigit() else None
        if svc is None:
            raise errors.NotFound(f"Service {sid} could not be found.")
        if svc.binary == "nova-compute":
            nodes = list(s.scalars(sa.select(m.ComputeNode).where(m.ComputeNode.service_id == svc.id)))
            hosted = s.scalar(sa.select(sa.func.count()).select_from(m.Instance).where(
                m.Instance.deleted.is_(False),
                sa.or_(m.Instance.host == svc.host,
                       m.Instance.node.in_([n.hypervisor_hostname for n in nodes] or [""]))))
            if hosted:
                raise errors.Conflict("Unable to delete compute service that is hosting instances. Migrate "
                                      "or delete the instances first.")
            for n in nodes:
                s.delete(n)
            aggregates.forget_host(s, svc.host)
        s.delete(svc)
    return empty(204)


# ---------------------------------------------------------------- os-hypervisors


def _nodes(s, where=None) -> list[tuple[m.ComputeNode, m.Service]]:
    q = sa.select(m.ComputeNode, m.Service).join(m.Service, m.Service.id == m.ComputeNode.service_id)
    if where is not None:
        q = q.where(where)
    return [(n, svc) for n, svc in s.execute(q.order_by(m.ComputeNode.id))]


def _node_key(node: m.ComputeNode, v: Version) -> str:
    return node.uuid if v >= V_UUIDS else str(node.id)


def _hyp_list(req: Req, detail: bool):
    h.strict_query(req, {"limit", "marker", "hypervisor_hostname_pattern", "with_servers"})
    h.authorize("os-hypervisors:list" + ("-detail" if detail else ""), req.ctx, {},
                fallback="os_compute_api:os-hypervisors")
    v, now = mv(req), utcnow()
    pattern = req.query.get("hypervisor_hostname_pattern") if v >= V_UUIDS else None
    with_servers = v >= V_UUIDS and h.parse_bool(req.query.get("with_servers", "false"), "with_servers")
    paging = v >= V_HYP_PAGING
    limit, marker = h.limit_marker(req) if paging else (h.MAX_LIMIT, None)
    if pattern is not None and ("limit" in req.query or marker is not None):
        raise errors.BadRequest("Paging over hypervisors with the hypervisor_hostname_pattern query "
                                "parameter is not supported.")
    with db.session() as s:
        where = m.ComputeNode.hypervisor_hostname.contains(pattern, autoescape=True) if pattern else None
        rows = _nodes(s, where)
        if pattern is not None and not rows:
            raise errors.NotFound(f"No hypervisor matching '{pattern}' could be found.")
        if paging:
            rows = h.page_after(rows, marker, lambda r: _node_key(r[0], v), limit)
        usage = _usage(s, [n.hypervisor_hostname for n, _ in rows]) if (detail or with_servers) else {}
        out = []
        for node, svc in rows:
            u = usage.get(node.hypervisor_hostname, NodeUsage())
            item = _hyp_detail(node, svc, u, v, now) if detail else _hyp_brief(node, svc, v, now)
            out.append(_with_servers(item, u, v) if with_servers else item)
        body: dict = {"hypervisors": out}
        if paging and rows:
            nxt = h.next_links(req, "os-hypervisors" + ("/detail" if detail else ""), rows,
                               _node_key(rows[-1][0], v), limit)
            if nxt:
                body["hypervisors_links"] = nxt
    return json_response(body)


@api.route("/v2.1/os-hypervisors", ["GET"])
def list_hypervisors(req: Req):
    return _hyp_list(req, detail=False)


@api.route("/v2.1/os-hypervisors/detail", ["GET"])
def list_hypervisors_detail(req: Req):
    return _hyp_list(req, detail=True)


@api.route("/v2.1/os-hypervisors/statistics", ["GET"])
def hypervisor_statistics(req: Req):
    h.authorize("os-hypervisors:statistics", req.ctx, {}, fallback="os_compute_api:os-hypervisors")
    keys = ("count", "vcpus", "memory_mb", "local_gb", "vcpus_used", "memory_mb_used", "local_gb_used",
            "free_ram_mb", "free_disk_gb", "current_workload", "running_vms", "disk_available_least")
    stats = dict.fromkeys(keys, 0)
    v, now = mv(req), utcnow()
    with db.session() as s:
        rows = [(n, svc) for n, svc in _nodes(s) if not svc.disabled]
        usage = _usage(s, [n.hypervisor_hostname for n, _ in rows])
        for node, svc in rows:
            d = _hyp_detail(node, svc, usage.get(node.hypervisor_hostname, NodeUsage()), v, now)
            stats["count"] += 1
            for k in keys[1:]:
                stats[k] += d[k]
    return json_response({"hypervisor_statistics": stats})


def _find_node(s, req: Req) -> tuple[m.ComputeNode, m.Service]:
    hid = req.path["hypervisor_id"]
    if mv(req) >= V_UUIDS:
        if not _is_uuid(hid):
            raise errors.BadRequest(f"Invalid uuid {hid}")
        rows = _nodes(s, m.ComputeNode.uuid == hid)
    else:
        rows = _nodes(s, m.ComputeNode.id == int(hid)) if hid.isdigit() else []
    if not rows:
        raise errors.NotFound(f"Hypervisor with ID '{hid}' could not be found.")
    return rows[0]


@api.route("/v2.1/os-hypervisors/{hypervisor_id}", ["GET"])
def show_hypervisor(req: Req):
    h.authorize("os-hypervisors:show", req.ctx, {}, fallback="os_compute_api:os-hypervisors")
    v, now = mv(req), utcnow()
    if v >= V_ALWAYS_SERVERS:
        h.strict_query(req, {"with_servers"})
    with_servers = v >= V_UUIDS and h.parse_bool(req.query.get("with_servers", "false"), "with_servers")
    with db.session() as s:
        node, svc = _find_node(s, req)
        u = _usage(s, [node.hypervisor_hostname]).get(node.hypervisor_hostname, NodeUsage())
        out = _hyp_detail(node, svc, u, v, now)
        if with_servers:
            _with_servers(out, u, v)
    return json_response({"hypervisor": out})


def _local_uptime() -> str:
    """What ``uptime`` prints, from /proc."""
    secs = float(Path("/proc/uptime").read_text().split()[0])
    load = Path("/proc/loadavg").read_text().split()[:3]
    days, rest = divmod(int(secs), 86400)
    hours, minutes = divmod(rest // 60, 60)
    up = (f"{days} day{'s' if days != 1 else ''}, " if days else "") + f"{hours:2d}:{minutes:02d}"
    return f" {utcnow().strftime('%H:%M:%S')} up {up},  load average: {', '.join(load)}"


@api.route("/v2.1/os-hypervisors/{hypervisor_id}/uptime", ["GET"])
def hypervisor_uptime(req: Req):
    h.authorize("os-hypervisors:uptime", req.ctx, {}, fallback="os_compute_api:os-hypervisors")
    v, now = mv(req), utcnow()
    with db.session() as s:
        node, svc = _find_node(s, req)
        out = _hyp_brief(node, svc, v, now)
    # this machine's hosts (the local one and the simulated ones run in this process)
    if node.hypervisor_type != "fake" and node.host not in (socket.gethostname(), socket.getfqdn()):
        raise errors.NotImplementedYet("Virt driver does not implement uptime function.")
    out["uptime"] = _local_uptime()
    return json_response({"hypervisor": out})


def _legacy_search(req: Req, servers: bool):
    h.authorize("os-hypervisors:search", req.ctx, {}, fallback="os_compute_api:os-hypervisors")
    v, now = mv(req), utcnow()
    if v >= V_UUIDS:
        raise errors.NotFound("The resource could not be found.")
    pattern = req.path["pattern"]
    with db.session() as s:
        rows = _nodes(s, m.ComputeNode.hypervisor_hostname.contains(pattern, autoescape=True))
        if not rows:
            raise errors.NotFound(f"No hypervisor matching '{pattern}' could be found.")
        usage = _usage(s, [n.hypervisor_hostname for n, _ in rows]) if servers else {}
        out = []
        for node, svc in rows:
            item = _hyp_brief(node, svc, v, now)
            if servers:
                _with_servers(item, usage.get(node.hypervisor_hostname, NodeUsage()), v)
            out.append(item)
    return json_response({"hypervisors": out})


@api.route("/v2.1/os-hypervisors/{pattern}/search", ["GET"])
def search_hypervisors(req: Req):
    return _legacy_search(req, servers=False)


@api.route("/v2.1/os-hypervisors/{pattern}/servers", ["GET"])
def hypervisor_servers(req: Req):
    return _legacy_search(req, servers=True)


# ---------------------------------------------------------------- os-availability-zone


def _zones(services: list[m.Service], zones: dict[str, str], now: datetime) -> tuple[list[str], list[str]]:
    """(available, unavailable) zones of the compute services: a zone is listed when
    it has a compute service; available when one of its enabled services is up."""
    seen: dict[str, bool] = {}
    for svc in services:
        if svc.binary != "nova-compute":
            continue
        zone = aggregates.service_zone(svc, zones)
        seen[zone] = seen.get(zone, False) or (not svc.disabled and is_up(svc, now))
    return sorted(z for z, ok in seen.items() if ok), sorted(z for z, ok in seen.items() if not ok)


@api.route("/v2.1/os-availability-zone", ["GET"])
def list_zones(req: Req):
    now = utcnow()
    with db.session() as s:
        up, down = _zones(_services(s), aggregates.host_zones(s), now)
    info = [{"zoneName": z, "zoneState": {"available": True}, "hosts": None} for z in up]
    info += [{"zoneName": z, "zoneState": {"available": False}, "hosts": None} for z in down]
    return json_response({"availabilityZoneInfo": info})


@api.route("/v2.1/os-availability-zone/detail", ["GET"])
def list_zones_detail(req: Req):
    h.authorize("os-availability-zone:detail", req.ctx, {})
    now = utcnow()
    with db.session() as s:
        services = _services(s)
        zones = aggregates.host_zones(s)
    up, down = _zones(services, zones, now)
    hosts: dict[str, dict[str, dict]] = {}
    for svc in services:
        zone = aggregates.service_zone(svc, zones)
        if svc.disabled and zone != INTERNAL_ZONE:
            continue
        hosts.setdefault(zone, {}).setdefault(svc.host, {})[svc.binary] = {
            "available": is_up(svc, now), "active": not svc.disabled, "updated_at": iso_plain(_updated(svc))}
    info = []
    if INTERNAL_ZONE in hosts:
        internal_ok = any(is_up(svc, now) for svc in services if svc.zone == INTERNAL_ZONE)
        info.append({"zoneName": INTERNAL_ZONE, "zoneState": {"available": internal_ok},
                     "hosts": hosts[INTERNAL_ZONE]})
    info += [{"zoneName": z, "zoneState": {"available": True}, "hosts": hosts.get(z, {})} for z in up]
    info += [{"zoneName": z, "zoneState": {"available": False}, "hosts": hosts.get(z) or None} for z in down]
    return json_response({"availabilityZoneInfo": info})


# ---------------------------------------------------------------- os-hosts (until 2.43)


def _legacy_hosts(req: Req) -> None:
    if mv(req) >= V_NO_OS_HOSTS:
        raise errors.NotFound("The resource could not be found.")
    h.authorize("os-hosts", req.ctx, {}, fallback="os_compute_api:os-services")


@api.route("/v2.1/os-hosts", ["GET"])
def list_hosts(req: Req):
    _legacy_hosts(req)
    zone = req.query.get("zone")
    with db.session() as s:
        rows = _services(s)
        zones = aggregates.host_zones(s)
    out = [{"host_name": svc.host, "service": svc.topic, "zone": aggregates.service_zone(svc, zones)}
           for svc in rows]
    out = [row for row in out if not zone or row["zone"] == zone]
    return json_response({"hosts": out})


@api.route("/v2.1/os-hosts/{host}", ["GET"])
def show_host(req: Req):
    _legacy_hosts(req)
    host = req.path["host"]
    with db.session() as s:
        rows = _nodes(s, m.ComputeNode.host == host)
        if not rows:
            raise errors.NotFound(f"Compute host {host} could not be found.")
        insts = list(s.execute(sa.select(m.Instance.project_id, m.Instance.flavor).where(
            m.Instance.deleted.is_(False), m.Instance.host == host)))
    total = {"cpu": sum(n.vcpus for n, _ in rows), "memory_mb": sum(n.memory_mb for n, _ in rows),
             "disk_gb": sum(n.local_gb for n, _ in rows)}
    per_project: dict[str, dict] = {}
    for project_id, f in insts:
        f = f or {}
        p = per_project.setdefault(project_id, {"cpu": 0, "memory_mb": 0, "disk_gb": 0})
        p["cpu"] += int(f.get("vcpus") or 0)
        p["memory_mb"] += int(f.get("memory_mb") or 0)
        p["disk_gb"] += int(f.get("root_gb") or 0) + int(f.get("ephemeral_gb") or 0)
    used = {k: sum(p[k] for p in per_project.values()) for k in ("cpu", "memory_mb", "disk_gb")}
    used_now = {**used, "memory_mb": used["memory_mb"] + settings.current.reserved_host_memory_mb}
    resources = [("(total)", total), ("(used_now)", used_now), ("(used_max)", used)]
    resources += sorted(per_project.items())
    return json_response({"host": [{"resource": {"host": host, "project": name, **vals}}
                                   for name, vals in resources]})


_HOST_UPDATE = {"type": "object", "minProperties": 1, "additionalProperties": False, "properties": {
    "status": {"type": "string", "enum": ["enable", "disable"]},
    "maintenance_mode": {"type": "string", "enum": ["enable", "disable"]}}}


def _compute_service(s, host: str) -> m.Service:
    svc = s.scalar(sa.select(m.Service).where(m.Service.host == host, m.Service.binary == "nova-compute"))
    if svc is None:
        raise errors.NotFound(f"Compute host {host} could not be found.")
    return svc


@api.route("/v2.1/os-hosts/{host}", ["PUT"])
def update_host(req: Req):
    _legacy_hosts(req)
    host = req.path["host"]
    body = req.json()
    validation.validate(_HOST_UPDATE, body)
    with db.transaction() as s:
        svc = _compute_service(s, host)
        if "maintenance_mode" in body:
            raise errors.NotImplementedYet("Virt driver does not implement host maintenance mode.")
        svc.disabled = body["status"] == "disable"
        svc.disabled_reason = None
        svc.updated_at = utcnow()
    return json_response({"host": host, "status": "disabled" if body["status"] == "disable" else "enabled"})


@api.route("/v2.1/os-hosts/{host}/{action}", ["GET"])
def host_power_action(req: Req):
    _legacy_hosts(req)
    if req.path["action"] not in ("reboot", "shutdown", "startup"):
        raise errors.NotFound("The resource could not be found.")
    with db.session() as s:
        _compute_service(s, req.path["host"])
    raise errors.NotImplementedYet("Virt driver does not implement host power management.")


# The usage module is not in build()'s list of modules: it is loaded with this one.
from onestack.compute.api import usage  # noqa: E402,F401
