"""The conductor: the compute agents' only door to the database (bus topic ``compute.conductor``).

Agents ask it for an instance, report task and power states, action events
and their host's heartbeat and resources. It also runs a build: ask the
scheduler, then cast the build to each chosen host (book ch. 4, step 7).
"""

from __future__ import annotations

import logging
import time
import uuid as uuidlib

import sqlalchemy as sa

from onestack.common import bus, db, errors
from onestack.common.timeutils import iso, parse_iso, utcnow
from onestack.compute import consoles, instances, states
from onestack.compute import models as m
from onestack.compute.clients import release_allocations

log = logging.getLogger(__name__)

_FIELDS = ("uuid", "project_id", "user_id", "name", "hostname", "description", "image_ref", "flavor",
           "vm_state", "task_state", "power_state", "host", "node", "availability_zone", "key_name",
           "key_data", "user_data", "config_drive", "system_metadata", "tags", "security_groups",
           "requested_networks", "network_info", "block_device_mapping", "locked", "reservation_id",
           "launch_index", "server_group", "deleted")
_WRITABLE = {"vm_state", "task_state", "power_state", "host", "node", "network_info", "launched_at",
             "terminated_at", "fault", "progress", "image_ref", "flavor", "system_metadata",
             "requested_networks"}  # block device mappings change only through bdm_update/bdm_delete
_BDM_WRITABLE = {"attachment_id", "device", "volume_size"}
_NODE_FIELDS = ("hypervisor_type", "hypervisor_version", "vcpus", "memory_mb", "local_gb", "host_ip", "cpu_info")


def instance_dict(inst: m.Instance) -> dict:
    out = {k: getattr(inst, k) for k in _FIELDS}
    out["metadata"] = dict(inst.metadata_ or {})
    out["created_at"] = iso(inst.created_at)
    out["launched_at"] = iso(inst.launched_at)
    return out


class Conductor:
    def __init__(self, scheduler):
        self.scheduler = scheduler

    # -- builds

    def build_instances(self, instance_uuids: list[str], spec: dict, request_id: str) -> None:
        with db.session() as s:
            rows = [s.get(m.Instance, u) for u in instance_uuids]
        rows = [r for r in rows if r is not None and not r.deleted]
        if not rows:
            return
        try:
            started = time.perf_counter()
            dests = self.scheduler.select_destinations(spec, [r.uuid for r in rows], rows[0].project_id,
                                                       rows[0].user_id)
            log.info("scheduled %d instance(s) in %.1f ms", len(rows), (time.perf_counter() - started) * 1000)
        except Exception as e:  # placement down, ...: every instance fails to schedule
            log.exception("scheduling failed")
            dests = [None] * len(rows)
            self.scheduler.last_reason = str(e)
        for inst, dest in zip(rows, dests, strict=True):
            if dest is None:
                reason = getattr(self.scheduler, "last_reason", "") or "no host passed the filters"
                self._fail_schedule(inst.uuid, request_id, f"No valid host was found. {reason}")
                continue
            with db.transaction() as s:  # (no HTTP inside: SQLite has one writer)
                row = s.get(m.Instance, inst.uuid)
                gone = row is None or row.deleted
                if not gone:
                    row.host, row.node, row.updated_at = dest["host"], dest["node"], utcnow()
            if gone:  # deleted while scheduling: give the room back
                release_allocations(inst.uuid)
                continue
            try:
                bus.get().cast_sync(f"compute.{dest['host']}", "build_and_run_instance",
                                    instance_uuid=inst.uuid, request_id=request_id)
            except errors.ApiError as e:
                release_allocations(inst.uuid)
                self._fail_schedule(inst.uuid, request_id, f"Compute host {dest['host']} is unreachable: "
                                                            f"{e.message}")

    def _fail_schedule(self, uuid: str, request_id: str, message: str) -> None:
        with db.transaction() as s:
            inst = s.get(m.Instance, uuid)
            if inst is None or inst.deleted:
                return
            inst.vm_state, inst.task_state = states.ERROR, None
            inst.fault = instances.fault(500, message)
            inst.updated_at = utcnow()
        self.action_event(uuid, request_id, "conductor_schedule_and_build_instances", "start")
        self.action_event(uuid, request_id, "conductor_schedule_and_build_instances", "finish",
                          result="Error", details=message)

    # -- what agents read and write

    def instance_get(self, instance_uuid: str) -> dict | None:
        with db.session() as s:
            inst = s.get(m.Instance, instance_uuid)
            return instance_dict(inst) if inst is not None else None

    def instances_on_host(self, host: str) -> list[dict]:
        with db.session() as s:
            rows = s.scalars(sa.select(m.Instance).where(m.Instance.host == host, m.Instance.deleted.is_(False)))
            return [instance_dict(r) for r in rows]

    def instance_update(self, instance_uuid: str, expected_task_state=None, check: bool = False,
                        **changes) -> dict | None:
        """Apply an agent's report; with ``check``, only while task_state is ``expected_task_state``
        (a server being deleted is not made ACTIVE by a build finishing)."""
        bad = set(changes) - _WRITABLE
        if bad:
            raise errors.BadRequest(f"agents may not change {sorted(bad)}")
        with db.transaction() as s:
            inst = s.get(m.Instance, instance_uuid)
            if inst is None or inst.deleted:
                return None
            if check and inst.task_state != expected_task_state:
                return instance_dict(inst)
            for k, v in changes.items():
                if k in ("launched_at", "terminated_at") and isinstance(v, str):
                    v = parse_iso(v)
                setattr(inst, k, v)
            inst.updated_at = utcnow()
            return instance_dict(inst)

    # block device mappings: each change made in one transaction on the row as it is then
    # (the API appends mappings concurrently; an agent writing back a list it read earlier
    # would drop them)

    def bdm_update(self, instance_uuid: str, volume_id: str, **changes) -> dict | None:
        """Set fields of the server's mapping of ``volume_id``; the mapping after it (None: none)."""
        bad = set(changes) - _BDM_WRITABLE
        if bad:
            raise errors.BadRequest(f"agents may not change {sorted(bad)} of a block device mapping")
        with db.transaction() as s:
            inst = s.get(m.Instance, instance_uuid, with_for_update=True)
            if inst is None or inst.deleted:
                return None
            bdms = [dict(b) for b in inst.block_device_mapping or []]
            found = next((b for b in bdms if b.get("volume_id") == volume_id), None)
            if found is None:
                return None
            found.update(changes)
            inst.block_device_mapping = bdms
            inst.updated_at = utcnow()
            return dict(found)

    def bdm_delete(self, instance_uuid: str, volume_id: str) -> bool:
        """Remove the server's mapping of ``volume_id``; whether there was one."""
        with db.transaction() as s:
            inst = s.get(m.Instance, instance_uuid, with_for_update=True)
            if inst is None or inst.deleted:
                return False
            bdms = list(inst.block_device_mapping or [])
            kept = [b for b in bdms if b.get("volume_id") != volume_id]
            if len(kept) == len(bdms):
                return False
            inst.block_device_mapping = kept
            inst.updated_at = utcnow()
            return True

    def instance_destroyed(self, instance_uuid: str) -> None:
        """The agent removed the guest and its ports: the server is gone (and its console tokens)."""
        consoles.tokens.revoke_instance(instance_uuid)
        with db.transaction() as s:
            inst = s.get(m.Instance, instance_uuid)
            if inst is not None and not inst.deleted:
                instances.mark_deleted(s, inst)
        release_allocations(instance_uuid)

    def action_event(self, instance_uuid: str, request_id: str, event: str, phase: str,
                     result: str | None = None, host: str | None = None, details: str | None = None,
                     traceback: str | None = None) -> None:
        now = utcnow()
        with db.transaction() as s:
            a = s.scalar(sa.select(m.InstanceAction).where(m.InstanceAction.instance_uuid == instance_uuid,
                                                           m.InstanceAction.request_id == request_id))
            if a is None:
                return
            if phase == "start":
                s.add(m.InstanceActionEvent(action_id=a.id, event=event, start_time=now, host=host))
            else:
                ev = s.scalar(sa.select(m.InstanceActionEvent).where(
                    m.InstanceActionEvent.action_id == a.id, m.InstanceActionEvent.event == event,
                    m.InstanceActionEvent.finish_time.is_(None)))
                if ev is None:
                    ev = m.InstanceActionEvent(action_id=a.id, event=event, start_time=now, host=host)
                    s.add(ev)
                ev.finish_time, ev.result, ev.details, ev.traceback = now, result, details, traceback
                if result == "Error":
                    a.message = "Error"
                a.finish_time = now
            a.updated_at = now

    # -- services

    def service_report(self, host: str, binary: str = "nova-compute", zone: str = "nova",
                       resources: dict | None = None) -> dict:
        """Heartbeat (and, for computes, the node's resources); returns the node's uuid."""
        now = utcnow()
        with db.transaction() as s:
            svc = s.scalar(sa.select(m.Service).where(m.Service.host == host, m.Service.binary == binary))
            if svc is None:
                svc = m.Service(uuid=str(uuidlib.uuid4()), host=host, binary=binary,
                                topic=binary.removeprefix("nova-"), zone=zone, disabled=False,
                                forced_down=False, created_at=now)
                s.add(svc)
                s.flush()
            svc.last_seen_up = now
            svc.updated_at = now
            if zone and svc.zone != zone and binary == "nova-compute":
                svc.zone = zone
            out = {"service_uuid": svc.uuid, "disabled": svc.disabled}
            if resources is not None:
                node = s.scalar(sa.select(m.ComputeNode).where(m.ComputeNode.hypervisor_hostname == host))
                if node is None:
                    node = m.ComputeNode(uuid=str(uuidlib.uuid4()), service_id=svc.id, host=host,
                                         hypervisor_hostname=host, created_at=now)
                    s.add(node)
                for k in _NODE_FIELDS:
                    if k in resources:
                        setattr(node, k, resources[k])
                node.updated_at = now
                out["node_uuid"] = node.uuid
            return out

    def compute_nodes_report(self, reports: list[dict]) -> dict[str, dict]:
        """Many hosts' ``nova-compute`` service and compute node rows in one transaction (a
        thousand simulated hosts register at once): ``reports`` are ``{host, zone, resources}``;
        returns ``{host: {"node_uuid", "new"}}``, ``new`` when the node row was made now."""
        now = utcnow()
        hosts = [r["host"] for r in reports]
        out: dict[str, dict] = {}
        with db.transaction() as s:
            services, nodes = {}, {}
            for i in range(0, len(hosts), 500):  # (bounded IN lists)
                chunk = hosts[i:i + 500]
                services.update((x.host, x) for x in s.scalars(sa.select(m.Service).where(
                    m.Service.host.in_(chunk), m.Service.binary == "nova-compute")))
                nodes.update((x.hypervisor_hostname, x) for x in s.scalars(sa.select(m.ComputeNode).where(
                    m.ComputeNode.hypervisor_hostname.in_(chunk))))
            for r in reports:
                host = r["host"]
                svc = services.get(host)
                if svc is None:
                    svc = services[host] = m.Service(
                        uuid=str(uuidlib.uuid4()), host=host, binary="nova-compute", topic="compute",
                        disabled=False, forced_down=False, created_at=now)
                    s.add(svc)
                svc.last_seen_up = svc.updated_at = now
                svc.zone = r.get("zone") or "nova"
            s.flush()  # (the new services' ids, for their nodes)
            for r in reports:
                host, res = r["host"], r.get("resources") or {}
                node = nodes.get(host)
                new = node is None
                if new:
                    node = nodes[host] = m.ComputeNode(uuid=str(uuidlib.uuid4()), service_id=services[host].id,
                                                       host=host, hypervisor_hostname=host, created_at=now)
                    s.add(node)
                for k in _NODE_FIELDS:
                    if k in res:
                        setattr(node, k, res[k])
                node.updated_at = now
                out[host] = {"node_uuid": node.uuid, "new": new}
        return out

    def heartbeat_many(self, hosts: list[str], binary: str = "nova-compute") -> None:
        """One write for many (simulated) hosts' heartbeats."""
        now = utcnow()
        with db.transaction() as s:
            s.execute(sa.update(m.Service).where(m.Service.host.in_(hosts), m.Service.binary == binary)
                      .values(last_seen_up=now, updated_at=now))

