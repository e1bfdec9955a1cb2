"""The scheduler: which host gets a new server (book ch. 4, steps 4-6).

Placement answers which compute nodes have room (allocation candidates, with
the allocation ratios in their inventories); the filters here drop hosts that
are disabled or down, in the wrong availability zone, or break a server
group's policy; the weigher ranks the rest (spread by default: most free RAM,
then most free VCPUs); the winner's resources are claimed in Placement before
the build goes to it, so two schedulers never give away the same room.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import sqlalchemy as sa

from onestack.common import db, errors
from onestack.common.timeutils import utcnow
from onestack.compute import clients, settings
from onestack.compute import models as m
from onestack.compute.resources import resources_of

log = logging.getLogger(__name__)


class NoValidHost(Exception):
    pass


@dataclass
class HostState:
    host: str
    node: str
    uuid: str
    zone: str
    enabled: bool
    up: bool


class Scheduler:
    """Served on bus topic ``compute.scheduler``; the conductor calls ``select_destinations``."""

    CACHE_SECONDS = 1.0

    def __init__(self):
        self._hosts: dict[str, HostState] = {}
        self._loaded = 0.0
        self._lock = threading.Lock()

    def _host_states(self) -> dict[str, HostState]:
        """Compute nodes by provider uuid, with their service's state (cached a moment)."""
        with self._lock:
            if time.monotonic() - self._loaded < self.CACHE_SECONDS:
                return self._hosts
            now = utcnow()
            down_after = settings.current.service_down_time
            out = {}
            with db.session() as s:
                rows = s.execute(sa.select(m.ComputeNode, m.Service).join(
                    m.Service, m.Service.id == m.ComputeNode.service_id))
                for node, svc in rows:
                    up = (not svc.forced_down and svc.last_seen_up is not None
                          and (now - svc.last_seen_up).total_seconds() <= down_after)
                    out[node.uuid] = HostState(node.host, node.hypervisor_hostname, node.uuid, svc.zone,
                                               not svc.disabled, up)
            self._hosts, self._loaded = out, time.monotonic()
            return out

    def invalidate(self) -> None:
        with self._lock:
            self._loaded = 0.0

    def _group_hosts(self, group: str | None, exclude: set[str]) -> tuple[str | None, set[str], int]:
        if not group:
            return None, set(), 0
        with db.session() as s:
            g = s.scalar(sa.select(m.ServerGroup).where(m.ServerGroup.uuid == group))
            if g is None:
                return None, set(), 0
            members = [u for u in (g.members or []) if u not in exclude]
            hosts = set(s.scalars(sa.select(m.Instance.host).where(
                m.Instance.uuid.in_(members), m.Instance.host.is_not(None), m.Instance.deleted.is_(False))))
            return g.policy, hosts, int((g.rules or {}).get("max_server_per_host", 1))

    def _hint_hosts(self, uuids) -> set[str]:
        if not uuids:
            return set()
        uuids = [uuids] if isinstance(uuids, str) else list(uuids)
        with db.session() as s:
            return set(s.scalars(sa.select(m.Instance.host).where(m.Instance.uuid.in_(uuids))))

    def select_destinations(self, spec: dict, instance_uuids: list[str], project_id: str,
                            user_id: str) -> list[dict | None]:
        """A host for each instance (claimed in Placement), or None where none fits."""
        resources = resources_of(spec["flavor"], bool(spec.get("volume_backed")))
        query = ",".join(f"{k}:{v}" for k, v in resources.items())
        try:
            got = clients.get().placement.get("/allocation_candidates", params={"resources": query},
                                              headers={"OpenStack-API-Version": "placement 1.29"})
        except errors.ApiError as e:
            raise NoValidHost(f"Placement could not be asked for candidates: {e.message}") from None
        summaries = got.get("provider_summaries", {})
        candidates = [next(iter(a["allocations"])) for a in got.get("allocation_requests", [])
                      if len(a["allocations"]) == 1]
        hosts = self._host_states()
        az, forced = spec.get("availability_zone"), spec.get("force_host")
        hints = spec.get("hints") or {}
        same, different = self._hint_hosts(hints.get("same_host")), self._hint_hosts(hints.get("different_host"))
        policy, group_hosts, per_host = self._group_hosts(spec.get("group"), set(instance_uuids))
        reasons: list[str] = []
        passing = []
        for rp in candidates:
            h = hosts.get(rp)
            if h is None:
                continue
            if not (h.enabled and h.up):
                continue
            if az and h.zone != az:
                continue
            if forced and forced not in (h.host, h.node):
                continue
            if same and h.host not in same:
                continue
            if different and h.host in different:
                continue
            passing.append(h)
        if not candidates:
            reasons.append("no compute node has room for " + query)
        elif not passing:
            reasons.append("no enabled and alive compute node in the requested zone passes the filters")

        def free(h: HostState) -> tuple[float, float]:
            r = summaries.get(h.uuid, {}).get("resources", {})
            def room(rc):
                x = r.get(rc, {})
                return x.get("capacity", 0) - x.get("used", 0)
            return room("MEMORY_MB"), room("VCPU")

        out: list[dict | None] = []
        placed: dict[str, int] = {}
        for uuid in instance_uuids:
            order = sorted(passing, key=free, reverse=settings.current.weigher != "pack")
            chosen = None
            for h in order:
                if policy in ("affinity",) and (group_hosts or placed) and h.host not in (group_hosts | set(placed)):
                    continue
                if policy == "anti-affinity":
                    count = placed.get(h.host, 0) + (1 if h.host in group_hosts else 0)
                    if count >= per_host:
                        continue
                if self._claim(uuid, h.uuid, resources, project_id, user_id):
                    chosen = h
                    break
            if chosen is None:
                why = reasons[0] if reasons else (
                    f"the server group's {policy} policy leaves no host" if policy else "no host could be claimed")
                out.append(None)
                log.info("no valid host for %s: %s", uuid, why)
                self.last_reason = why
                continue
            placed[chosen.host] = placed.get(chosen.host, 0) + 1
            r = summaries.setdefault(chosen.uuid, {}).setdefault("resources", {})
            for rc, n in resources.items():
                r.setdefault(rc, {"capacity": 0, "used": 0})["used"] = r.get(rc, {}).get("used", 0) + n
            out.append({"host": chosen.host, "node": chosen.node, "uuid": chosen.uuid})
        return out

    last_reason = ""

    def _claim(self, consumer: str, rp: str, resources: dict, project_id: str, user_id: str) -> bool:
        body = {"allocations": {rp: {"resources": resources}}, "project_id": project_id, "user_id": user_id,
                "consumer_generation": None}
        try:
            clients.get().placement.put(f"/allocations/{consumer}", json=body)
            return True
        except errors.Conflict:
            return False
