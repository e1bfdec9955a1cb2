"""The scheduler: which host gets a new server (book ch. 4, steps 4-6).

Placement answers which compute nodes have room (allocation candidates, with
the allocation ratios in their inventories); the filters here drop hosts that
are disabled or down, in the wrong availability zone (an aggregate's), without
the aggregate metadata the flavor's extra specs ask for, or break a server
group's policy; the weigher ranks the rest (spread by default: most free RAM,
then most free VCPUs); the winner's resources are claimed in Placement before
the build goes to it, so two schedulers never give away the same room. A
multi-create's hosts are all chosen first and claimed in one request (all or
none); if Placement refuses that, each is claimed in turn, a refused host
giving way to the next.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import timedelta

import sqlalchemy as sa

from onestack.common import db, errors
from onestack.common.timeutils import utcnow
from onestack.compute import aggregates, clients, settings
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
    NODES_SECONDS = 60.0  # who the compute nodes are (host, node, zone): read again after this

    def __init__(self):
        self._hosts: dict[str, HostState] = {}
        self._loaded = 0.0
        self._nodes_loaded = 0.0
        self._lock = threading.Lock()

    def _host_states(self, wanted: Iterable[str] = ()) -> dict[str, HostState]:
        """Compute nodes by provider uuid, with their service's state (cached a moment). The
        nodes themselves are read once a while, or when one of ``wanted`` is not among them
        (a new one); at a refresh only the few services that are disabled, forced down or
        silent are read, not a thousand rows."""
        with self._lock:
            now = time.monotonic()
            if now - self._nodes_loaded >= self.CACHE_SECONDS and any(u not in self._hosts for u in wanted):
                self._loaded = self._nodes_loaded = 0.0
            if now - self._loaded < self.CACHE_SECONDS:
                return self._hosts
            down_after = settings.current.service_down_time
            cutoff = utcnow() - timedelta(seconds=down_after)
            nodes = sa.select(m.ComputeNode.uuid, m.ComputeNode.host, m.ComputeNode.hypervisor_hostname,
                              m.Service.zone, m.Service.disabled, m.Service.forced_down,
                              m.Service.last_seen_up).join(m.Service, m.Service.id == m.ComputeNode.service_id)
            with db.session() as s:
                if now - self._nodes_loaded >= self.NODES_SECONDS:
                    hosts = {uuid: HostState(host, node, uuid, zone, True, True)
                             for uuid, host, node, zone, *_ in s.execute(nodes)}
                    self._nodes_loaded = now
                else:
                    hosts = {uuid: replace(h, enabled=True, up=True) if not (h.enabled and h.up) else h
                             for uuid, h in self._hosts.items()}
                rows = s.execute(nodes.where(sa.or_(
                    m.Service.disabled.is_(True), m.Service.forced_down.is_(True),
                    m.Service.last_seen_up.is_(None), m.Service.last_seen_up < cutoff)))
                for uuid, host, node, zone, disabled, forced_down, seen in rows:
                    hosts[uuid] = HostState(host, node, uuid, zone, not disabled,
                                            not forced_down and seen is not None and seen >= cutoff)
            self._hosts, self._loaded = hosts, time.monotonic()
            return hosts

    def invalidate(self) -> None:
        with self._lock:
            self._loaded = self._nodes_loaded = 0.0

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

    def _aggregates(self, metadata: bool) -> tuple[dict[str, str], dict[str, dict[str, set[str]]]]:
        with db.session() as s:
            return aggregates.host_zones(s), aggregates.host_metadata(s) if metadata else {}

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
            # as Nova: at most max_placement_results candidates (Placement answers the first ones)
            got = clients.get().placement.candidates(resources,
                                                     limit=max(1, settings.current.max_placement_results))
        except errors.ApiError as e:
            raise NoValidHost(f"Placement could not be asked for candidates: {e.message}") from None
        # the compute nodes that can hold it all themselves (no nested providers here)
        candidates = [c.provider_uuid for c in got if list(c.allocations) == [c.provider_uuid]]
        summaries = {c.provider_uuid: c.summaries[c.provider_uuid] for c in got if c.provider_uuid in c.summaries}
        hosts = self._host_states(candidates)
        az, forced = spec.get("availability_zone"), spec.get("force_host")
        ignore = set(spec.get("ignore_hosts") or ())
        hints = spec.get("hints") or {}
        same, different = self._hint_hosts(hints.get("same_host")), self._hint_hosts(hints.get("different_host"))
        policy, group_hosts, per_host = self._group_hosts(spec.get("group"), set(instance_uuids))
        # aggregates (read afresh: a host added to a zone counts at once): an aggregate's zone
        # wins over the reported one; flavor extra specs scoped aggregate_instance_extra_specs
        # must match the metadata of the host's aggregates
        wanted = aggregates.scoped_specs(spec["flavor"].get("extra_specs"))
        zones, host_meta = self._aggregates(bool(wanted))
        reasons: list[str] = []
        passing = []
        for rp in candidates:
            h = hosts.get(rp)
            if h is None:
                continue
            if not (h.enabled and h.up):
                continue
            if az and not forced and zones.get(h.host, h.zone) != az:  # (a forced host skips it, as in Nova)
                continue
            if wanted and not aggregates.specs_match(host_meta.get(h.host, {}), wanted):
                continue
            if forced and forced not in (h.host, h.node):
                continue
            if h.host in ignore:  # a move's source (Nova's ignore_hosts)
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

        def placing() -> _Placing:
            return _Placing(passing, summaries, resources, policy, group_hosts, per_host,
                            spread=settings.current.weigher != "pack")

        chosen: list[HostState | None] | None = None
        if len(instance_uuids) > 1:
            # a multi-create: every host chosen here, then all claimed in one request
            plan = placing()
            chosen = [plan.choose() for _ in instance_uuids]
            claims = {u: {h.uuid: resources} for u, h in zip(instance_uuids, chosen, strict=True) if h}
            if claims and not self._claim_many(claims, project_id, user_id):
                chosen = None
        if chosen is None:  # one instance, or the batch was refused: one claim at a time
            plan = placing()
            chosen = [plan.choose(lambda h, u=u: self._claim(u, h.uuid, resources, project_id, user_id,
                                                             spec.get("move")))
                      for u in instance_uuids]
        out: list[dict | None] = []
        for uuid, h in zip(instance_uuids, chosen, strict=True):
            if h is None:
                why = reasons[0] if reasons else (
                    f"the server group's {policy} policy leaves no host" if policy else "no host could be claimed")
                log.info("no valid host for %s: %s", uuid, why)
                self.last_reason = why
                out.append(None)
            else:
                out.append({"host": h.host, "node": h.node, "uuid": h.uuid, "zone": zones.get(h.host, h.zone)})
        return out

    last_reason = ""

    def _claim_many(self, claims: dict, project_id: str, user_id: str) -> bool:
        try:
            return clients.get().placement.claim_many(claims, project_id, user_id)
        except errors.ApiError as e:
            log.warning("claiming %d instances at once failed, one at a time then: %s", len(claims), e.message)
            return False

    def _claim(self, consumer: str, rp: str, resources: dict, project_id: str, user_id: str,
               move: dict | None = None) -> bool:
        """Claim on ``rp`` for a consumer new to Placement (no read first); a generation race is
        retried by the client, a host with no room left is False. A move (``{"migration": uuid
        or None}``) claims for a server that holds room already: see ``PlacementClient.move``."""
        try:
            if move is not None:
                return clients.get().placement.move(consumer, {rp: resources}, move.get("migration"),
                                                    project_id, user_id)
            return clients.get().placement.claim(consumer, {rp: resources}, project_id, user_id,
                                                 consumer_generation=None)
        except errors.Conflict:
            return False


class _Placing:
    """The passing hosts in the weigher's order (spread: most free RAM, then VCPUs, first;
    pack: least first), as the instances of one request take room on them: a heap, so
    each choice costs a few steps rather than a sort of a thousand hosts."""

    def __init__(self, hosts: list[HostState], summaries: dict, resources: dict[str, int], policy: str | None,
                 group_hosts: set[str], per_host: int, spread: bool):
        self.resources, self.policy, self.group_hosts, self.per_host = resources, policy, group_hosts, per_host
        self.sign = -1 if spread else 1
        self.room = {h.uuid: {rc: x.get("capacity", 0) - x.get("used", 0)
                              for rc, x in summaries.get(h.uuid, {}).get("resources", {}).items()}
                     for h in hosts}
        self.heap = [(self._key(h), i, h) for i, h in enumerate(hosts)]
        heapq.heapify(self.heap)
        self.placed: dict[str, int] = {}

    def _key(self, h: HostState) -> tuple[int, int]:
        room = self.room[h.uuid]
        return self.sign * room.get("MEMORY_MB", 0), self.sign * room.get("VCPU", 0)

    def _policy_allows(self, h: HostState) -> bool:
        if self.policy == "affinity" and (self.group_hosts or self.placed):
            return h.host in self.group_hosts or h.host in self.placed
        if self.policy == "anti-affinity":
            return self.placed.get(h.host, 0) + (h.host in self.group_hosts) < self.per_host
        return True

    def choose(self, claim: Callable[[HostState], bool] | None = None) -> HostState | None:
        """The best host the group policy allows that has room left (and that ``claim``
        gets), its room taken; None if none. A host with no room left is dropped."""
        passed_over, chosen = [], None
        while self.heap:
            item = heapq.heappop(self.heap)
            h = item[2]
            if any(self.room[h.uuid].get(rc, 0) < n for rc, n in self.resources.items()):
                continue  # full (room only shrinks)
            if not self._policy_allows(h):
                passed_over.append(item)
                continue
            if claim is not None and not claim(h):
                continue  # Placement says it is full
            chosen = h
            break
        if chosen is not None:
            self.placed[chosen.host] = self.placed.get(chosen.host, 0) + 1
            for rc, n in self.resources.items():
                self.room[chosen.uuid][rc] = self.room[chosen.uuid].get(rc, 0) - n
            passed_over.append((self._key(chosen), item[1], chosen))
        for x in passed_over:
            heapq.heappush(self.heap, x)
        return chosen
