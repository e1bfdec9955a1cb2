"""Usage (``/os-simple-tenant-usage``): server-hours per project over a period,
computed from the instance rows (launched_at / terminated_at and each row's
flavor snapshot), deleted ones included. 2.40 pages by instance uuid.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from onestack.common import booleans, db, errors
from onestack.common.http import Req, json_response
from onestack.common.microversion import Version
from onestack.common.timeutils import iso_plain, parse_iso, utcnow
from onestack.compute import models as m
from onestack.compute.api import api, mv
from onestack.compute.api import helpers as h

V_PAGING = Version(2, 40)
_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S")


def _time(raw: str | None) -> datetime:
    if not raw:
        return utcnow()
    for fmt in _FORMATS:
        try:
            return datetime.strptime(raw, fmt)
        except ValueError:
            pass
    try:
        return parse_iso(raw)
    except ValueError:
        raise errors.BadRequest("Invalid input received: Datetime is in invalid format") from None


def _period(req: Req) -> tuple[datetime, datetime, bool]:
    start, end = _time(req.query.get("start")), _time(req.query.get("end"))
    if start > end:
        raise errors.BadRequest("Invalid input received: Invalid start time. The start time cannot occur "
                                "after the end time.")
    # Nova takes only "1"; the SDK sends "True", which Nova silently reads as not detailed
    return start, end, booleans.to_bool(req.query.get("detailed", "0"), true=("1", "true"))


def _hours(inst: m.Instance, start: datetime, stop: datetime) -> float:
    launched, ended = inst.launched_at, inst.terminated_at or (inst.deleted_at if inst.deleted else None)
    if launched is None:
        return 0.0
    if ended is not None and ended < start:
        return 0.0
    if launched > stop:
        return 0.0
    begin = max(launched, start)
    finish = min(ended, stop) if ended is not None else stop
    return max((finish - begin).total_seconds(), 0) / 3600.0


def _server_usage(inst: m.Instance, start: datetime, stop: datetime, now: datetime) -> dict:
    f = inst.flavor or {}
    ended = inst.terminated_at or (inst.deleted_at if inst.deleted else None)
    state = "terminated" if ended else inst.vm_state
    uptime = ((ended if ended else now) - inst.launched_at).total_seconds()
    return {"instance_id": inst.uuid, "name": inst.name, "tenant_id": inst.project_id,
            "flavor": f.get("name") or "", "hours": _hours(inst, start, stop),
            "memory_mb": int(f.get("memory_mb") or 0),
            "local_gb": int(f.get("root_gb") or 0) + int(f.get("ephemeral_gb") or 0),
            "vcpus": int(f.get("vcpus") or 0), "started_at": iso_plain(inst.launched_at),
            "ended_at": iso_plain(ended), "state": state, "uptime": int(uptime)}


def _instances(s, start: datetime, stop: datetime, project_id: str | None) -> list[m.Instance]:
    ended = sa.func.coalesce(m.Instance.terminated_at, m.Instance.deleted_at)
    q = sa.select(m.Instance).where(sa.or_(ended.is_(None), ended > start), m.Instance.launched_at < stop)
    if project_id:
        q = q.where(m.Instance.project_id == project_id)
    return list(s.scalars(q.order_by(m.Instance.project_id, m.Instance.uuid)))


def _usages(req: Req, project_id: str | None) -> tuple[list[dict], list[dict], int]:
    """(per-project summaries, every server's usage, the page limit) for the request."""
    v = mv(req)
    allowed = {"start", "end"} | ({"limit", "marker"} if v >= V_PAGING else set())
    h.strict_query(req, allowed | ({"detailed"} if project_id is None else set()))
    start, stop, detailed = _period(req)
    if project_id is not None:
        detailed = True
    limit, marker = h.limit_marker(req) if v >= V_PAGING else (h.MAX_LIMIT, None)
    now = utcnow()
    with db.session() as s:
        rows = h.page_after(_instances(s, start, stop, project_id), marker, lambda i: i.uuid, limit)
        servers = [_server_usage(i, start, stop, now) for i in rows]
    projects: dict[str, dict] = {}
    for su in servers:
        p = projects.get(su["tenant_id"])
        if p is None:
            p = projects[su["tenant_id"]] = {
                "tenant_id": su["tenant_id"], "total_local_gb_usage": 0.0, "total_vcpus_usage": 0.0,
                "total_memory_mb_usage": 0.0, "total_hours": 0.0, "start": iso_plain(start),
                "stop": iso_plain(stop)}
            if detailed:
                p["server_usages"] = []
        p["total_local_gb_usage"] += su["local_gb"] * su["hours"]
        p["total_vcpus_usage"] += su["vcpus"] * su["hours"]
        p["total_memory_mb_usage"] += su["memory_mb"] * su["hours"]
        p["total_hours"] += su["hours"]
        if detailed:
            p["server_usages"].append(su)
    return list(projects.values()), servers, limit


@api.route("/v2.1/os-simple-tenant-usage", ["GET"])
def list_usage(req: Req):
    h.authorize("os-simple-tenant-usage:list", req.ctx, {})
    summaries, servers, limit = _usages(req, None)
    body: dict = {"tenant_usages": summaries}
    if mv(req) >= V_PAGING:
        nxt = h.next_links(req, "os-simple-tenant-usage", servers,
                           servers[-1]["instance_id"] if servers else None, limit)
        if nxt:
            body["tenant_usages_links"] = nxt
    return json_response(body)


@api.route("/v2.1/os-simple-tenant-usage/", ["GET"])
def show_usage_without_project(req: Req):
    raise errors.NotFound("The resource could not be found.")


@api.route("/v2.1/os-simple-tenant-usage/{tenant_id}", ["GET"])
def show_usage(req: Req):
    project_id = req.path["tenant_id"]
    h.authorize("os-simple-tenant-usage:show", req.ctx, {"project_id": project_id})
    summaries, servers, limit = _usages(req, project_id)
    body: dict = {"tenant_usage": summaries[0] if summaries else {}}
    if mv(req) >= V_PAGING:
        nxt = h.next_links(req, f"os-simple-tenant-usage/{project_id}", servers,
                           servers[-1]["instance_id"] if servers else None, limit)
        if nxt:
            body["tenant_usage_links"] = nxt
    return json_response(body)
