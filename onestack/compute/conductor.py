"""The conductor: the compute agents' only door to the database (bus topic ``compute.conductor``).

Agents ask it for an instance, report task and power states, action events
and their host's heartbeat and resources. It also runs a build: ask the
scheduler, then cast the build to each chosen host (book ch. 4, step 7).
"""

from __future__ import annotations

import logging
import time
import uuid as uuidlib
from datetime import timedelta

import sqlalchemy as sa

from onestack.common import bus, db, errors
from onestack.common.timeutils import iso, parse_iso, utcnow
from onestack.compute import clients, consoles, instances, states
from onestack.compute import models as m
from onestack.compute.clients import release_allocations
from onestack.compute.resources import volume_backed

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
                    row.availability_zone = dest.get("zone") or row.availability_zone  # its host's zone
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

    def expire_builds(self, timeout: int) -> list[str]:
        """Servers building with no progress for ``timeout`` seconds (Nova's
        instance_build_timeout): their build request or a host's answer was lost (the
        message bus went away meanwhile), so they go to ERROR with a fault rather than
        stay in BUILD for good. Their uuids."""
        cutoff = utcnow() - timedelta(seconds=timeout)
        with db.session() as s:
            stale = list(s.scalars(sa.select(m.Instance.uuid).where(
                m.Instance.vm_state == states.BUILDING, m.Instance.deleted.is_(False),
                m.Instance.updated_at < cutoff)))
        if stale:
            log.warning("builds of %s timed out after %d s", ", ".join(stale), timeout)
            instances.fail_builds(stale, f"Build timed out after {timeout} s (compute.build_timeout): "
                                         "its request or its host's answer was lost")
            for uuid in stale:
                release_allocations(uuid)
        return stale

    def recover_builds(self) -> list[str]:
        """At start, before the APIs serve: servers still scheduling were in the hands of the
        conductor that ran before this one, and its requests died with it (the bus keeps no
        message for a server that is gone). They go to ERROR with a fault, on no host (an
        agent that had begun one moved it past scheduling). Their uuids: the room the
        scheduler may have claimed for them is to be given back once Placement answers."""
        with db.transaction() as s:
            lost = list(s.scalars(sa.select(m.Instance).where(
                m.Instance.vm_state == states.BUILDING, m.Instance.task_state == states.SCHEDULING,
                m.Instance.deleted.is_(False))))
            for inst in lost:
                inst.vm_state, inst.task_state, inst.host, inst.node = states.ERROR, None, None, None
                inst.fault = instances.fault(500, f"Build of instance {inst.uuid} aborted: the compute "
                                                  "conductor restarted while scheduling it.")
                inst.updated_at = utcnow()
        if lost:
            log.warning("builds of %s were lost in a restart while scheduling: ERROR",
                        ", ".join(i.uuid for i in lost))
        return [i.uuid for i in lost]

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

    def metering_instances(self, hosts: list[str]) -> list[dict]:
        """What the telemetry collector charges its guests' measures to: the servers of these
        hosts (one call per poll for every host of a node, simulated ones included)."""
        out = []
        with db.session() as s:
            for i in range(0, len(hosts), 500):  # (bounded IN lists)
                rows = s.execute(sa.select(
                    m.Instance.uuid, m.Instance.project_id, m.Instance.user_id, m.Instance.name, m.Instance.host,
                    m.Instance.image_ref, m.Instance.flavor, m.Instance.metadata_).where(
                    m.Instance.host.in_(hosts[i:i + 500]), m.Instance.deleted.is_(False)))
                out += [{"uuid": r.uuid, "project_id": r.project_id, "user_id": r.user_id, "name": r.name,
                         "host": r.host, "image_ref": r.image_ref, "flavor": r.flavor, "metadata": r.metadata_}
                        for r in rows]
        return out

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
            before = (inst.vm_state, inst.flavor.get("id") if inst.flavor else None)
            for k, v in changes.items():
                if k in ("launched_at", "terminated_at") and isinstance(v, str):
                    v = parse_iso(v)
                setattr(inst, k, v)
            inst.updated_at = utcnow()
            after = (inst.vm_state, inst.flavor.get("id") if inst.flavor else None)
            if before[0] == states.BUILDING and after[0] == states.ACTIVE:
                instances.notify_later(s, "create.end", inst)
            elif before != after:  # a new state, or resized
                instances.notify_later(s, "update", inst)
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
            # a move never confirmed: its migration still holds the source's room
            moving = list(s.scalars(sa.select(m.Migration.uuid).where(
                m.Migration.instance_uuid == instance_uuid, m.Migration.status.not_in(_MIGRATION_DONE))))
        release_allocations(instance_uuid)
        for migration in moving:
            release_allocations(migration)

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
        if any(x["new"] for x in out.values()):
            self.scheduler.invalidate()  # a new host is a candidate at once
        return out

    def heartbeat_many(self, hosts: list[str], binary: str = "nova-compute") -> None:
        """One write for many (simulated) hosts' heartbeats."""
        now = utcnow()
        with db.transaction() as s:
            s.execute(sa.update(m.Service).where(m.Service.host.in_(hosts), m.Service.binary == binary)
                      .values(last_seen_up=now, updated_at=now))


    # -- moves between hosts (onestack.compute.moves starts them; the agents of the two hosts
    # do them and report the migration's status here)

    def migration_get(self, migration_uuid: str) -> dict | None:
        with db.session() as s:
            mig = s.scalar(sa.select(m.Migration).where(m.Migration.uuid == migration_uuid))
            return migration_dict(mig) if mig is not None else None

    def migration_update(self, migration_uuid: str, **changes) -> dict | None:
        bad = set(changes) - _MIGRATION_WRITABLE
        if bad:
            raise errors.BadRequest(f"agents may not change {sorted(bad)} of a migration")
        with db.transaction() as s:
            mig = s.scalar(sa.select(m.Migration).where(m.Migration.uuid == migration_uuid))
            if mig is None:
                return None
            for k, v in changes.items():
                setattr(mig, k, v)
            mig.updated_at = utcnow()
            return migration_dict(mig)

    def unconfirmed_migration(self, instance_uuid: str) -> dict | None:
        """The server's cold migration or resize waiting to be confirmed (VERIFY_RESIZE)."""
        with db.session() as s:
            mig = s.scalar(sa.select(m.Migration).where(
                m.Migration.instance_uuid == instance_uuid, m.Migration.status == "finished",
                m.Migration.migration_type.in_(("migration", "resize"))).order_by(m.Migration.id.desc()))
            return migration_dict(mig) if mig is not None else None

    def evacuations_from(self, host: str) -> list[dict]:
        """Evacuations done away from ``host``: its copies of those servers are stale."""
        with db.session() as s:
            rows = s.scalars(sa.select(m.Migration).where(
                m.Migration.migration_type == "evacuation", m.Migration.source_compute == host,
                m.Migration.status == "done"))
            return [migration_dict(r) for r in rows]

    def migrate_server(self, instance_uuid: str, migration_uuid: str, flavor: dict, host: str | None = None,
                       same_host: bool = False, request_id: str = "") -> None:
        """Cold migration or resize: a destination claimed, then the source's agent moves it."""
        self._move(instance_uuid, migration_uuid, request_id, "conductor_migrate_server", "resize_instance",
                   flavor=flavor, host=host, same_host=same_host, migration_consumer=True,
                   cast_to="source", new_flavor=flavor)

    def live_migrate_instance(self, instance_uuid: str, migration_uuid: str, host: str | None = None,
                              block_migration: bool | None = None, request_id: str = "") -> None:
        self._move(instance_uuid, migration_uuid, request_id, "conductor_live_migrate_instance",
                   "live_migration", host=host, migration_consumer=True, cast_to="source",
                   block_migration=block_migration)

    def evacuate_instance(self, instance_uuid: str, migration_uuid: str, host: str | None = None,
                          request_id: str = "") -> None:
        """The server rebuilt on another host (its own is down): it keeps its room on the dead
        host beside the new one until that host comes back and cleans up, as in Nova."""
        self._move(instance_uuid, migration_uuid, request_id, "conductor_rebuild_server", "evacuate_instance",
                   host=host, migration_consumer=False, cast_to="dest", error_state=states.ERROR)

    def _move(self, instance_uuid: str, migration_uuid: str, request_id: str, event: str, method: str, *,
              flavor: dict | None = None, host: str | None = None, same_host: bool = False,
              migration_consumer: bool, cast_to: str, error_state: str | None = None, **kwargs) -> None:
        with db.session() as s:
            inst = s.get(m.Instance, instance_uuid)
            if inst is None or inst.deleted:
                return
            spec = {"flavor": flavor or dict(inst.flavor), "group": inst.server_group,
                    "availability_zone": None if host else inst.availability_zone, "force_host": host,
                    "ignore_hosts": [] if same_host else [inst.host],
                    "volume_backed": volume_backed(inst.block_device_mapping),
                    "move": {"migration": migration_uuid if migration_consumer else None}}
            source, project_id, user_id = inst.host, inst.project_id, inst.user_id
        self.action_event(instance_uuid, request_id, event, "start")
        try:
            dest = self.scheduler.select_destinations(spec, [instance_uuid], project_id, user_id)[0]
            reason = getattr(self.scheduler, "last_reason", "") or "no host passed the filters"
        except Exception as e:  # placement down, ...
            log.exception("scheduling the move of %s failed", instance_uuid)
            dest, reason = None, str(e)
        if dest is None:
            self._move_failed(instance_uuid, migration_uuid, request_id, event,
                              f"No valid host was found. {reason}", error_state)
            return
        with db.transaction() as s:
            node = s.scalar(sa.select(m.ComputeNode).where(m.ComputeNode.hypervisor_hostname == dest["node"]))
            mig = s.scalar(sa.select(m.Migration).where(m.Migration.uuid == migration_uuid))
            mig.dest_compute, mig.dest_node = dest["host"], dest["node"]
            mig.dest_host = node.host_ip if node is not None else None
            mig.updated_at = utcnow()
        self.action_event(instance_uuid, request_id, event, "finish", result="Success")
        target = source if cast_to == "source" else dest["host"]
        try:
            bus.get().cast_sync(f"compute.{target}", method, instance_uuid=instance_uuid,
                                migration_uuid=migration_uuid, request_id=request_id, **kwargs)
        except errors.ApiError as e:
            self._undo_claim(instance_uuid, migration_uuid, migration_consumer, dest["uuid"])
            self._move_failed(instance_uuid, migration_uuid, request_id, event,
                              f"Compute host {target} is unreachable: {e.message}", error_state)

    def _undo_claim(self, instance_uuid: str, migration_uuid: str, migration_consumer: bool, dest_rp: str) -> None:
        p = clients.get().placement
        try:
            if migration_consumer:
                p.revert_move(instance_uuid, migration_uuid)
            else:
                p.drop_provider(instance_uuid, dest_rp)
        except errors.ApiError as e:
            log.warning("the claim of the move of %s was not undone: %s", instance_uuid, e.message)

    def _move_failed(self, instance_uuid: str, migration_uuid: str, request_id: str, event: str, message: str,
                     error_state: str | None) -> None:
        """A move that never left its source: the server as it was (or ``error_state``), with
        a fault; the migration in error."""
        with db.transaction() as s:
            mig = s.scalar(sa.select(m.Migration).where(m.Migration.uuid == migration_uuid))
            if mig is not None:
                mig.status, mig.updated_at = "error", utcnow()
            inst = s.get(m.Instance, instance_uuid)
            if inst is not None and not inst.deleted:
                inst.task_state, inst.updated_at = None, utcnow()
                inst.vm_state = error_state or inst.vm_state
                inst.fault = instances.fault(500 if error_state else 400, message)
        self.action_event(instance_uuid, request_id, event, "finish", result="Error", details=message)


_MIGRATION_DONE = ("confirmed", "reverted", "completed", "done", "error", "failed", "cancelled")
_MIGRATION_WRITABLE = {"status", "memory_total", "memory_processed", "memory_remaining", "disk_total",
                       "disk_processed", "disk_remaining"}
_MIGRATION_FIELDS = ("id", "uuid", "instance_uuid", "migration_type", "status", "source_compute", "source_node",
                     "dest_compute", "dest_node", "dest_host")


def migration_dict(mig: m.Migration) -> dict:
    return {k: getattr(mig, k) for k in _MIGRATION_FIELDS}
