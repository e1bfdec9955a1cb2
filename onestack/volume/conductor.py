"""The conductor: the volume agents' only door to the database (bus topic ``volume.conductor``).

Agents read a volume, snapshot or backup as a plain dict (with what they need
of its sources), report status changes, and heartbeat with their capacity.
Only the fields listed in ``_WRITABLE`` may be changed by an agent.
"""

from __future__ import annotations

import logging
import uuid as uuidlib

import sqlalchemy as sa

from onestack.common import db, errors
from onestack.common.timeutils import iso, parse_iso, utcnow
from onestack.volume import core
from onestack.volume import models as m

log = logging.getLogger(__name__)

_VOLUME_FIELDS = ("id", "project_id", "user_id", "name", "size", "status", "attach_status", "host",
                  "availability_zone", "volume_type_id", "snapshot_id", "source_volid", "image_id", "bootable",
                  "provider_location", "disk_format", "task", "deleted", "image_metadata", "multiattach")
_WRITABLE = {
    "volume": {"status", "attach_status", "provider_location", "disk_format", "size", "bootable", "image_metadata",
               "task", "host", "migration_status"},
    "snapshot": {"status", "progress", "provider_location"},
    "backup": {"status", "fail_reason", "object_count", "container", "host", "data_timestamp"},
}


def volume_dict(v: m.Volume) -> dict:
    return {k: getattr(v, k) for k in _VOLUME_FIELDS}


def snapshot_dict(snap: m.Snapshot) -> dict:
    return {k: getattr(snap, k) for k in ("id", "volume_id", "project_id", "size", "status", "provider_location",
                                          "deleted")}


def backup_dict(b: m.Backup) -> dict:
    return {k: getattr(b, k) for k in ("id", "volume_id", "snapshot_id", "project_id", "size", "status",
                                       "container", "deleted", "incremental", "parent_id")}


class Conductor:
    # -- reads

    def volume_get(self, volume_id: str) -> dict | None:
        with db.session() as s:
            v = s.get(m.Volume, volume_id)
            if v is None:
                return None
            out = volume_dict(v)
            if v.snapshot_id:
                snap = s.get(m.Snapshot, v.snapshot_id)
                out["source"] = snapshot_dict(snap) if snap else None
                parent = s.get(m.Volume, snap.volume_id) if snap else None
                if parent is not None:  # a volume from a snapshot is bootable like the snapshot's volume
                    out["source"].update(bootable=parent.bootable, image_metadata=parent.image_metadata)
            elif v.source_volid:
                src = s.get(m.Volume, v.source_volid)
                out["source"] = volume_dict(src) if src else None
            # the servers it is (being) attached to: an online extend tells their compute
            out["attachments"] = [
                {"id": a.id, "instance_uuid": a.instance_uuid, "attached_host": a.attached_host,
                 "attach_status": a.attach_status}
                for a in s.scalars(sa.select(m.Attachment).where(
                    m.Attachment.volume_id == volume_id, m.Attachment.instance_uuid.is_not(None),
                    m.Attachment.attach_status.in_(("attaching", "attached"))))]
            return out

    def snapshot_get(self, snapshot_id: str) -> dict | None:
        with db.session() as s:
            snap = s.get(m.Snapshot, snapshot_id)
            if snap is None:
                return None
            out = snapshot_dict(snap)
            v = s.get(m.Volume, snap.volume_id)
            out["volume"] = volume_dict(v) if v else None
            return out

    def backup_get(self, backup_id: str) -> dict | None:
        with db.session() as s:
            b = s.get(m.Backup, backup_id)
            if b is None:
                return None
            out = backup_dict(b)
            parent = s.get(m.Backup, b.parent_id) if b.parent_id else None
            out["parent"] = backup_dict(parent) if parent else None
            return out

    def volumes_on_host(self, host: str) -> list[dict]:
        with db.session() as s:
            rows = s.scalars(sa.select(m.Volume).where(m.Volume.deleted.is_(False),
                                                       m.Volume.host.like(f"{host}#%")))
            return [volume_dict(v) for v in rows]

    # -- writes

    def _update(self, model, kind: str, ident: str, changes: dict, expected_status: str | None = None):
        bad = set(changes) - _WRITABLE[kind]
        if bad:
            raise errors.BadRequest(f"agents may not change {sorted(bad)} of a {kind}")
        event = None
        with db.transaction() as s:
            row = s.get(model, ident)
            if row is None or row.deleted:
                return None
            if expected_status is not None and row.status != expected_status:
                return row.status
            before = (row.status, getattr(row, "size", None))
            for k, v in changes.items():
                if k == "data_timestamp" and isinstance(v, str):
                    v = parse_iso(v)
                setattr(row, k, v)
            row.updated_at = utcnow()
            if kind == "volume":
                if before[0] in (core.CREATING, core.DOWNLOADING) and row.status == core.AVAILABLE:
                    event = "create.end"
                elif before[1] != row.size:
                    event = "resize.end"
                payload = core.notification(s, row) if event else None
            status = row.status
        if event:
            core.notify(event, payload)
        return status

    def volume_update(self, volume_id: str, expected_status: str | None = None, **changes) -> str | None:
        """Apply an agent's report (only while the status is ``expected_status``, if given);
        the status after it."""
        return self._update(m.Volume, "volume", volume_id, changes, expected_status)

    def snapshot_update(self, snapshot_id: str, expected_status: str | None = None, **changes) -> str | None:
        return self._update(m.Snapshot, "snapshot", snapshot_id, changes, expected_status)

    def backup_update(self, backup_id: str, expected_status: str | None = None, **changes) -> str | None:
        return self._update(m.Backup, "backup", backup_id, changes, expected_status)

    def volume_destroyed(self, volume_id: str) -> None:
        core.destroy_volume(volume_id)

    def snapshot_destroyed(self, snapshot_id: str) -> None:
        core.destroy_snapshot(snapshot_id)

    def backup_destroyed(self, backup_id: str) -> None:
        with db.transaction() as s:
            b = s.get(m.Backup, backup_id)
            if b is not None and not b.deleted:
                b.deleted, b.status, b.updated_at = True, "deleted", utcnow()

    # -- services

    def service_report(self, host: str, binary: str, zone: str, capabilities: dict | None = None) -> dict:
        now = utcnow()
        with db.transaction() as s:
            svc = s.scalar(sa.select(m.Service).where(m.Service.host == host, m.Service.binary == binary))
            if svc is None:
                svc = m.Service(uuid=str(uuidlib.uuid4()), host=host, binary=binary, zone=zone, disabled=False,
                                created_at=now, capabilities={})
                s.add(svc)
            svc.last_seen_up, svc.updated_at, svc.zone = now, now, zone
            if capabilities is not None:
                svc.capabilities = capabilities
            s.flush()
            return {"uuid": svc.uuid, "disabled": svc.disabled, "updated_at": iso(now)}
