"""Placement's allocation-candidate search on a real (SQLite) database: flat
clouds, capacity and unit limits, traits, aggregates, nested trees, sharing
providers, granular groups with group_policy, same_subtree and root_required."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from onestack.common import db
from onestack.placement import candidates, core
from onestack.placement.allocations import ConsumerWrite, write
from onestack.placement.capacity import Inventory
from onestack.placement.core import INV, RP_TRAIT


@pytest.fixture
def s(tmp_path):
    db.configure(f"sqlite:///{tmp_path / 'placement.db'}")
    db.upgrade("placement")
    core.configure(None)
    with db.transaction() as sess:
        core.sync_standard(sess)
    with db.transaction() as sess:
        yield sess
    db.engine().dispose()


def rp(s, name, inv=None, parent=None, traits=(), aggs=()):
    """A provider with inventory {class: total or Inventory}, traits and aggregates."""
    p = core.create_provider(s, name, parent_uuid=parent.uuid if parent else None)
    ids = core.rc_ids(s, list(inv or {}))
    for rc, value in (inv or {}).items():
        i = value if isinstance(value, Inventory) else Inventory(total=value)
        s.execute(INV.insert().values(resource_provider_id=p.id, resource_class_id=ids[rc], **i.as_dict()))
    for t in traits:
        core.ensure_trait(s, t) if t.startswith("CUSTOM_") else None
    tids = core.trait_ids(s, traits)
    if tids:
        s.execute(RP_TRAIT.insert(), [{"resource_provider_id": p.id, "trait_id": t} for t in tids.values()])
    if aggs:
        core.set_aggregates(s, p.uuid, list(aggs), None, False)
    return p


def group(s, suffix="", required=(), forbidden=(), member_of=(), forbidden_aggs=(), in_tree=None, **res):
    rcs = core.rc_ids(s, list(res))
    tids = core.trait_ids(s, list(required) + list(forbidden))
    return candidates.Group(
        suffix=suffix, resources={rcs[k]: v for k, v in res.items()},
        required=[frozenset([tids[t]]) for t in required], forbidden=frozenset(tids[t] for t in forbidden),
        member_of=[frozenset(m) for m in member_of], forbidden_aggs=frozenset(forbidden_aggs), in_tree=in_tree)


def search(s, *groups, **kw):
    res = candidates.search(s, candidates.Query(list(groups), **kw))
    names = dict(s.execute(sa.select(core.RP.c.id, core.RP.c.name)).all())
    out = []
    for c in res.candidates:
        out.append({names[p]: {res.rc_names[rc]: n for rc, n in r.items()} for p, r in c.allocations.items()})
    return out, res, names


def test_flat_capacity_used_and_limit(s):
    a = rp(s, "a", {"VCPU": 4, "MEMORY_MB": 1024})
    rp(s, "b", {"VCPU": 4, "MEMORY_MB": 1024})
    rp(s, "c", {"VCPU": 4, "MEMORY_MB": 256})  # too little memory
    rp(s, "d", {"VCPU": 4})  # no memory at all
    write(s, [ConsumerWrite("11111111-1111-1111-1111-111111111111", {a.uuid: {"VCPU": 3}}, "p", "u")])
    got, res, _ = search(s, group(s, VCPU=1, MEMORY_MB=512))
    assert got == [{"a": {"VCPU": 1, "MEMORY_MB": 512}}, {"b": {"VCPU": 1, "MEMORY_MB": 512}}]
    summary = res.summaries[a.id]
    assert summary.resources == {"VCPU": (4, 3), "MEMORY_MB": (1024, 0)}
    got, _, _ = search(s, group(s, VCPU=2, MEMORY_MB=512))  # a has only 1 VCPU left
    assert got == [{"b": {"VCPU": 2, "MEMORY_MB": 512}}]
    got, res, _ = search(s, group(s, VCPU=1, MEMORY_MB=512), limit=1)
    assert len(got) == 1 and len(res.summaries) == 1


def test_overcommit_reserved_and_unit_limits(s):
    rp(s, "ratio", {"VCPU": Inventory(total=2, allocation_ratio=4.0)})
    rp(s, "reserved", {"VCPU": Inventory(total=8, reserved=7)})
    rp(s, "maxunit", {"VCPU": Inventory(total=64, max_unit=4)})
    rp(s, "step", {"VCPU": Inventory(total=64, step_size=3)})
    assert [next(iter(c)) for c in search(s, group(s, VCPU=6))[0]] == ["ratio", "step"]
    assert [next(iter(c)) for c in search(s, group(s, VCPU=1))[0]] == ["ratio", "reserved", "maxunit"]


def test_required_and_forbidden_traits_and_summaries(s):
    rp(s, "avx", {"VCPU": 4}, traits=["HW_CPU_X86_AVX2"])
    rp(s, "disabled", {"VCPU": 4}, traits=["HW_CPU_X86_AVX2", "COMPUTE_STATUS_DISABLED"])
    rp(s, "plain", {"VCPU": 4})
    got, res, names = search(s, group(s, VCPU=1, required=["HW_CPU_X86_AVX2"],
                                      forbidden=["COMPUTE_STATUS_DISABLED"]))
    assert [next(iter(c)) for c in got] == ["avx"]
    (summary,) = res.summaries.values()
    assert summary.traits == ["HW_CPU_X86_AVX2"]


def test_member_of_and_forbidden_aggregates(s):
    agg1, agg2 = "aaaaaaaa-0000-0000-0000-000000000001", "aaaaaaaa-0000-0000-0000-000000000002"
    rp(s, "in1", {"VCPU": 4}, aggs=[agg1])
    rp(s, "in2", {"VCPU": 4}, aggs=[agg2])
    rp(s, "both", {"VCPU": 4}, aggs=[agg1, agg2])
    rp(s, "none", {"VCPU": 4})

    def names(g):
        return [next(iter(c)) for c in search(s, g)[0]]

    assert names(group(s, VCPU=1, member_of=[{agg1, agg2}])) == ["in1", "in2", "both"]
    assert names(group(s, VCPU=1, member_of=[{agg1}, {agg2}])) == ["both"]
    assert names(group(s, VCPU=1, forbidden_aggs=[agg1])) == ["in2", "none"]


def _host(s, name="host"):
    root = rp(s, name, {"VCPU": 8, "MEMORY_MB": 4096}, traits=["COMPUTE_NODE"])
    pf1 = rp(s, name + "-pf1", {"SRIOV_NET_VF": 2}, parent=root, traits=["CUSTOM_PHYSNET1"])
    pf2 = rp(s, name + "-pf2", {"SRIOV_NET_VF": 2}, parent=root, traits=["CUSTOM_PHYSNET2"])
    return root, pf1, pf2


def test_nested_tree_and_version_before_nesting(s):
    root, pf1, pf2 = _host(s)
    got, res, names = search(s, group(s, VCPU=1, SRIOV_NET_VF=1))
    assert got == [{"host": {"VCPU": 1}, "host-pf1": {"SRIOV_NET_VF": 1}},
                   {"host": {"VCPU": 1}, "host-pf2": {"SRIOV_NET_VF": 1}}]
    # summaries cover the whole tree, with parents and roots
    assert {x.uuid for x in res.summaries.values()} == {root.uuid, pf1.uuid, pf2.uuid}
    assert res.summaries[pf1.id].parent_uuid == root.uuid and res.summaries[pf1.id].root_uuid == root.uuid
    # required traits of the unsuffixed group: found together on the providers serving it
    got, _, _ = search(s, group(s, VCPU=1, SRIOV_NET_VF=1, required=["CUSTOM_PHYSNET2", "COMPUTE_NODE"]))
    assert got == [{"host": {"VCPU": 1}, "host-pf2": {"SRIOV_NET_VF": 1}}]
    # before 1.29 providers below a root take no part
    assert search(s, group(s, VCPU=1, SRIOV_NET_VF=1), nested=False)[0] == []
    assert search(s, group(s, VCPU=1), nested=False)[0] == [{"host": {"VCPU": 1}}]


def test_granular_groups_and_group_policy(s):
    _host(s)
    g1 = group(s, "1", SRIOV_NET_VF=1)
    g2 = group(s, "2", SRIOV_NET_VF=1)
    isolated, res, names = search(s, group(s, VCPU=1), g1, g2, group_policy="isolate")
    assert len(isolated) == 2
    assert all(len(c) == 3 for c in isolated)  # host + both PFs
    shared = search(s, group(s, VCPU=1), g1, g2, group_policy="none")[0]
    assert len(shared) == 4  # also both VFs from pf1, or both from pf2
    assert {"host": {"VCPU": 1}, "host-pf1": {"SRIOV_NET_VF": 2}} in shared
    # mappings name the provider of each group
    c = res.candidates[0]
    assert set(c.mappings) == {"", "1", "2"} and c.mappings["1"] != c.mappings["2"]
    # merged amounts must still fit: 2 VFs + 1 VF on a PF of 2 does not
    g3 = group(s, "3", SRIOV_NET_VF=2)
    assert search(s, group(s, VCPU=1), g1, g3, group_policy="none")[0] == [
        {"host": {"VCPU": 1}, "host-pf1": {"SRIOV_NET_VF": 1}, "host-pf2": {"SRIOV_NET_VF": 2}},
        {"host": {"VCPU": 1}, "host-pf2": {"SRIOV_NET_VF": 1}, "host-pf1": {"SRIOV_NET_VF": 2}}]


def test_granular_group_traits_are_per_provider(s):
    _host(s)
    got = search(s, group(s, VCPU=1), group(s, "1", SRIOV_NET_VF=1, required=["CUSTOM_PHYSNET2"]))[0]
    assert got == [{"host": {"VCPU": 1}, "host-pf2": {"SRIOV_NET_VF": 1}}]


def test_sharing_provider(s):
    agg = "bbbbbbbb-0000-0000-0000-000000000001"
    rp(s, "cn1", {"VCPU": 4}, aggs=[agg])
    rp(s, "cn2", {"VCPU": 4}, aggs=[agg])
    rp(s, "lonely", {"VCPU": 4})
    rp(s, "nfs", {"DISK_GB": 100}, traits=["MISC_SHARES_VIA_AGGREGATE"], aggs=[agg])
    got = search(s, group(s, VCPU=1, DISK_GB=10))[0]
    assert got == [{"cn1": {"VCPU": 1}, "nfs": {"DISK_GB": 10}}, {"cn2": {"VCPU": 1}, "nfs": {"DISK_GB": 10}}]
    # the sharing provider alone, once (not once per tree it serves)
    assert search(s, group(s, DISK_GB=10))[0] == [{"nfs": {"DISK_GB": 10}}]


def test_same_subtree_with_resourceless_group(s):
    root = rp(s, "cn", {"VCPU": 4})
    for i in (1, 2):
        nic = rp(s, f"nic{i}", parent=root, traits=["CUSTOM_VNIC_DIRECT"])
        rp(s, f"port{i}", {"NET_BW_EGR_KILOBIT_PER_SEC": 1000}, parent=nic)
    bw = group(s, "_BW", NET_BW_EGR_KILOBIT_PER_SEC=100)
    nic = group(s, "_NIC", required=["CUSTOM_VNIC_DIRECT"])
    free = search(s, group(s, VCPU=1), bw, nic, group_policy="none")
    assert len(free[0]) == 4  # each port with either NIC mapped
    got, res, names = search(s, group(s, VCPU=1), bw, nic, group_policy="none", same_subtree=[["_BW", "_NIC"]])
    assert len(res.candidates) == 2
    for c in res.candidates:
        port, nic_ = names[c.mappings["_BW"][0]], names[c.mappings["_NIC"][0]]
        assert port[-1] == nic_[-1]


def test_root_required_and_in_tree(s):
    a = rp(s, "a", {"VCPU": 4}, traits=["COMPUTE_VOLUME_MULTI_ATTACH"])
    rp(s, "b", {"VCPU": 4})
    multi = core.trait_ids(s, ["COMPUTE_VOLUME_MULTI_ATTACH"])["COMPUTE_VOLUME_MULTI_ATTACH"]
    assert [next(iter(c)) for c in search(s, group(s, VCPU=1), root_required=[frozenset([multi])])[0]] == ["a"]
    assert [next(iter(c)) for c in search(s, group(s, VCPU=1), root_forbidden=frozenset([multi]))[0]] == ["b"]
    assert [next(iter(c)) for c in search(s, group(s, VCPU=1, in_tree=a.uuid))[0]] == ["a"]
    assert search(s, group(s, VCPU=1, in_tree="cccccccc-0000-0000-0000-000000000000"))[0] == []


def test_list_providers_filters(s):
    agg = "dddddddd-0000-0000-0000-000000000001"
    root, pf1, pf2 = _host(s)
    other = rp(s, "other", {"VCPU": 1}, aggs=[agg])
    vf = core.rc_ids(s, ["SRIOV_NET_VF"])["SRIOV_NET_VF"]
    vcpu = core.rc_ids(s, ["VCPU"])["VCPU"]
    phys1 = core.trait_ids(s, ["CUSTOM_PHYSNET1"])["CUSTOM_PHYSNET1"]

    def names(**kw):
        return [p.name for p in core.list_providers(s, core.ProviderFilter(**kw))]

    assert names(in_tree=pf2.uuid) == ["host", "host-pf1", "host-pf2"]
    assert names(resources={vf: 2}) == ["host-pf1", "host-pf2"]
    assert names(resources={vcpu: 2}) == ["host"]
    assert names(required=[frozenset([phys1])]) == ["host-pf1"]
    assert names(forbidden=frozenset([phys1]), resources={vf: 1}) == ["host-pf2"]
    assert names(member_of=[(frozenset([agg]), False)]) == ["other"]
    assert "other" not in names(member_of=[(frozenset([agg]), True)])
    assert names(name="host-pf1") == ["host-pf1"] and names(uuid=other.uuid) == ["other"]


def test_usual_request_in_sql_answers_as_the_general_search(s, monkeypatch):
    """One group of resources in a flat cloud is picked in SQL (first ``limit`` providers
    that fit): the same candidates and summaries as the general search, edge cases too."""
    rp(s, "ratio", {"VCPU": Inventory(total=3, allocation_ratio=1.5), "MEMORY_MB": 2048})  # 4.5 VCPUs
    rp(s, "reserved", {"VCPU": Inventory(total=8, reserved=6), "MEMORY_MB": 2048})
    rp(s, "maxunit", {"VCPU": Inventory(total=64, max_unit=2), "MEMORY_MB": 2048})
    rp(s, "minunit", {"VCPU": Inventory(total=64, min_unit=4), "MEMORY_MB": 2048})
    rp(s, "step", {"VCPU": Inventory(total=64, step_size=2), "MEMORY_MB": 2048})
    used = rp(s, "used", {"VCPU": 4, "MEMORY_MB": 2048})
    rp(s, "nomem", {"VCPU": 64})
    rp(s, "other", {"VCPU": 64, "MEMORY_MB": 2048, "DISK_GB": 100})  # its DISK_GB shows in summaries
    write(s, [ConsumerWrite("11111111-1111-1111-1111-111111111111", {used.uuid: {"VCPU": 2, "MEMORY_MB": 1024}},
                            "p", "u")])
    plain = []
    real = candidates._World._load_plain
    monkeypatch.setattr(candidates._World, "_load_plain", lambda w, *a: plain.append(real(w, *a)) or plain[-1])

    def both(*groups, **kw):
        plain.clear()
        fast = search(s, *groups, **kw)
        assert plain == [True]
        monkeypatch.setattr(candidates._World, "_load_plain", lambda w, *a: False)
        slow = search(s, *groups, **kw)
        monkeypatch.setattr(candidates._World, "_load_plain", lambda w, *a: plain.append(real(w, *a)) or plain[-1])
        assert fast[0] == slow[0]
        assert fast[1].summaries == slow[1].summaries
        return [next(iter(c)) for c in fast[0]]

    assert both(group(s, VCPU=1, MEMORY_MB=1024)) == ["ratio", "reserved", "maxunit", "used", "other"]
    assert both(group(s, VCPU=2, MEMORY_MB=1024)) == ["ratio", "reserved", "maxunit", "step", "used", "other"]
    assert both(group(s, VCPU=3, MEMORY_MB=1025)) == ["ratio", "other"]
    assert both(group(s, VCPU=4, MEMORY_MB=1024)) == ["ratio", "minunit", "step", "other"]
    assert both(group(s, VCPU=5, MEMORY_MB=1024)) == ["minunit", "other"]  # 5 > 4.5
    assert both(group(s, VCPU=1, MEMORY_MB=1024), limit=2) == ["ratio", "reserved"]
    # anything else takes the general search
    plain.clear()
    search(s, group(s, VCPU=1, required=["COMPUTE_NODE"]))
    assert plain == [False]
