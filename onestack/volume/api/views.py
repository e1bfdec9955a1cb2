"""The wire format of the Block Storage v3 API: the only place it is written.

Fields that came with a microversion are listed in ``_SINCE`` tables (data,
not ``if`` chains): a view includes a field when the request's version is at
least the one named.
"""

from __future__ import annotations

from sqlalchemy.orm import object_session

from onestack.common import pagination
from onestack.common.microversion import Version
from onestack.common.timeutils import iso_plain
from onestack.volume import core
from onestack.volume import models as m

V = Version

# volume fields by the microversion that added them
_VOLUME_SINCE = {
    "group_id": V(3, 13),
    "provider_id": V(3, 21),
    "service_uuid": V(3, 48),
    "shared_targets": V(3, 48),
    "volume_type_id": V(3, 63),
    "consumes_quota": V(3, 65),
}
_VOLUME_ADMIN_SINCE = {"cluster_name": V(3, 61)}
_SNAPSHOT_SINCE = {"group_snapshot_id": V(3, 14), "user_id": V(3, 41), "consumes_quota": V(3, 65)}


def t(dt) -> str | None:
    """Cinder's times: ``2018-11-29T06:50:07.770785`` (no zone)."""
    return iso_plain(dt)


def base_url(req) -> str:
    """``http://host:port/volume`` (no version): links are built from it."""
    url = str(req.url.replace(query="", fragment=""))
    return url.split("/v3/")[0].split("/v3")[0].rstrip("/") if "/v3" in url else url.rstrip("/")


def links(req, kind: str, ident: str, project: str) -> list[dict]:
    base = base_url(req)
    return [{"rel": "self", "href": f"{base}/v3/{project}/{kind}/{ident}"},
            {"rel": "bookmark", "href": f"{base}/{project}/{kind}/{ident}"}]


def collection_links(req, collection: str, items: list[dict], limit: int | None, more: bool) -> dict:
    """``<collection>_links`` with a ``next`` link when a page came back full (Cinder's rule)."""
    if not items or limit is None or len(items) < limit:
        return {}
    href = pagination.next_link(str(req.url.replace(query="", fragment="")), req.query, items[-1]["id"])
    return {f"{collection}_links": [{"rel": "next", "href": href}]}


# -------------------------------------------------------------------- volumes


def attachment_summary(a: m.Attachment) -> dict:
    """An attachment as a volume lists it."""
    return {"server_id": a.instance_uuid, "attachment_id": a.id, "attached_at": t(a.attach_time),
            "host_name": a.attached_host, "volume_id": a.volume_id, "device": a.mountpoint, "id": a.volume_id}


def volume(req, v: m.Volume, version: Version, *, types: dict, attachments: list[m.Attachment],
           admin: bool, detail: bool = True) -> dict:
    """A volume: ``detail`` (show, list detail) adds the os-vol-* extension attributes."""
    vt = types.get(v.volume_type_id)
    metadata = dict(v.metadata_ or {})
    if (v.admin_metadata or {}).get("readonly") is not None:
        metadata["readonly"] = v.admin_metadata["readonly"]
    if (v.admin_metadata or {}).get("attached_mode") is not None:
        metadata["attached_mode"] = v.admin_metadata["attached_mode"]
    out = {
        "id": v.id,
        "name": v.name,
        "description": v.description,
        "status": v.status,
        "size": v.size,
        "availability_zone": v.availability_zone,
        "created_at": t(v.created_at),
        "updated_at": t(v.updated_at),
        "attachments": [attachment_summary(a) for a in attachments if a.attach_status == "attached"],
        "bootable": "true" if v.bootable else "false",
        "encrypted": False,
        "multiattach": bool(v.multiattach),
        "metadata": metadata,
        "links": links(req, "volumes", v.id, v.project_id),
        "volume_type": vt.name if vt else None,
        "snapshot_id": v.snapshot_id,
        "source_volid": v.source_volid,
        "consistencygroup_id": None,
        "user_id": v.user_id,
        "replication_status": None,
        "migration_status": v.migration_status,
    }
    extra = {"group_id": None, "provider_id": None, "service_uuid": None, "shared_targets": False,
             "volume_type_id": v.volume_type_id, "consumes_quota": True}
    for k, since in _VOLUME_SINCE.items():
        if version >= since:
            out[k] = extra[k]
    if detail:
        out["os-vol-tenant-attr:tenant_id"] = v.project_id
        if v.image_metadata:
            out["volume_image_metadata"] = dict(v.image_metadata)
        if admin:
            out["os-vol-host-attr:host"] = v.host
            out["os-vol-mig-status-attr:migstat"] = v.migration_status
            out["os-vol-mig-status-attr:name_id"] = None
            for k, since in _VOLUME_ADMIN_SINCE.items():
                if version >= since:
                    out[k] = None
    return out


def volume_brief(req, v: m.Volume) -> dict:
    return {"id": v.id, "name": v.name, "links": links(req, "volumes", v.id, v.project_id)}


# -------------------------------------------------------------------- snapshots


def snapshot(snap: m.Snapshot, version: Version, detail: bool = True) -> dict:
    out = {
        "id": snap.id,
        "name": snap.name,
        "description": snap.description,
        "status": snap.status,
        "size": snap.size,
        "volume_id": snap.volume_id,
        "metadata": dict(snap.metadata_ or {}),
        "created_at": t(snap.created_at),
        "updated_at": t(snap.updated_at),
    }
    extra = {"group_snapshot_id": None, "user_id": snap.user_id, "consumes_quota": True}
    for k, since in _SNAPSHOT_SINCE.items():
        if version >= since:
            out[k] = extra[k]
    if detail:
        out["os-extended-snapshot-attributes:progress"] = snap.progress
        out["os-extended-snapshot-attributes:project_id"] = snap.project_id
    return out


# -------------------------------------------------------------------- types

# extra specs a non-admin may see (Cinder's user-visible keys)
USER_VISIBLE_SPECS = ("multiattach", "RESKEY:availability_zones", "replication_enabled")


def volume_type(vt: m.VolumeType, admin: bool) -> dict:
    specs = dict(vt.extra_specs or {})
    if not admin:
        specs = {k: v for k, v in specs.items() if k in USER_VISIBLE_SPECS}
    return {"id": vt.id, "name": vt.name, "description": vt.description, "is_public": vt.is_public,
            "os-volume-type-access:is_public": vt.is_public, "extra_specs": specs,
            "qos_specs_id": vt.qos_specs_id}


# -------------------------------------------------------------------- attachments


def attachment(a: m.Attachment, detail: bool = True) -> dict:
    out = {"id": a.id, "status": a.attach_status, "instance": a.instance_uuid, "volume_id": a.volume_id}
    if detail:
        out.update({"attached_at": t(a.attach_time), "detached_at": t(a.detach_time),
                    "attach_mode": a.attach_mode, "connection_info": a.connection_info or {},
                    "connector": a.connector or {}})
    return out


# -------------------------------------------------------------------- transfers


def transfer(req, tr: m.Transfer, version: Version, auth_key: str | None = None, detail: bool = True) -> dict:
    out = {"id": tr.id, "name": tr.name, "volume_id": tr.volume_id,
           "links": links(req, "os-volume-transfer", tr.id, tr.source_project_id)}
    if detail:
        out["created_at"] = t(tr.created_at)
        if version >= V(3, 55):
            out["no_snapshots"] = tr.no_snapshots
        if version >= V(3, 57):
            out.update({"destination_project_id": tr.destination_project_id,
                        "source_project_id": tr.source_project_id, "accepted": tr.accepted})
    if auth_key is not None:
        out["auth_key"] = auth_key
        out["created_at"] = t(tr.created_at)
    return out


# -------------------------------------------------------------------- backups


def _has_dependents(b: m.Backup) -> bool:
    s = object_session(b)
    return bool(s and core.dependent_backups(s, b.id))


def backup(req, b: m.Backup, version: Version, detail: bool = True, has_dependents: bool | None = None) -> dict:
    """``has_dependents`` may be given (a list knows it for all its rows); else it is looked up."""
    out = {"id": b.id, "name": b.name, "links": links(req, "backups", b.id, b.project_id)}
    if not detail:
        return out
    out.update({
        "status": b.status, "size": b.size, "object_count": b.object_count,
        "availability_zone": b.availability_zone, "container": b.container, "created_at": t(b.created_at),
        "updated_at": t(b.updated_at), "description": b.description, "fail_reason": b.fail_reason,
        "volume_id": b.volume_id, "is_incremental": b.incremental,
        "has_dependent_backups": _has_dependents(b) if has_dependents is None else has_dependents,
        "snapshot_id": b.snapshot_id, "data_timestamp": t(b.data_timestamp or b.created_at),
    })
    if version >= V(3, 18):
        out["os-backup-project-attr:project_id"] = b.project_id
    if version >= V(3, 43):
        out["metadata"] = dict(b.metadata_ or {})
    if version >= V(3, 56):
        out["user_id"] = b.user_id
    return out
