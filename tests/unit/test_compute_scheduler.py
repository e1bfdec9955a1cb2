"""The scheduler's choices against a stand-in Placement: spread and pack, group policies,
a multi-create claimed in one request, and one claim at a time when Placement refuses."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from onestack.common import db
from onestack.common.timeutils import utcnow
from onestack.compute import clients, settings
from onestack.compute import models as m
from onestack.compute.scheduler import HostState, Scheduler
from onestack.placement.client import Candidate

FLAVOR = {"vcpus": 1, "memory_mb": 1000, "root_gb": 1}


class FakePlacement:
    def __init__(self, free_mb: dict[str, int], batch_ok: bool = True, full: set[str] = frozenset()):
        self.free_mb, self.batch_ok, self.full = free_mb, batch_ok, set(full)
        self.batches: list[dict] = []
        self.claims: list[tuple[str, str]] = []
        self.limits: list[int | None] = []

    def candidates(self, resources, limit=None):
        self.limits.append(limit)
        return [Candidate(rp, {rp: dict(resources)}, {rp: {"resources": {
            "MEMORY_MB": {"capacity": mb, "used": 0}, "VCPU": {"capacity": 64, "used": 0},
            "DISK_GB": {"capacity": 100, "used": 0}}}}, {}) for rp, mb in self.free_mb.items()][:limit]

    def claim_many(self, claims, project_id, user_id):
        self.batches.append(claims)
        return self.batch_ok

    def claim(self, consumer, allocations, project_id, user_id, consumer_generation=None):
        (rp,) = allocations
        self.claims.append((consumer, rp))
        return rp not in self.full


@pytest.fixture
def sched(monkeypatch):
    def make(placement, group=(None, set(), 0), aggregates=({}, {})):
        monkeypatch.setattr(clients, "current", type("C", (), {"placement": placement})())
        s = Scheduler()
        monkeypatch.setattr(s, "_host_states", lambda wanted=(): {
            rp: HostState(rp, rp, rp, "nova", True, True) for rp in placement.free_mb})
        monkeypatch.setattr(s, "_group_hosts", lambda g, exclude: group)
        # (host zones, host metadata) of the aggregates
        monkeypatch.setattr(s, "_aggregates", lambda metadata: aggregates)
        return s
    yield make
    settings.current.weigher = "spread"
    settings.current.max_placement_results = 1000


def _hosts(out):
    return [d and d["host"] for d in out]


def test_spread_pack_and_one_batch_claim(sched):
    p = FakePlacement({"a": 4000, "b": 3000, "c": 2000})
    out = sched(p).select_destinations({"flavor": FLAVOR}, ["i1", "i2", "i3", "i4", "i5"], "p", "u")
    # most free RAM (then VCPUs) first, the room taken counted as it goes
    assert _hosts(out) == ["a", "b", "a", "c", "b"]
    res = {"VCPU": 1, "MEMORY_MB": 1000, "DISK_GB": 1}
    assert p.batches == [{f"i{n}": {h: res} for n, h in enumerate(_hosts(out), 1)}]
    assert p.claims == []
    settings.current.weigher = "pack"
    p = FakePlacement({"a": 4000, "b": 3000, "c": 2000})
    out = sched(p).select_destinations({"flavor": FLAVOR}, [f"i{n}" for n in range(10)], "p", "u")
    assert _hosts(out) == ["c", "c", "b", "b", "b", "a", "a", "a", "a", None]  # 9 fit, the 10th not


def test_refused_batch_claims_one_at_a_time(sched):
    p = FakePlacement({"a": 4000, "b": 3000, "c": 2000}, batch_ok=False, full={"a"})
    out = sched(p).select_destinations({"flavor": FLAVOR}, ["i1", "i2", "i3"], "p", "u")
    assert len(p.batches) == 1
    # Placement refuses host a (someone else filled it): it is dropped, the next host tried
    assert _hosts(out) == ["b", "c", "b"]
    assert p.claims == [("i1", "a"), ("i1", "b"), ("i2", "c"), ("i3", "b")]
    p = FakePlacement({"a": 4000})
    assert _hosts(sched(p).select_destinations({"flavor": FLAVOR}, ["one"], "p", "u")) == ["a"]
    assert p.batches == [] and p.claims == [("one", "a")]  # a single instance: its own claim


def test_group_policies(sched):
    p = FakePlacement({"a": 8000, "b": 8000, "c": 8000})
    out = sched(p, ("anti-affinity", {"a"}, 1)).select_destinations({"flavor": FLAVOR, "group": "g"},
                                                                   ["i1", "i2", "i3"], "p", "u")
    assert _hosts(out) == ["b", "c", None]
    out = sched(p, ("affinity", {"c"}, 1)).select_destinations({"flavor": FLAVOR, "group": "g"},
                                                              ["i1", "i2"], "p", "u")
    assert _hosts(out) == ["c", "c"]


def test_aggregate_zones_and_metadata(sched):
    p = FakePlacement({"a": 4000, "b": 3000, "c": 2000})
    aggs = ({"b": "east", "c": "east"}, {"c": {"disk": {"ssd"}, "tier": {"3", "1"}}})
    out = sched(p, aggregates=aggs).select_destinations(
        {"flavor": FLAVOR, "availability_zone": "east"}, ["i1", "i2"], "p", "u")
    assert _hosts(out) == ["b", "c"] and [d["zone"] for d in out] == ["east", "east"]
    # no zone asked: any host, each reported with its zone
    out = sched(p, aggregates=aggs).select_destinations({"flavor": FLAVOR}, ["i1"], "p", "u")
    assert out[0]["host"] == "a" and out[0]["zone"] == "nova"
    # a forced host skips the zone
    out = sched(p, aggregates=aggs).select_destinations(
        {"flavor": FLAVOR, "availability_zone": "east", "force_host": "a"}, ["i1"], "p", "u")
    assert _hosts(out) == ["a"]
    specs = {"aggregate_instance_extra_specs:disk": "ssd", "aggregate_instance_extra_specs:tier": ">= 2",
             "hw:cpu_policy": "shared"}  # (other scopes are not this filter's)
    out = sched(p, aggregates=aggs).select_destinations(
        {"flavor": {**FLAVOR, "extra_specs": specs}}, ["i1", "i2"], "p", "u")
    assert _hosts(out) == ["c", "c"]
    specs["aggregate_instance_extra_specs:tier"] = ">= 4"
    out = sched(p, aggregates=aggs).select_destinations(
        {"flavor": {**FLAVOR, "extra_specs": specs}}, ["i1"], "p", "u")
    assert _hosts(out) == [None]


def test_asks_placement_for_at_most_max_placement_results(sched):
    p = FakePlacement({"a": 2000, "b": 4000, "c": 3000})
    assert _hosts(sched(p).select_destinations({"flavor": FLAVOR}, ["i1"], "p", "u")) == ["b"]
    settings.current.max_placement_results = 2  # as Nova: only the first candidates are weighed
    assert _hosts(sched(p).select_destinations({"flavor": FLAVOR}, ["i2"], "p", "u")) == ["b"]
    settings.current.max_placement_results = 1
    assert _hosts(sched(p).select_destinations({"flavor": FLAVOR}, ["i3"], "p", "u")) == ["a"]
    assert p.limits == [1000, 2, 1]


def test_host_states_read_the_few_unusable_services(tmp_path, monkeypatch):
    """Nodes are read once a while; each refresh reads only the services that are disabled,
    forced down or silent, so a host coming back, going away or new is seen at once."""
    db.configure(f"sqlite:///{tmp_path / 'compute.db'}")
    db.upgrade("compute")
    now = utcnow()

    def node(s, name, seen=now, **svc):
        sv = m.Service(uuid=f"s-{name}", host=name, binary="nova-compute", topic="compute", zone="nova",
                       created_at=now, last_seen_up=seen, **svc)
        s.add(sv)
        s.flush()
        s.add(m.ComputeNode(uuid=f"n-{name}", service_id=sv.id, host=name, hypervisor_hostname=name,
                            hypervisor_type="fake", vcpus=1, memory_mb=1, local_gb=1, created_at=now))

    with db.transaction() as s:
        node(s, "ok")
        node(s, "off", disabled=True)
        node(s, "forced", forced_down=True)
        node(s, "silent", seen=now - timedelta(seconds=settings.current.service_down_time + 5))
        node(s, "never", seen=None)
    sched = Scheduler()
    monkeypatch.setattr(Scheduler, "CACHE_SECONDS", 0.0)

    def states(*wanted):
        return {h.host: (h.enabled, h.up) for h in sched._host_states(wanted).values()}

    assert states() == {"ok": (True, True), "off": (False, True), "forced": (True, False),
                        "silent": (True, False), "never": (True, False)}
    with db.transaction() as s:
        s.execute(sa.update(m.Service).values(disabled=False, forced_down=False, last_seen_up=now))
        s.execute(sa.update(m.Service).where(m.Service.host == "ok").values(disabled=True))
        node(s, "new")
    # (the nodes themselves are not read again: "new" waits until asked for)
    assert states() == {"ok": (False, True), "off": (True, True), "forced": (True, True),
                        "silent": (True, True), "never": (True, True)}
    assert states("n-new")["new"] == (True, True)
    db.engine().dispose()
