"""The volume scheduler (bus topic ``volume.scheduler``): which backend gets a new volume.

Filters, as Cinder's defaults: the backend's service is enabled and up, in the
requested availability zone, serves the volume type's ``volume_backend_name``
(if the type names one), and has room: free capacity times the
over-subscription ratio, less what its volumes already take, must hold the
volume. The weigher prefers the most free room. A volume made from a snapshot
or another volume goes to its source's backend (the copy is local).
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from onestack.common import bus, db, errors
from onestack.common.timeutils import utcnow
from onestack.volume import core
from onestack.volume import models as m

log = logging.getLogger(__name__)


class Scheduler:
    def backends(self, s) -> list[m.Service]:
        return list(s.scalars(sa.select(m.Service).where(m.Service.binary == "cinder-volume")))

    def choose(self, s, v: m.Volume) -> tuple[str | None, str]:
        """(host@backend#pool, reason when none)."""
        if v.snapshot_id or v.source_volid:
            src = s.get(m.Snapshot, v.snapshot_id) if v.snapshot_id else None
            vol = s.get(m.Volume, src.volume_id if src else v.source_volid)
            if vol is not None and vol.host:
                return vol.host, ""
        wanted_backend = None
        if v.volume_type_id:
            t = s.get(m.VolumeType, v.volume_type_id)
            if t is not None:
                wanted_backend = (t.extra_specs or {}).get("volume_backend_name")
        best, best_room, reasons = None, None, []
        for svc in self.backends(s):
            caps = svc.capabilities or {}
            name = caps.get("volume_backend_name") or svc.host.split("@")[-1]
            if svc.disabled or not core.service_up(svc):
                reasons.append(f"{svc.host} is disabled or down")
                continue
            if svc.zone != v.availability_zone:
                reasons.append(f"{svc.host} is not in zone {v.availability_zone}")
                continue
            if wanted_backend and wanted_backend != name:
                reasons.append(f"{svc.host} is not backend {wanted_backend}")
                continue
            used = s.scalar(sa.select(sa.func.coalesce(sa.func.sum(m.Volume.size), 0)).where(
                m.Volume.deleted.is_(False), m.Volume.host.like(f"{svc.host}#%"))) or 0
            room = caps.get("total_capacity_gb", 0) * caps.get("max_over_subscription_ratio", 1.0) - used
            room = min(room, caps.get("free_capacity_gb", 0) * caps.get("max_over_subscription_ratio", 1.0))
            if room < v.size:
                reasons.append(f"{svc.host} has room for {int(room)} GiB")
                continue
            if best_room is None or room > best_room:
                best, best_room = svc, room
        if best is None:
            return None, "; ".join(reasons) or "no volume backend is registered"
        pool = (best.capabilities or {}).get("pool_name") or best.host.split("@")[-1]
        return f"{best.host}#{pool}", ""

    def create_volume(self, volume_id: str, request_id: str = "") -> None:
        with db.transaction() as s:
            v = s.get(m.Volume, volume_id)
            if v is None or v.deleted or v.status != "creating":
                return
            host, reason = self.choose(s, v)
            if host is None:
                log.warning("no backend for volume %s: %s", volume_id, reason)
                v.status, v.updated_at = "error", utcnow()
                return
            v.host, v.updated_at = host, utcnow()
        try:
            bus.get().cast_sync(f"volume.{host.split('#')[0]}", "create_volume", volume_id=volume_id)
        except errors.ApiError as e:
            log.warning("volume host %s unreachable: %s", host, e.message)
            with db.transaction() as s:
                v = s.get(m.Volume, volume_id)
                if v is not None and v.status == "creating":
                    v.status, v.updated_at = "error", utcnow()
