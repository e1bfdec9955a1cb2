"""The object storage layer on temporary device directories: LocalNode, the
account/container databases, replicator, auditor, expirer and agents."""

import hashlib
import os
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from onestack.object_store import agents, auditor, dbs, expirer, proxy, replicator
from onestack.object_store.node import AccountRow, ContainerRow, NodeUnavailable, NotEmpty
from onestack.object_store.ring import Ring
from onestack.object_store.storage import LocalNode

A, C = "AUTH_test", "photos"
_last = [0.0]


def ts() -> str:
    t = max(time.time(), _last[0] + 0.00001)
    _last[0] = t
    return f"{t:016.5f}"


class Cluster:
    def __init__(self, base: Path, devices: int = 3, replicas: int = 3):
        self.base = base
        self.ring = Ring(4, replicas)
        for i in range(1, devices + 1):
            (base / f"d{i}").mkdir()
            self.ring.add_device(f"d{i}", i, 100, str(base / f"d{i}"))
        self.ring.rebalance()
        self.nodes = {d.id: LocalNode(d) for d in self.ring.devices}

    def primaries(self, *names):
        part, devs = self.ring.get_nodes(*names)
        return part, [self.nodes[d.id] for d in devs]

    def put(self, obj, data=b"data", meta=None, nodes=None, timestamp=None, container=C):
        part, primaries = self.primaries(A, container, obj)
        timestamp = timestamp or ts()
        for n in primaries if nodes is None else nodes:
            w = n.object_writer(part, A, container, obj, timestamp)
            w.write(data)
            w.commit({"Content-Type": "text/plain", "ETag": hashlib.md5(data).hexdigest(),
                      "Content-Length": str(len(data)), "X-Timestamp": timestamp, **(meta or {})})
        return timestamp

    def get(self, node, obj, container=C):
        part, _ = self.primaries(A, container, obj)
        r = node.object_reader(part, A, container, obj)
        if r is None:
            return None
        try:
            return b"".join(r.read())
        finally:
            r.close()

    def info(self, node, obj):
        part, _ = self.primaries(A, C, obj)
        return node.object_info(part, A, C, obj)


@pytest.fixture
def cl(tmp_path):
    return Cluster(tmp_path)


def first(cl):
    return cl.nodes[1]


# --------------------------------------------------------------------------- objects


def test_write_read_range_and_metadata(cl):
    data = os.urandom(3 * 1024 * 1024 + 5)  # several pieces, checked while streaming
    t = cl.put("a/b.bin", data, {"X-Object-Meta-Color": "blue"})
    n = first(cl)
    info = cl.info(n, "a/b.bin")
    assert (info.timestamp, info.size, info.deleted, info.expired) == (t, len(data), False, False)
    assert info.metadata["X-Object-Meta-Color"] == "blue"
    assert info.metadata["ETag"] == hashlib.md5(data).hexdigest()
    assert info.metadata["X-Timestamp"] == t
    assert cl.get(n, "a/b.bin") == data
    part, _ = cl.primaries(A, C, "a/b.bin")
    r = n.object_reader(part, A, C, "a/b.bin")
    assert b"".join(r.read(1024 * 1024 - 2, 10)) == data[1024 * 1024 - 2:1024 * 1024 + 8]
    assert b"".join(r.read(len(data) - 3)) == data[-3:]
    r.close()
    # the sidecar names the object, as the replicator and expirer need
    side = next(Path(cl.ring.devices[0].path).rglob("*.data.json")).read_text()
    assert f'"/{A}/{C}/a/b.bin"' in side


def test_newest_wins_and_old_files_go(cl):
    n = first(cl)
    new = ts()
    old = ts()
    new, old = old, new  # old < new
    cl.put("o", b"new", nodes=[n], timestamp=new)
    cl.put("o", b"old", nodes=[n], timestamp=old)  # a late, older write changes nothing
    assert cl.get(n, "o") == b"new"
    cl.put("o", b"newer", nodes=[n])
    assert cl.get(n, "o") == b"newer"
    hdir = next(p for p in Path(n.root, "objects").rglob("*") if p.name.endswith(".data")).parent
    assert len(list(hdir.iterdir())) == 2  # one .data and its sidecar


def test_delete_and_tombstones(cl):
    n = first(cl)
    part, _ = cl.primaries(A, C, "o")
    assert n.object_delete(part, A, C, "o", ts()) is False  # nothing was there
    cl.put("o", b"x", nodes=[n])
    t = ts()
    assert n.object_delete(part, A, C, "o", t) is True
    info = cl.info(n, "o")
    assert info.deleted and info.timestamp == t and info.metadata == {}
    assert n.object_reader(part, A, C, "o") is None
    assert n.object_post(part, A, C, "o", ts(), {"X-Object-Meta-A": "1"}) is False
    cl.put("o", b"again", nodes=[n])  # a newer PUT beats the tombstone
    assert cl.get(n, "o") == b"again"


def test_post_replaces_user_metadata_only(cl):
    n = first(cl)
    part, _ = cl.primaries(A, C, "o")
    cl.put("o", b"abc", {"X-Object-Meta-Old": "1", "X-Object-Sysmeta-Keep": "s",
                         "Content-Disposition": "inline"}, nodes=[n])
    t = ts()
    assert n.object_post(part, A, C, "o", t, {"X-Object-Meta-New": "2",
                                               "content-type": "image/png"})
    meta = cl.info(n, "o").metadata
    assert meta["X-Object-Meta-New"] == "2" and "X-Object-Meta-Old" not in meta
    assert "Content-Disposition" not in meta  # replaced like any user metadata
    assert meta["content-type"] == "image/png" and "Content-Type" not in meta
    assert meta["ETag"] == hashlib.md5(b"abc").hexdigest() and meta["Content-Length"] == "3"
    assert meta["X-Object-Sysmeta-Keep"] == "s"
    assert meta["X-Timestamp"] == t and cl.info(n, "o").timestamp == t
    assert cl.get(n, "o") == b"abc"


def test_expiry(cl):
    n = first(cl)
    cl.put("soon", b"x", {"X-Delete-At": str(int(time.time()) + 3600)}, nodes=[n])
    assert cl.info(n, "soon").expired is False
    cl.put("gone", b"x", {"X-Delete-At": str(int(time.time()) - 1)}, nodes=[n])
    info = cl.info(n, "gone")
    assert info.expired and not info.deleted
    part, _ = cl.primaries(A, C, "gone")
    assert n.object_reader(part, A, C, "gone") is None
    assert n.object_delete(part, A, C, "gone", ts()) is False  # expired is not live


def test_writes_in_progress_are_invisible(cl):
    n = first(cl)
    part, _ = cl.primaries(A, C, "o")
    w = n.object_writer(part, A, C, "o", ts())
    w.write(b"partial")
    assert n.object_info(part, A, C, "o") is None
    assert not list(Path(n.root, "objects").rglob("*.data"))
    w.abort()
    assert list(Path(n.root, "tmp").iterdir()) == []
    assert n.object_info(part, A, C, "o") is None


def test_missing_device_is_unavailable_and_never_recreated(cl):
    n = first(cl)
    cl.put("o", b"x", nodes=[n])
    part, _ = cl.primaries(A, C, "o")
    w = n.object_writer(part, A, C, "o", ts())
    shutil.rmtree(n.root)
    row = ContainerRow("o", ts(), 1, "text/plain", "e")
    calls = [
        lambda: n.object_writer(part, A, C, "o", ts()),
        lambda: n.object_info(part, A, C, "o"),
        lambda: n.object_reader(part, A, C, "o"),
        lambda: n.object_post(part, A, C, "o", ts(), {}),
        lambda: n.object_delete(part, A, C, "o", ts()),
        lambda: n.container_put(part, A, C, ts(), {}),
        lambda: n.container_info(part, A, C),
        lambda: n.container_post(part, A, C, {}),
        lambda: n.container_delete(part, A, C, ts()),
        lambda: n.container_update(part, A, C, row),
        lambda: n.container_list(part, A, C, limit=10),
        lambda: n.account_put(part, A, ts()),
        lambda: n.account_info(part, A),
        lambda: n.account_post(part, A, {}),
        lambda: n.account_update(part, A, AccountRow(C, ts(), "0", 0, 0)),
        lambda: n.account_list(part, A, limit=10),
        lambda: w.write(b"more") or w.commit({"ETag": ""}),
    ]
    for call in calls:
        with pytest.raises(NodeUnavailable):
            call()
    assert not n.root.exists()


def test_corrupt_small_object_is_quarantined_on_read(cl):
    cl.put("o", b"good data")
    n = first(cl)
    data_file = next(Path(n.root, "objects").rglob("*.data"))
    data_file.write_bytes(b"evil data")  # same size, other bytes
    assert cl.get(n, "o") is None  # this replica declines; the proxy reads another
    assert list(Path(n.root, "quarantined", "objects").iterdir())
    assert cl.get(cl.nodes[2], "o") == b"good data"


def test_corrupt_large_object_fails_before_its_last_piece(cl):
    data = os.urandom(2 * 1024 * 1024 + 10)
    cl.put("big", data)
    n = first(cl)
    data_file = next(Path(n.root, "objects").rglob("*.data"))
    with open(data_file, "r+b") as f:
        f.seek(10)
        byte = f.read(1)[0]
        f.seek(10)
        f.write(bytes([byte ^ 0xFF]))  # always a different byte
    part, _ = cl.primaries(A, C, "big")
    r = n.object_reader(part, A, C, "big")
    got = []
    with pytest.raises(NodeUnavailable):
        for piece in r.read():
            got.append(piece)
    r.close()
    assert sum(map(len, got)) < len(data)
    assert n.object_info(part, A, C, "big") is None  # quarantined


# --------------------------------------------------------------------------- databases

NAMES = ["a", "a/", "a/b", "a/b/c", "a/d", "b", "b/x", "c", "\u00e9t\u00e9", "z",
         "\u4e2d\u6587", "\uff41", "\U0001f600"]


@pytest.fixture
def container(cl):
    n = first(cl)
    part, _ = cl.primaries(A, C)
    assert n.container_put(part, A, C, ts(), {"X-Container-Meta-A": ("1", ts())}) is True
    for name in NAMES:
        n.container_update(part, A, C, ContainerRow(name, ts(), len(name), "text/plain", "e"))
    return lambda **kw: [r if isinstance(r, str) else r.name
                         for r in n.container_list(part, A, C, **{"limit": 100, **kw})]


def test_listing_order_is_utf8_bytes(container):
    assert container() == sorted(NAMES, key=lambda s: s.encode())
    assert container(reverse=True) == sorted(NAMES, key=lambda s: s.encode(), reverse=True)
    assert container(limit=3) == ["a", "a/", "a/b"]


def test_listing_markers_and_prefix(container):
    assert container(marker="b", limit=3) == ["b/x", "c", "z"]
    assert container(marker="a/b", end_marker="b/x") == ["a/b/c", "a/d", "b"]
    assert container(prefix="a/") == ["a/", "a/b", "a/b/c", "a/d"]
    assert container(prefix="a/", marker="a/b") == ["a/b/c", "a/d"]
    assert container(reverse=True, marker="b", end_marker="a/b") == ["a/d", "a/b/c"]
    assert container(prefix="\u00e9") == ["\u00e9t\u00e9"]
    assert container(prefix="q") == []


def test_listing_delimiter_and_path(container):
    assert container(delimiter="/") == ["a", "a/", "b", "b/", "c", "z", "\u00e9t\u00e9",
                                        "\u4e2d\u6587", "\uff41", "\U0001f600"]
    assert container(delimiter="/", limit=3) == ["a", "a/", "b"]
    assert container(delimiter="/", marker="a/") == ["b", "b/", "c", "z", "\u00e9t\u00e9",
                                                     "\u4e2d\u6587", "\uff41", "\U0001f600"]
    assert container(prefix="a/", delimiter="/") == ["a/", "a/b", "a/b/", "a/d"]
    assert container(prefix="a/", delimiter="/", reverse=True) == ["a/d", "a/b/", "a/b", "a/"]
    # path=a: objects directly in "a/" (not the "a/" marker itself, nothing deeper)
    assert container(path="a") == ["a/b", "a/d"]
    assert container(path="a/b") == ["a/b/c"]
    # as Swift: a marker object one level down ("a/") is listed, "b/x" is not
    assert container(path="") == ["a", "a/", "b", "c", "z", "\u00e9t\u00e9", "\u4e2d\u6587",
                                  "\uff41", "\U0001f600"]


def test_container_stats_merge_and_delete(cl, container):
    n = first(cl)
    part, _ = cl.primaries(A, C)
    info = n.container_info(part, A, C)
    assert info.object_count == len(NAMES)
    assert info.bytes_used == sum(map(len, NAMES))
    assert info.metadata == {"X-Container-Meta-A": ("1", info.metadata["X-Container-Meta-A"][1])}
    old = dbs.norm(1)
    n.container_update(part, A, C, ContainerRow("a", old, 999, "x", "y", deleted=True))  # older
    assert n.container_info(part, A, C).object_count == len(NAMES)
    n.container_update(part, A, C, ContainerRow("a", ts(), 0, "", "", deleted=True))
    n.container_update(part, A, C, ContainerRow("b", ts(), 100, "text/plain", "e2"))
    info = n.container_info(part, A, C)
    assert info.object_count == len(NAMES) - 1
    assert info.bytes_used == sum(map(len, NAMES)) - 1 - 1 + 100
    assert "a" not in container()
    with pytest.raises(NotEmpty):
        n.container_delete(part, A, C, ts())
    for name in container():
        n.container_update(part, A, C, ContainerRow(name, ts(), 0, "", "", deleted=True))
    assert n.container_delete(part, A, C, ts()) is True
    assert n.container_info(part, A, C).deleted
    assert n.container_post(part, A, C, {"X-Container-Meta-B": ("2", ts())}) is False
    assert n.container_delete(part, A, C, ts()) is False
    assert n.container_put(part, A, C, ts(), {}) is True  # revived
    assert not n.container_info(part, A, C).deleted


def test_metadata_newest_wins_per_key(cl):
    n = first(cl)
    part, _ = cl.primaries(A, C)
    t1, t2, t3 = ts(), ts(), ts()
    n.container_put(part, A, C, t1, {"X-Container-Meta-A": ("new", t2), "X-Container-Read": (".r:*", t1)})
    n.container_post(part, A, C, {"x-container-meta-a": ("old", t1), "X-Container-Meta-B": ("b", t3)})
    meta = n.container_info(part, A, C).metadata
    assert meta["X-Container-Meta-A"] == ("new", t2)
    assert meta["X-Container-Meta-B"] == ("b", t3)
    n.container_post(part, A, C, {"X-Container-Read": ("", ts())})  # empty value: removed
    assert "X-Container-Read" not in n.container_info(part, A, C).metadata


def test_account_listing_and_stats(cl):
    n = first(cl)
    part, _ = cl.primaries(A)
    assert n.account_info(part, A) is None
    n.account_update(part, A, AccountRow("c1", ts(), "0", 1, 10))  # no db: ignored
    assert n.account_put(part, A, ts()) is True
    assert n.account_put(part, A, ts()) is False
    for name, objects, size in [("c1", 1, 10), ("c2", 2, 20), ("d/x", 3, 30)]:
        n.account_update(part, A, AccountRow(name, ts(), "0", objects, size))
    n.account_update(part, A, AccountRow("c2", ts(), "0", 5, 50))  # a newer report
    info = n.account_info(part, A)
    assert (info.container_count, info.object_count, info.bytes_used) == (3, 9, 90)
    rows = n.account_list(part, A, limit=10, delimiter="/")
    assert [r if isinstance(r, str) else (r.name, r.object_count) for r in rows] == [
        ("c1", 1), ("c2", 5), "d/"]
    n.account_update(part, A, AccountRow("c1", "0", ts(), 0, 0, deleted=True))
    info = n.account_info(part, A)
    assert (info.container_count, info.object_count, info.bytes_used) == (2, 8, 80)
    assert [r.name for r in n.account_list(part, A, limit=10, reverse=True)] == ["d/x", "c2"]
    assert n.account_post(part, A, {"X-Account-Meta-Quota-Bytes": ("100", ts())})
    assert n.account_info(part, A).metadata["X-Account-Meta-Quota-Bytes"][0] == "100"


def test_db_replication_is_a_newest_wins_merge(cl):
    n1, n2 = cl.nodes[1], cl.nodes[2]
    part, _ = cl.primaries(A, C)
    t = ts()
    for n in (n1, n2):
        n.container_put(part, A, C, t, {})
    n1.container_update(part, A, C, ContainerRow("x", ts(), 1, "a", "e1"))
    n2.container_update(part, A, C, ContainerRow("x", ts(), 2, "b", "e2"))  # newer
    n2.container_update(part, A, C, ContainerRow("only2", ts(), 3, "c", "e3"))
    n1.container_update(part, A, C, ContainerRow("only1", ts(), 4, "d", "e4"))
    n1.container_post(part, A, C, {"X-Container-Meta-M": ("m", ts())})
    stats = replicator.replicate(cl.ring)
    assert stats["dbs_merged"] >= 2 and stats["errors"] == 0
    for n in cl.nodes.values():  # the third replica was created by replication
        rows = n.container_list(part, A, C, limit=10)
        assert [(r.name, r.size, r.etag) for r in rows] == [
            ("only1", 4, "e4"), ("only2", 3, "e3"), ("x", 2, "e2")]
        info = n.container_info(part, A, C)
        assert (info.object_count, info.bytes_used) == (3, 9)
        assert info.metadata["X-Container-Meta-M"][0] == "m"
    again = replicator.replicate(cl.ring)
    assert again["rows_merged"] == 0  # sync points: nothing is pushed twice


# --------------------------------------------------------------------------- agents


def all_bytes(cl, obj):
    return [cl.get(n, obj) for n in cl.nodes.values()]


def test_replicator_refills_a_replaced_device(cl):
    cl.put("one", b"1")
    cl.put("two", b"2" * 5000, {"X-Delete-At": str(int(time.time()) + 3600)})
    part, nodes = cl.primaries(A, C)
    for n in nodes:
        n.container_put(part, A, C, ts(), {})
        n.container_update(part, A, C, ContainerRow("one", ts(), 1, "text/plain", "e"))
    apart, _ = cl.primaries(A)
    for n in nodes:
        n.account_put(apart, A, ts())
    lost = cl.nodes[2]
    shutil.rmtree(lost.root)
    stats = replicator.replicate(cl.ring)
    assert stats["devices_skipped"] == 1 and not lost.root.exists()
    assert cl.get(cl.nodes[1], "one") == b"1"
    lost.root.mkdir()  # the replaced, empty disk
    stats = replicator.replicate(cl.ring)
    assert stats["objects_copied"] == 2 and stats["dbs_merged"] == 2
    assert all_bytes(cl, "one") == [b"1"] * 3
    assert all_bytes(cl, "two") == [b"2" * 5000] * 3
    assert [r.name for r in lost.container_list(part, A, C, limit=10)] == ["one"]
    assert lost.account_info(apart, A) is not None
    assert list(Path(lost.root, "expiring").iterdir())  # expiry index follows the copy
    assert replicator.replicate(cl.ring)["objects_copied"] == 0


def test_replicator_spreads_tombstones_and_posts(cl):
    n1 = cl.nodes[1]
    cl.put("o", b"x")
    part, _ = cl.primaries(A, C, "o")
    n1.object_post(part, A, C, "o", ts(), {"X-Object-Meta-P": "1"})
    cl.put("gone", b"y")
    gpart, _ = cl.primaries(A, C, "gone")
    n1.object_delete(gpart, A, C, "gone", ts())
    replicator.replicate(cl.ring)
    for n in cl.nodes.values():
        assert cl.info(n, "o").metadata.get("X-Object-Meta-P") == "1"
        assert cl.info(n, "gone").deleted


def test_handoff_data_moves_to_primaries(tmp_path):
    cl = Cluster(tmp_path, devices=5)
    part, primaries = cl.primaries(A, C, "o")
    handoff = cl.nodes[next(cl.ring.get_handoffs(part)).id]
    cl.put("o", b"stood in", nodes=[primaries[0], handoff])  # two primaries were down
    cpart, cprim = cl.primaries(A, C)
    chandoff = cl.nodes[next(cl.ring.get_handoffs(cpart)).id]
    chandoff.container_put(cpart, A, C, ts(), {})
    stats = replicator.replicate(cl.ring)
    assert stats["handoffs_removed"] == 2
    assert [cl.get(n, "o") for n in primaries] == [b"stood in"] * 3
    assert cl.get(handoff, "o") is None
    assert not list(Path(handoff.root, "objects").rglob("*.data"))
    assert all(n.container_info(cpart, A, C) for n in cprim)
    assert chandoff.container_info(cpart, A, C) is None


def test_handoff_kept_while_a_primary_is_down(tmp_path):
    cl = Cluster(tmp_path, devices=4)
    part, primaries = cl.primaries(A, C, "o")
    handoff = cl.nodes[next(cl.ring.get_handoffs(part)).id]
    cl.put("o", b"x", nodes=[primaries[0], primaries[1], handoff])
    shutil.rmtree(primaries[2].root)
    assert replicator.replicate(cl.ring)["handoffs_removed"] == 0
    assert cl.get(handoff, "o") == b"x"
    primaries[2].root.mkdir()
    replicator.replicate(cl.ring)
    assert [cl.get(n, "o") for n in primaries] == [b"x"] * 3
    assert cl.get(handoff, "o") is None


def test_auditor_quarantines_and_replicator_restores(cl):
    data = b"precious" * 1000
    cl.put("o", data)
    n = first(cl)
    data_file = next(Path(n.root, "objects").rglob("*.data"))
    raw = bytearray(data_file.read_bytes())
    raw[100] ^= 0xFF
    data_file.write_bytes(bytes(raw))
    stats = auditor.audit(cl.ring)
    assert stats["quarantined"] == 1 and stats["objects"] == 3
    assert cl.info(n, "o") is None
    assert list(Path(n.root, "quarantined", "objects").iterdir())
    replicator.replicate(cl.ring)
    assert all_bytes(cl, "o") == [data] * 3
    assert auditor.audit(cl.ring)["quarantined"] == 0


def test_auditor_quarantines_a_bad_database(cl):
    part, nodes = cl.primaries(A, C)
    for n in nodes:
        n.container_put(part, A, C, ts(), {})
        n.container_update(part, A, C, ContainerRow("o", ts(), 1, "t", "e"))
    db = next(Path(nodes[0].root, "containers").rglob("*.db"))
    db.write_bytes(b"this is not sqlite" * 300)
    assert auditor.audit(cl.ring)["dbs_quarantined"] == 1
    assert nodes[0].container_info(part, A, C) is None
    replicator.replicate(cl.ring)
    assert [r.name for r in nodes[0].container_list(part, A, C, limit=5)] == ["o"]


def test_expirer_deletes_each_object_once(cl):
    past = str(int(time.time()) - 5)
    written = dbs.norm(time.time() - 10)  # before its delete-at, as the proxy requires
    cl.put("old", b"x", {"X-Delete-At": past}, timestamp=written)
    cl.put("later", b"x", {"X-Delete-At": str(int(time.time()) + 3600)})
    cl.put("reput", b"x", {"X-Delete-At": past}, timestamp=written)
    cl.put("reput", b"y")  # overwritten without expiry: must survive
    calls = []

    def delete(account, container, obj, timestamp):
        calls.append((account, container, obj, timestamp))
        part, nodes = cl.primaries(account, container, obj)
        for n in nodes:
            n.object_delete(part, account, container, obj, timestamp)

    stats = expirer.expire(cl.ring, delete)
    assert calls == [(A, C, "old", dbs.norm(past))]
    assert stats["deleted"] == 1
    assert all(cl.info(n, "old").deleted for n in cl.nodes.values())
    assert all(cl.get(n, "reput") == b"y" for n in cl.nodes.values())
    calls.clear()
    expirer.expire(cl.ring, delete)
    assert calls == []
    # entries of deleted objects are gone; the future one stays
    left = [p.name for n in cl.nodes.values() for p in Path(n.root, "expiring").iterdir()]
    assert len(left) == 3


def test_expirer_deletes_a_version_stamped_after_its_own_delete_at(cl):
    # X-Delete-After counts from when the request arrived; the write's timestamp may come
    # a little later, past the delete-at second. The tombstone must still win over it.
    delete_at = int(time.time()) - 5
    written = dbs.norm(delete_at + 0.3)
    cl.put("late", b"x", {"X-Delete-At": str(delete_at)}, timestamp=written)

    def delete(account, container, obj, timestamp):
        part, nodes = cl.primaries(account, container, obj)
        for n in nodes:
            n.object_delete(part, account, container, obj, timestamp)

    assert expirer.expire(cl.ring, delete)["deleted"] == 1
    assert all(cl.info(n, "late").deleted for n in cl.nodes.values())
    assert expirer.expire(cl.ring, delete)["expired"] == 0  # done, not retried forever


def test_expirer_retries_after_a_failed_delete(cl):
    cl.put("old", b"x", {"X-Delete-At": str(int(time.time()) - 5)},
           timestamp=dbs.norm(time.time() - 10))

    def broken(*args):
        raise RuntimeError("proxy down")

    assert expirer.expire(cl.ring, broken)["errors"] == 1
    seen = []
    expirer.expire(cl.ring, lambda *a: seen.append(a))
    assert len(seen) == 1


def test_agents_run_and_survive_errors(cl):
    o = SimpleNamespace(replicator_interval=0.01, auditor_interval=0.01, expirer_interval=0.01)
    calls = {"n": 0}

    class Flaky:
        @property
        def ring(self):
            calls["n"] += 1
            if calls["n"] % 2:
                raise RuntimeError("boom")
            return cl.ring

    running = agents.start(SimpleNamespace(object_store=o), Flaky(), lambda *a: None)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(running.passes) < 3:
            time.sleep(0.01)
        assert set(running.passes) == {"replicate", "audit", "expire"}
    finally:
        agents.stop()
    assert not any(t.is_alive() for t in running.threads)
    assert agents.run_once("audit", cl.ring)["devices"] == 3
    with pytest.raises(ValueError):
        agents.run_once("expire", cl.ring)


def test_copies_that_agree_are_never_all_quarantined(cl):
    """A wrong recorded md5 (copies agree with each other, not with it) is a
    metadata problem: neither the auditor nor a read sets the data aside."""
    part, nodes = cl.primaries(A, C, "o")
    t = ts()
    for n in nodes:
        w = n.object_writer(part, A, C, "o", t)
        w.write(b"the bytes")
        w.commit({"ETag": "0" * 32, "Content-Length": "9"})
    stats = auditor.audit(cl.ring)
    assert stats["quarantined"] == 0 and stats["bad_metadata"] == 3
    assert cl.get(nodes[0], "o") is None  # not served against its own ETag...
    assert all(cl.info(n, "o") is not None for n in nodes)  # ...but kept everywhere
    assert not any(Path(n.root, "quarantined").exists() for n in nodes)


def test_a_listing_skips_a_replica_without_the_database(tmp_path):
    """A container made while one primary was away lives on a handoff: that primary
    has no database, and the proxy's listing comes from a replica that has one."""
    cl = Cluster(tmp_path, devices=4)
    part, nodes = cl.primaries(A, C)
    apart, anodes = cl.primaries(A)
    for n in nodes[1:]:
        n.container_put(part, A, C, ts(), {})
        n.container_update(part, A, C, ContainerRow("o", ts(), 1, "t", "e"))
    for n in anodes[1:]:
        n.account_put(apart, A, ts())
        n.account_update(apart, A, AccountRow(C, ts(), "0", 1, 1))
    assert nodes[0].container_list(part, A, C, limit=5) is None
    assert anodes[0].account_list(apart, A, limit=5) is None
    cluster = proxy.Cluster(cl.ring, lambda d: cl.nodes[d.id])
    assert [r.name for r in proxy.container_list(cluster, A, C, limit=5)] == ["o"]
    assert [r.name for r in proxy.account_list(cluster, A, limit=5)] == [C]
