"""Availability zones, extensions, limits, quotas and quota classes, services,
pools and capabilities, user messages and resource filters."""

from __future__ import annotations

import sqlalchemy as sa

from onestack.common import db, errors
from onestack.common.booleans import parse_bool
from onestack.common.http import Req, json_response
from onestack.common.microversion import Version
from onestack.common.timeutils import utcnow
from onestack.volume import core, policies
from onestack.volume import models as m
from onestack.volume.api import body_of, mv, route, views

# -------------------------------------------------------------------- zones and extensions


@route("/os-availability-zone", ["GET"])
def zones(req: Req):
    policies.authorize("volume_extension:availability_zone_list", req.ctx)
    with db.session() as s:
        svcs = list(s.scalars(sa.select(m.Service).where(m.Service.binary == "cinder-volume")))
    out = []
    for zone in core.zones():
        up = any(svc.zone == zone and core.service_up(svc) and not svc.disabled for svc in svcs)
        out.append({"zoneName": zone, "zoneState": {"available": up}})
    return json_response({"availabilityZoneInfo": out})


_EXTENSIONS = [
    ("AvailabilityZones", "os-availability-zone", "Describe Availability Zones."),
    ("Backups", "backups", "Backups support."),
    ("Capabilities", "capabilities", "Capabilities support."),
    ("Cgsnapshots", "cgsnapshots", "cgsnapshots support."),
    ("Consistencygroups", "consistencygroups", "consistency groups support."),
    ("ExtendedServices", "os-extended-services", "Extended services support."),
    ("ExtendedSnapshotAttributes", "os-extended-snapshot-attributes", "Extended SnapshotAttributes support."),
    ("Hosts", "os-hosts", "Admin-only host administration."),
    ("QuotaClasses", "os-quota-class-sets", "Quota classes management support."),
    ("Quotas", "os-quota-sets", "Quota management support."),
    ("SchedulerStats", "scheduler-stats", "Scheduler stats support."),
    ("Services", "os-services", "Services support."),
    ("SnapshotActions", "os-snapshot-actions", "Enable snapshot manager actions."),
    ("SnapshotAdminActions", "os-snapshot-admin-actions", "Enable admin actions."),
    ("TypesExtraSpecs", "os-types-extra-specs", "Type extra specs support."),
    ("TypesManage", "os-types-manage", "Types manage support."),
    ("UsedLimits", "os-used-limits", "Provide data on limited resources that are being used."),
    ("VolumeActions", "os-volume-actions", "Enable volume actions."),
    ("VolumeAdminActions", "os-admin-actions", "Enable admin actions."),
    ("VolumeHostAttribute", "os-vol-host-attr", "Expose host as an attribute of a volume."),
    ("VolumeImageMetadata", "os-vol-image-meta", "Show image metadata associated with the volume."),
    ("VolumeMigStatusAttribute", "os-vol-mig-status-attr", "Expose migration_status as an attribute of a volume."),
    ("VolumeTenantAttribute", "os-vol-tenant-attr", "Expose the internal project_id as an attribute of a volume."),
    ("VolumeTransfer", "os-volume-transfer", "Volume transfer management support."),
    ("VolumeTypeAccess", "os-volume-type-access", "Volume type access support."),
    ("VolumeTypeEncryption", "encryption", "Encryption support for volume types."),
]


@route("/extensions", ["GET"])
def extensions(req: Req):
    return json_response({"extensions": [
        {"alias": alias, "name": name, "description": desc, "links": [], "updated": "2013-04-18T00:00:00+00:00",
         "namespace": f"https://docs.openstack.org/volume/ext/{alias}/api/v1"}
        for name, alias, desc in _EXTENSIONS]})


# -------------------------------------------------------------------- limits and quotas


@route("/limits", ["GET"])
def limits(req: Req):
    ctx = req.ctx
    project = ctx.project_id
    if req.query.get("project_id") and mv(req) >= Version(3, 39):
        if req.query["project_id"] != project:
            policies.authorize("admin_api", ctx)
        project = req.query["project_id"]
    with db.session() as s:
        lim, used = core.limits(s, project), core.usage(s, project)
    return json_response({"limits": {"rate": [], "absolute": {
        "maxTotalVolumes": lim["volumes"], "maxTotalSnapshots": lim["snapshots"],
        "maxTotalVolumeGigabytes": lim["gigabytes"], "maxTotalBackups": lim["backups"],
        "maxTotalBackupGigabytes": lim["backup_gigabytes"],
        "totalVolumesUsed": used["volumes"], "totalGigabytesUsed": used["gigabytes"],
        "totalSnapshotsUsed": used["snapshots"], "totalBackupsUsed": used["backups"],
        "totalBackupGigabytesUsed": used["backup_gigabytes"]}}})


def _quota_resources(s) -> list[str]:
    names = list(core.QUOTA_RESOURCES)
    for t in s.scalars(sa.select(m.VolumeType).order_by(m.VolumeType.name)):
        names += [f"{r}_{t.name}" for r in core.PER_TYPE]
    return names


def _quota_set(s, project_id: str, usage: bool) -> dict:
    lim = core.limits(s, project_id)
    out: dict = {"id": project_id}
    if usage:
        used = core.usage(s, project_id)
        for r in _quota_resources(s):
            out[r] = {"limit": lim.get(r, -1), "in_use": used.get(r, 0), "reserved": 0, "allocated": 0}
    else:
        for r in _quota_resources(s):
            out[r] = lim.get(r, -1)
    return out


def _quota_target(req: Req) -> str:
    project = req.path["target_id"]
    if project != req.ctx.project_id:
        policies.authorize("admin_api", req.ctx)
    policies.authorize("volume_extension:quotas:show", req.ctx, {"project_id": project})
    return project


@route("/os-quota-sets/{target_id}/defaults", ["GET"])
def quota_defaults(req: Req):
    policies.authorize("volume_extension:quotas:show", req.ctx, {"project_id": req.path["target_id"]})
    with db.session() as s:
        lim = core.default_limits(s)
        return json_response({"quota_set": {"id": req.path["target_id"],
                                            **{r: lim.get(r, -1) for r in _quota_resources(s)}}})


@route("/os-quota-sets/{target_id}", ["GET"])
def quota_show(req: Req):
    project = _quota_target(req)
    usage = parse_bool(req.query.get("usage", "false"), "usage")
    with db.session() as s:
        return json_response({"quota_set": _quota_set(s, project, usage)})


def _limit_value(key: str, value) -> int:
    if isinstance(value, bool):
        raise errors.BadRequest(f"Quota limit {value} for {key} must be an integer.")
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise errors.BadRequest(f"Quota limit {value} for {key} must be an integer.") from None
    if n < -1:
        raise errors.BadRequest(f"Quota limit {n} for {key} must be -1 or greater.")
    return n


@route("/os-quota-sets/{target_id}", ["PUT"])
def quota_update(req: Req):
    policies.authorize("volume_extension:quotas:update", req.ctx)
    body = body_of(req, "quota_set")
    project = req.path["target_id"]
    values: dict[str, int] = {}
    with db.session() as s:
        known = set(_quota_resources(s))
        used = core.usage(s, project)
        for key, value in body.items():
            if key in ("tenant_id", "id"):
                continue
            if key not in known:
                raise errors.BadRequest(f"Bad key(s) in quota set: {key}")
            n = _limit_value(key, value)
            if n != -1 and n < used.get(key, 0) and key != "per_volume_gigabytes":
                raise errors.BadRequest(f"Invalid input received: Quota {key} limit must be equal or greater "
                                        f"than existing resources. Current usage is {used.get(key, 0)} and the "
                                        f"requested limit is {n}.")
            values[key] = n
    core.set_limits(project, values)
    with db.session() as s:
        out = _quota_set(s, project, False)
        out.pop("id")
        return json_response({"quota_set": out})


@route("/os-quota-sets/{target_id}", ["DELETE"])
def quota_delete(req: Req):
    policies.authorize("volume_extension:quotas:delete", req.ctx)
    core.reset_limits(req.path["target_id"])
    return json_response(None, 200)


@route("/os-quota-class-sets/{class_name}", ["GET"])
def quota_class_show(req: Req):
    policies.authorize("volume_extension:quota_classes", req.ctx)
    with db.session() as s:
        lim = core.default_limits(s)
        name = req.path["class_name"]
        for row in s.scalars(sa.select(m.QuotaClass).where(m.QuotaClass.class_name == name)):
            lim[row.resource] = row.hard_limit
        return json_response({"quota_class_set": {"id": name, **{r: lim.get(r, -1) for r in _quota_resources(s)}}})


@route("/os-quota-class-sets/{class_name}", ["PUT"])
def quota_class_update(req: Req):
    policies.authorize("volume_extension:quota_classes", req.ctx)
    body = body_of(req, "quota_class_set")
    name = req.path["class_name"]
    with db.session() as s:
        known = set(_quota_resources(s))
    values = {}
    for key, value in body.items():
        if key not in known:
            raise errors.BadRequest(f"Bad key(s) in quota class set: {key}")
        values[key] = _limit_value(key, value)
    # the default class's project-wide limits are the registered limits in identity
    core.quota_limits.set_defaults({k: n for k, n in values.items() if name == "default" and k in core.QUOTA_RESOURCES})
    with db.transaction() as s:
        for key, n in values.items():
            if name == "default" and key in core.QUOTA_RESOURCES:
                continue
            row = s.get(m.QuotaClass, (name, key))
            if row is None:
                s.add(m.QuotaClass(class_name=name, resource=key, hard_limit=n))
            else:
                row.hard_limit = n
    return quota_class_show(req)


# -------------------------------------------------------------------- services


def _service_view(svc: m.Service, version: Version) -> dict:
    out = {"binary": svc.binary, "host": svc.host, "zone": svc.zone,
           "status": "disabled" if svc.disabled else "enabled", "state": "up" if core.service_up(svc) else "down",
           "updated_at": views.t(svc.updated_at), "disabled_reason": svc.disabled_reason}
    if svc.binary == "cinder-volume":
        out.update(frozen=svc.frozen, replication_status="disabled", active_backend_id=None)
    if version >= Version(3, 7):
        out["cluster"] = None
    if version >= Version(3, 49) and svc.binary == "cinder-volume":
        out["backend_state"] = "up" if core.service_up(svc) else "down"
    return out


@route("/os-services", ["GET"])
def services(req: Req):
    policies.authorize("volume_extension:services:index", req.ctx)
    with db.session() as s:
        q = sa.select(m.Service).order_by(m.Service.id)
        if req.query.get("host"):
            q = q.where(m.Service.host == req.query["host"])
        if req.query.get("binary"):
            q = q.where(m.Service.binary == req.query["binary"])
        rows = list(s.scalars(q))
    return json_response({"services": [_service_view(svc, mv(req)) for svc in rows]})


@route("/os-services/{action}", ["PUT"])
def service_update(req: Req):
    policies.authorize("volume_extension:services:update", req.ctx)
    action = req.path["action"]
    if action not in ("enable", "disable", "disable-log-reason", "freeze", "thaw"):
        raise errors.NotFound(f"Unknown action {action}.")
    body = req.json()
    if not isinstance(body, dict) or not body.get("host"):
        raise errors.BadRequest("Missing required element 'host' in request body.")
    binary = body.get("binary") or "cinder-volume"
    with db.transaction() as s:
        svc = s.scalar(sa.select(m.Service).where(m.Service.host == body["host"], m.Service.binary == binary))
        if svc is None:
            raise errors.NotFound(f"Service {binary} could not be found on host {body['host']}.")
        if action == "enable":
            svc.disabled, svc.disabled_reason = False, None
        elif action in ("disable", "disable-log-reason"):
            svc.disabled = True
            svc.disabled_reason = body.get("disabled_reason") if action == "disable-log-reason" else None
        elif action == "freeze":
            svc.frozen = True
        else:
            svc.frozen = False
        svc.updated_at = utcnow()
        if action in ("freeze", "thaw"):
            return json_response(None, 200)
        return json_response({"host": svc.host, "binary": svc.binary, "status": "disabled" if svc.disabled
                              else "enabled", "disabled": svc.disabled, "disabled_reason": svc.disabled_reason})


@route("/scheduler-stats/get_pools", ["GET"])
def pools(req: Req):
    policies.authorize("scheduler_extension:scheduler_stats:get_pools", req.ctx)
    detail = parse_bool(req.query.get("detail", "false"), "detail")
    with db.session() as s:
        rows = list(s.scalars(sa.select(m.Service).where(m.Service.binary == "cinder-volume")))
        out = []
        for svc in rows:
            caps = dict(svc.capabilities or {})
            pool = caps.get("pool_name") or svc.host.split("@")[-1]
            used = s.scalar(sa.select(sa.func.coalesce(sa.func.sum(m.Volume.size), 0)).where(
                m.Volume.deleted.is_(False), m.Volume.host.like(f"{svc.host}#%"))) or 0
            caps["allocated_capacity_gb"] = int(used)
            caps["provisioned_capacity_gb"] = int(used)
            caps["timestamp"] = views.t(svc.last_seen_up)
            entry = {"name": f"{svc.host}#{pool}"}
            if detail:
                entry["capabilities"] = caps
            out.append(entry)
    return json_response({"pools": out})


@route("/capabilities/{host}", ["GET"])
def capabilities(req: Req):
    policies.authorize("volume_extension:capabilities", req.ctx)
    with db.session() as s:
        svc = s.scalar(sa.select(m.Service).where(m.Service.host == req.path["host"],
                                                  m.Service.binary == "cinder-volume"))
        if svc is None:
            raise errors.NotFound(f"Service {req.path['host']} could not be found.")
        caps = svc.capabilities or {}
    return json_response({"namespace": f"OS::Storage::Capabilities::{req.path['host']}",
                          "vendor_name": caps.get("vendor_name"), "volume_backend_name": caps.get("volume_backend_name"),
                          "pool_name": caps.get("pool_name"), "driver_version": caps.get("driver_version"),
                          "storage_protocol": caps.get("storage_protocol"), "display_name": None,
                          "description": None, "visibility": None, "replication_targets": [], "properties": {}})


# -------------------------------------------------------------------- messages, filters, groups


@route("/messages", ["GET"])
def messages(req: Req):
    policies.authorize("message:get_all", req.ctx)
    return json_response({"messages": []})


@route("/resource_filters", ["GET"])
def resource_filters(req: Req):
    filters = {
        "volume": ["name", "status", "metadata", "bootable", "volume_type", "availability_zone", "size",
                   "user_id", "snapshot_id", "source_volid", "image_id", "multiattach", "glance_metadata"],
        "snapshot": ["name", "status", "volume_id", "metadata"],
        "backup": ["name", "status", "volume_id"],
        "attachment": ["volume_id", "status", "instance_id"],
    }
    want = req.query.get("resource")
    return json_response({"resource_filters": [{"resource": r, "filters": f} for r, f in filters.items()
                                               if want in (None, r)]})


@route("/groups", ["GET"])
def groups(req: Req):
    return json_response({"groups": []})


@route("/groups/detail", ["GET"])
def groups_detail(req: Req):
    return json_response({"groups": []})


@route("/group_types", ["GET"])
def group_types(req: Req):
    return json_response({"group_types": []})
