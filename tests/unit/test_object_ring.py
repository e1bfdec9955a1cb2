"""The object ring: hashing, balanced placement, minimal movement, files."""

import hashlib
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onestack.config import load
from onestack.object_store.ring import EMPTY, Ring, RingError, ensure_default, ring_path


def make_ring(devices, part_power=8, replicas=3):
    """devices: [(zone, weight)]"""
    ring = Ring(part_power, replicas)
    for i, (zone, weight) in enumerate(devices, 1):
        ring.add_device(f"d{i}", zone, weight, f"/srv/d{i}")
    ring.rebalance()
    return ring


def placements(ring):
    return [[row[p] for row in ring.table] for p in range(ring.partitions)]


def check_placement(ring):
    """Every partition on `replicas` distinct devices, in distinct zones when possible."""
    zone_of = {d.id: d.zone for d in ring.devices}
    zones = len({d.zone for d in ring.devices if d.weight > 0})
    cap = math.ceil(ring.replicas / zones)
    for devs in placements(ring):
        assert EMPTY not in devs
        assert len(set(devs)) == ring.replicas
        used = [zone_of[d] for d in devs]
        assert max(used.count(z) for z in used) <= cap


def test_hash_path_is_swifts():
    ring = Ring(10, 3, hash_prefix="pre", hash_suffix="suf")
    want = hashlib.md5(b"pre/AUTH_a/c/o/bj\xc3\xa9suf").hexdigest()
    assert ring.hash_path("AUTH_a", "c", "o/bj\u00e9") == want
    assert ring.get_part("AUTH_a", "c", "o/bj\u00e9") == int(want[:8], 16) >> 22
    assert ring.hash_path("AUTH_a") != ring.hash_path("AUTH_a", "c")
    with pytest.raises(ValueError):
        ring.hash_path("AUTH_a", None, "o")
    # every cluster gets its own secret
    assert Ring(10, 3).hash_path("AUTH_a") != Ring(10, 3).hash_path("AUTH_a")


def test_balanced_by_weight_and_distinct_zones():
    ring = make_ring([(1, 100), (1, 100), (2, 200), (3, 100), (3, 150), (4, 200)], part_power=10)
    check_placement(ring)
    d = ring.describe()
    assert d["balance"] < 1.0
    assert d["crowded_partitions"] == 0
    assert sum(dev["partitions"] for dev in d["devices"]) == 1024 * 3


def test_fewer_zones_than_replicas_still_spreads():
    ring = make_ring([(1, 100), (1, 100), (2, 100), (2, 100)])
    check_placement(ring)  # cap 2 per zone: every partition touches both zones
    assert ring.describe()["balance"] < 1.0


def test_dispersion_wins_over_weight():
    # zone 1 has twice the weight but may hold one replica of each partition only
    ring = make_ring([(1, 100), (1, 100), (2, 100), (3, 100)])
    check_placement(ring)
    held = {dev["name"]: dev["partitions"] for dev in ring.describe()["devices"]}
    assert held == {"d1": 128, "d2": 128, "d3": 256, "d4": 256}


def test_adding_a_device_moves_only_its_share():
    ring = make_ring([(1, 100), (2, 100), (3, 100)])
    before = placements(ring)
    ring.add_device("d4", 4, 100, "/srv/d4")
    moved = ring.rebalance()
    after = placements(ring)
    assert moved == 256 * 3 // 4  # exactly what d4 should hold
    assert sum(a != b for pa, pb in zip(before, after, strict=True)
               for a, b in zip(pa, pb, strict=True)) == moved
    # a partition moves at most one replica per rebalance
    assert all(sum(a != b for a, b in zip(pa, pb, strict=True)) <= 1
               for pa, pb in zip(before, after, strict=True))
    check_placement(ring)
    assert ring.describe()["balance"] == 0.0
    assert ring.rebalance() == 0  # nothing left to do


def test_weight_change_and_removal():
    ring = make_ring([(1, 100), (2, 100), (3, 100), (4, 50)])
    ring.set_weight("d4", 100)
    ring.rebalance()
    assert ring.describe()["balance"] == 0.0
    before = placements(ring)
    ring.remove_device("d2")
    # until the rebalance the device still serves its partitions
    assert any(2 in devs for devs in placements(ring))
    assert "removing" in json.dumps(ring.to_dict())
    ring.rebalance()
    assert [d.name for d in ring.devices] == ["d1", "d3", "d4"]
    check_placement(ring)
    # only the removed device's replicas moved
    for pa, pb in zip(before, placements(ring), strict=True):
        assert [a for a, b in zip(pa, pb, strict=True) if a != b] in ([], [2])


def test_rebalance_needs_enough_devices():
    ring = Ring(4, 3)
    ring.add_device("d1", 1, 100, "/a")
    ring.add_device("d2", 2, 100, "/b")
    with pytest.raises(RingError, match="at least 3 devices"):
        ring.rebalance()
    with pytest.raises(RingError, match="already"):
        ring.add_device("d1", 3, 100, "/c")
    with pytest.raises(RingError, match="no device"):
        ring.set_weight("d9", 1)


def test_get_nodes_stable_across_save_and_load(tmp_path):
    ring = make_ring([(1, 100), (2, 100), (3, 100), (4, 100)])
    path = tmp_path / "ring.json"
    ring.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["ring.json"]  # no temp file left
    again = Ring.load(path)
    for name in ("AUTH_a", ("AUTH_a", "c"), ("AUTH_a", "c", "o"), ("AUTH_b", "c", "\u00e9/x")):
        args = name if isinstance(name, tuple) else (name,)
        part, nodes = ring.get_nodes(*args)
        assert again.get_nodes(*args) == (part, nodes)
        assert len({n.id for n in nodes}) == 3
    assert again.describe() == ring.describe()


def test_handoffs_prefer_unused_zones():
    ring = make_ring([(1, 100), (2, 100), (3, 100), (1, 100), (4, 100)])
    for part in range(ring.partitions):
        primaries = {d.id for d in ring.get_part_nodes(part)}
        handoffs = list(ring.get_handoffs(part))
        assert {d.id for d in handoffs} == {d.id for d in ring.devices} - primaries
        zones = {d.zone for d in ring.get_part_nodes(part)}
        flags = [d.zone in zones for d in handoffs]
        assert flags == sorted(flags)  # unused zones first
        assert [d.id for d in ring.get_handoffs(part)] == [d.id for d in handoffs]


def test_load_errors(tmp_path):
    with pytest.raises(RingError, match="cannot read"):
        Ring.load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(RingError, match="not valid JSON"):
        Ring.load(tmp_path / "bad.json")


def test_ensure_default_creates_once(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n[object_store]\npart_power = 6\n')
    conf = load(cfg, env={})
    ring = ensure_default(conf)
    devices = tmp_path / "state" / "object" / "devices"
    assert sorted(p.name for p in devices.iterdir()) == ["d1", "d2", "d3"]
    assert [(d.name, d.zone, d.weight) for d in ring.devices] == [
        ("d1", 1, 100.0), ("d2", 2, 100.0), ("d3", 3, 100.0)]
    assert ring_path(conf).exists() and ring.partitions == 64
    # later starts load the same ring and never recreate a lost device
    (devices / "d2").rmdir()
    again = ensure_default(conf)
    assert again.hash_prefix == ring.hash_prefix
    assert not (devices / "d2").exists()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5), st.sampled_from([50, 100, 150, 300])),
                min_size=3, max_size=9),
       st.integers(1, 3))
def test_placement_rules_hold_for_any_devices(devices, replicas):
    ring = make_ring(devices, part_power=6, replicas=replicas)
    check_placement(ring)
    ring.add_device("new", 9, 100, "/srv/new")
    before = placements(ring)
    ring.rebalance()
    check_placement(ring)
    assert all(sum(a != b for a, b in zip(pa, pb, strict=True)) <= 1
               for pa, pb in zip(before, placements(ring), strict=True))


def test_cli_ring_and_passes(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from onestack.cli import app

    monkeypatch.setenv("ONESTACK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("ONESTACK_CONFIG", raising=False)
    run = CliRunner().invoke

    def ok(*args):
        r = run(app, ["object", *args])
        assert r.exit_code == 0, r.output
        return r.output

    assert run(app, ["object", "ring", "show"]).exit_code == 1
    ok("ring", "create", "--part-power", "4", "--replicas", "2")
    assert run(app, ["object", "ring", "create", "--part-power", "4"]).exit_code == 1
    for i in (1, 2, 3):
        (tmp_path / f"d{i}").mkdir()
        ok("ring", "add", "--name", f"d{i}", "--zone", str(i), "--path", str(tmp_path / f"d{i}"))
    assert "moved 32" in ok("ring", "rebalance")
    ok("ring", "set-weight", "d3", "50")
    ok("ring", "rebalance")
    shown = json.loads(ok("ring", "show", "--json"))
    assert [d["weight"] for d in shown["devices"]] == [100.0, 100.0, 50.0]
    assert run(app, ["object", "ring", "remove", "d9"]).exit_code == 1
    assert "objects copied 0" in ok("replicate")
    assert '"quarantined": 0' in ok("audit", "--json")
    (tmp_path / "d2").rmdir()
    assert "ready" in ok("device", "replace", "d2")
    assert (tmp_path / "d2").is_dir()
