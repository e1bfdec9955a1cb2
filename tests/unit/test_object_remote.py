"""RemoteNode and RemoteStore against a node server on loopback (uvicorn on a
thread): the Node interface over HTTP, signatures, and how failures become
NodeUnavailable (a failed replica) rather than errors."""

import hashlib
import os
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

from onestack.object_store import remote, replicator, server, wire
from onestack.object_store.node import ContainerRow, NodeUnavailable, NotEmpty
from onestack.object_store.remote import NodeClient, Nodes, RemoteNode
from onestack.object_store.ring import Ring, RingError, check_node_url
from tests.cloud import free_port, wait_for

SECRET = "unit-secret"
A, C = "AUTH_unit", "cont"
_last = [0.0]


def ts() -> str:
    t = max(time.time(), _last[0] + 0.00001)
    _last[0] = t
    return f"{t:016.5f}"


class NodeServer:
    """A node server for the devices under ``root``, on a thread."""

    def __init__(self, root: Path, secret: str = SECRET):
        self.root, self.port = root, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = server.build(server.Devices(root), secret)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, 10, "the node server")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def cluster(tmp_path):
    """A ring of one local device and two on a node server; 3 replicas."""
    (tmp_path / "local").mkdir()
    node_root = tmp_path / "node"
    for d in ("r1", "r2"):
        (node_root / d).mkdir(parents=True)
    srv = NodeServer(node_root)
    ring = Ring(3, 3)
    ring.add_device("l1", 1, 100, str(tmp_path / "local"))
    ring.add_device("r1", 2, 100, "r1", srv.url)
    ring.add_device("r2", 3, 100, "r2", srv.url)
    ring.rebalance()
    nodes = Nodes(SECRET, timeout=5, connect_timeout=1)
    yield ring, nodes, srv
    nodes.close()
    srv.stop()


def remote_node(ring, nodes, name) -> RemoteNode:
    return nodes.node(ring.device(name))


def write(node, part, obj, data: bytes, timestamp=None, **extra):
    timestamp = timestamp or ts()
    w = node.object_writer(part, A, C, obj, timestamp)
    for i in range(0, len(data), 1 << 20):
        w.write(data[i:i + (1 << 20)])
    w.commit({"Content-Type": "application/x-test", "ETag": hashlib.md5(data).hexdigest(),
              "Content-Length": str(len(data)), "X-Timestamp": timestamp, **extra})
    return timestamp


def read(node, part, obj, offset=0, length=None):
    r = node.object_reader(part, A, C, obj)
    if r is None:
        return None
    try:
        return b"".join(r.read(offset, length))
    finally:
        r.close()


def test_objects_over_http(cluster):
    ring, nodes, _ = cluster
    n = remote_node(ring, nodes, "r1")
    part = ring.get_part(A, C, "o/with slash ü")
    data = os.urandom(2 * 1024 * 1024 + 11)  # several pieces each way
    t = write(n, part, "o/with slash ü", data, **{"X-Object-Meta-Wörd": "välue"})
    info = n.object_info(part, A, C, "o/with slash ü")
    assert (info.timestamp, info.size) == (t, len(data))
    assert info.metadata["X-Object-Meta-Wörd"] == "välue"
    assert read(n, part, "o/with slash ü") == data
    assert read(n, part, "o/with slash ü", 1_500_000, 1000) == data[1_500_000:1_501_000]
    assert n.object_post(part, A, C, "o/with slash ü", ts(), {"X-Object-Meta-New": "1"})
    assert n.object_info(part, A, C, "o/with slash ü").metadata.get("X-Object-Meta-New") == "1"
    assert n.object_delete(part, A, C, "o/with slash ü", ts()) is True
    assert n.object_info(part, A, C, "o/with slash ü").deleted
    assert n.object_reader(part, A, C, "o/with slash ü") is None
    assert n.object_delete(part, A, C, "o/with slash ü", ts()) is False
    assert n.object_info(part, A, C, "never") is None
    assert not n.object_post(part, A, C, "never", ts(), {})


def test_names_survive_the_wire(cluster):
    ring, nodes, _ = cluster
    n = remote_node(ring, nodes, "r1")
    names = ["a%2Fb", "q?x=1", "h#frag", "p+l u", "a//b", "dir/", "/lead", "..", ".", "a/../b",
             "%", "\u2028x", "ü/é"]
    n.container_put(0, A, "c ü%", ts(), {})
    for name in names:
        write(n, 0, name, name.encode())
        n.container_update(0, A, "c ü%", ContainerRow(name, ts(), 1, "t", "e"))
    assert [read(n, 0, name) for name in names] == [name.encode() for name in names]
    assert [r.name for r in n.container_list(0, A, "c ü%", limit=100)] == sorted(names)


def test_databases_over_http(cluster):
    ring, nodes, _ = cluster
    n = remote_node(ring, nodes, "r2")
    cpart, apart = ring.get_part(A, C), ring.get_part(A)
    t = ts()
    assert n.container_put(cpart, A, C, t, {"X-Container-Meta-K": ("v", t)}) is True
    assert n.container_put(cpart, A, C, ts(), {}) is False
    for name in ("a", "d/1", "d/2", "z"):
        n.container_update(cpart, A, C, ContainerRow(name, ts(), 3, "text/plain", "e"))
    info = n.container_info(cpart, A, C)
    assert (info.object_count, info.bytes_used, info.metadata["X-Container-Meta-K"][0]) == (4, 12, "v")
    rows = n.container_list(cpart, A, C, limit=10, delimiter="/")
    assert [r if isinstance(r, str) else r.name for r in rows] == ["a", "d/", "z"]
    assert [r.name for r in n.container_list(cpart, A, C, limit=10, path="d")] == ["d/1", "d/2"]
    assert [r.name for r in n.container_list(cpart, A, C, limit=2, reverse=True)] == ["z", "d/2"]
    with pytest.raises(NotEmpty):
        n.container_delete(cpart, A, C, ts())
    assert n.container_post(cpart, A, C, {"X-Container-Meta-K": ("w", ts())})
    assert n.container_info(cpart, A, "other") is None
    assert n.account_put(apart, A, ts()) is True
    assert n.account_put(apart, A, ts()) is False
    assert n.account_info(apart, A).container_count == 0
    assert n.account_post(apart, A, {"X-Account-Meta-Q": ("1", ts())})


def test_requests_must_be_signed(cluster):
    _, _, srv = cluster
    target = "/replicate/r1/available"
    assert httpx.post(srv.url + target, content=b"{}").status_code == 401
    forged = wire.sign("not the secret", "POST", target.encode())
    r = httpx.post(srv.url + target, content=b"{}", headers={wire.AUTH_HEADER: forged})
    assert r.status_code == 403
    stale = wire.sign(SECRET, "POST", target.encode(), now=time.time() - 3600)
    assert httpx.post(srv.url + target, content=b"{}",
                      headers={wire.AUTH_HEADER: stale}).status_code == 403
    # a signature covers its method and path
    other = wire.sign(SECRET, "POST", b"/replicate/r2/available")
    assert httpx.post(srv.url + target, content=b"{}",
                      headers={wire.AUTH_HEADER: other}).status_code == 403
    now = int(time.time())
    for junk in ("", "x", "12 zz", "nan abc", f"{now} é", f"{now}", "99999999999999999999999 00"):
        r = httpx.post(srv.url + target, content=b"{}", headers={wire.AUTH_HEADER: junk.encode()})
        assert r.status_code == 403, junk
    good = wire.sign(SECRET, "POST", target.encode())
    r = httpx.post(srv.url + target, content=b"{}", headers={wire.AUTH_HEADER: good})
    assert (r.status_code, r.json()) == (200, True)


def test_wrong_secret_is_a_failed_replica(cluster):
    ring, _, srv = cluster
    n = Nodes("wrong", timeout=5).node(ring.device("r1"))
    with pytest.raises(NodeUnavailable, match="HTTP 403"):
        n.object_info(0, A, C, "o")
    with pytest.raises(NodeUnavailable, match="HTTP 403"):
        n.object_reader(0, A, C, "o")
    with pytest.raises(NodeUnavailable):
        n.object_writer(0, A, C, "o", ts()).commit({})
    with pytest.raises(NodeUnavailable):
        Nodes("").node(ring.device("r1")).object_info(0, A, C, "o")


def test_missing_device_is_unavailable(cluster):
    ring, nodes, srv = cluster
    shutil.rmtree(srv.root / "r1")
    n = remote_node(ring, nodes, "r1")
    with pytest.raises(NodeUnavailable, match="507"):
        n.object_info(0, A, C, "o")
    with pytest.raises(NodeUnavailable):
        n.object_writer(0, A, C, "o", ts()).commit({})
    assert nodes.store(ring.device("r1")).available() is False
    assert nodes.store(ring.device("r2")).available() is True


def test_dead_node_fails_fast_and_is_left_alone(cluster, monkeypatch):
    ring, nodes, srv = cluster
    srv.stop()
    n = remote_node(ring, nodes, "r1")
    with pytest.raises(NodeUnavailable, match="does not answer"):
        n.object_writer(0, A, C, "o", ts())
    # the next calls do not even try, for a while
    with pytest.raises(NodeUnavailable, match="a moment ago"):
        n.container_info(0, A, C)
    monkeypatch.setattr(remote, "ERROR_SUPPRESSION", 0)
    nodes.client(srv.url).down_until = 0
    with pytest.raises(NodeUnavailable, match="does not answer"):
        n.object_reader(0, A, C, "o")
    assert nodes.store(ring.device("r1")).available() is False


def test_aborted_write_leaves_nothing(cluster):
    ring, nodes, srv = cluster
    n = remote_node(ring, nodes, "r1")
    w = n.object_writer(0, A, C, "half", ts())
    w.write(b"x" * 100_000)
    tmp = srv.root / "r1" / "tmp"
    wait_for(lambda: tmp.is_dir() and any(f.stat().st_size for f in tmp.iterdir()), 10,
             "the upload to reach the node")
    w.abort()
    # the node drops the upload when the request is cut
    wait_for(lambda: not list(tmp.iterdir()), 10, "the upload's tmp file to go")
    assert n.object_info(0, A, C, "half") is None


def test_corrupt_copy_stops_the_stream(cluster):
    """A copy that fails its md5 check on the node cuts the stream before its last
    piece: the proxy sees NodeUnavailable (and reads another replica)."""
    ring, nodes, srv = cluster
    n = remote_node(ring, nodes, "r1")
    data = os.urandom(3 * 1024 * 1024)
    write(n, 0, "big", data)
    f = next((srv.root / "r1" / "objects").rglob("*.data"))
    raw = bytearray(f.read_bytes())
    raw[-10] ^= 0xFF
    f.write_bytes(bytes(raw))
    r = n.object_reader(0, A, C, "big")
    got = []
    with pytest.raises(NodeUnavailable):
        for piece in r.read():
            got.append(piece)
    assert len(b"".join(got)) < len(data)
    r.close()
    assert n.object_info(0, A, C, "big") is None  # quarantined there


def test_replication_between_local_and_remote_devices(cluster):
    ring, nodes, srv = cluster
    part, devs = ring.get_nodes(A, C, "o")
    data = os.urandom(70_000)
    t = ts()
    for d in devs:
        write(nodes.node(d), part, "o", data, timestamp=t)
    cpart, cdevs = ring.get_nodes(A, C)
    for d in cdevs:
        nodes.node(d).container_put(cpart, A, C, t, {})
        nodes.node(d).container_update(cpart, A, C, ContainerRow("o", t, len(data), "x", "e"))
    # both remote devices lose everything (replaced disks)
    for d in ("r1", "r2"):
        shutil.rmtree(srv.root / d)
        (srv.root / d).mkdir()
    stats = replicator.replicate(ring, stores=nodes.store)
    assert stats["errors"] == 0 and stats["objects_copied"] == 2 and stats["dbs_merged"] == 2
    for d in devs:
        assert read(nodes.node(d), part, "o") == data
    for d in cdevs:
        assert [r.name for r in nodes.node(d).container_list(cpart, A, C, limit=5)] == ["o"]
    # the local device's copy goes: a remote one refills it (data through this host)
    local = ring.device("l1")
    shutil.rmtree(local.path)
    os.mkdir(local.path)
    replicator.replicate(ring, stores=nodes.store)
    assert read(nodes.node(local), part, "o") == data
    assert replicator.replicate(ring, stores=nodes.store)["objects_copied"] == 0


def test_handoff_on_a_node_moves_home(tmp_path):
    """Data a node's device took for an unavailable primary goes to the primary."""
    node_root = tmp_path / "node"
    for d in ("r1", "r2", "r3", "r4"):
        (node_root / d).mkdir(parents=True)
    srv = NodeServer(node_root)
    try:
        ring = Ring(3, 3)
        for i, d in enumerate(("r1", "r2", "r3", "r4")):
            ring.add_device(d, i + 1, 100, d, srv.url)
        ring.rebalance()
        nodes = Nodes(SECRET)
        part, devs = ring.get_nodes(A, C, "o")
        handoff = next(ring.get_handoffs(part))
        t = ts()
        for d in (devs[0], devs[1], handoff):
            write(nodes.node(d), part, "o", b"stood in", timestamp=t)
        stats = replicator.replicate(ring, stores=nodes.store)
        assert stats["handoffs_removed"] == 1 and stats["errors"] == 0
        assert [read(nodes.node(d), part, "o") for d in devs] == [b"stood in"] * 3
        assert read(nodes.node(handoff), part, "o") is None
        assert not list((node_root / handoff.path / "objects").rglob("*.data"))
        nodes.close()
    finally:
        srv.stop()


def test_frames_round_trip():
    body = [wire.frame_header(wire.DATA, 5), b"he", b"llo", wire.frame_header(wire.DATA, 0),
            wire.frame_header(wire.META, 2) + b"{}"]
    stream = b"".join(body)
    for cut in (1, 3, 7, len(stream)):  # however the network cuts it
        pieces = [stream[i:i + cut] for i in range(0, len(stream), cut)]
        got = list(wire.read_frames(pieces))
        assert b"".join(p for k, p in got if k == wire.DATA) == b"hello"
        assert got[-1] == (wire.META, b"{}")
    with pytest.raises(ValueError):
        list(wire.read_frames([b"X\x00\x00\x00\x01a"]))
    with pytest.raises(ValueError):
        list(wire.read_frames([wire.frame_header(wire.DATA, 10) + b"short"]))


def test_node_urls_in_the_ring():
    assert check_node_url("http://10.250.0.13:6200/") == "http://10.250.0.13:6200"
    for bad in ("10.250.0.13:6200", "http://10.250.0.13", "ftp://h:1", "http://h:1/x", "http://h:port"):
        with pytest.raises(RingError):
            check_node_url(bad)
    ring = Ring(2, 1)
    dev = ring.add_device("n1", 1, 100, "sdb", "http://10.250.0.13:6200")
    assert dev.node_url == "http://10.250.0.13:6200"
    assert ring.add_device("l1", 1, 100, "/srv/l1").node_url is None
    with pytest.raises(RingError):
        ring.add_device("n2", 1, 100, "../etc", "http://10.250.0.13:6200")
    # rings written before node URLs existed load as local devices
    old = Ring.from_dict({**Ring(2, 1).to_dict(), "devices": [
        {"id": 1, "name": "d1", "zone": 1, "weight": 1.0, "path": "/x"}]})
    assert old.devices[0].host == "local" and old.devices[0].node_url is None


def test_client_is_shared_per_node():
    nodes = Nodes("s")
    assert nodes.client("http://127.0.0.1:1") is nodes.client("http://127.0.0.1:1")
    assert isinstance(nodes.client("http://127.0.0.1:2"), NodeClient)
    nodes.close()


def test_node_refuses_bad_input(cluster):
    """Signed requests with bad input get 400 (or 404), and touch nothing outside
    the device."""
    _, nodes, srv = cluster
    client = nodes.client(srv.url)
    (srv.root / "r1" / "objects").mkdir()
    for op, args in (("hash_listings", {"part": 0, "suffix": "../.."}),
                     ("suffix_hashes", {"part": "../../.."}),
                     ("databases", {"kind": "../objects", "part": 0}),
                     ("db_state", {"kind": "containers", "part": 0, "hsh": "../../x"}),
                     ("partitions", {"kind": "objects", "extra": 1})):
        r = client.send("POST", f"/replicate/r1/{op}", body=wire.dumps(args))
        assert r.status_code == 400, (op, r.text)
    assert client.send("POST", "/replicate/r1/__init__", body=b"{}").status_code == 404
    assert client.send("POST", "/replicate/..%2Fetc/partitions",
                       body=wire.dumps({"kind": "objects"})).status_code in (400, 404)
    r = client.send("GET", "/replicate/r1/file/0/abc/" + "0" * 29 + "abc/../../x")
    assert r.status_code in (400, 404)
    r = client.send("GET", "/object/r1/0/a/c/o", headers={"X-Backend-Hash": "nothex"})
    assert r.status_code == 400
    r = client.send("PUT", "/object/r1/0/a/c/o", headers={"X-Backend-Hash": "0" * 32,
                                                          "X-Timestamp": "soon"}, body=b"")
    assert r.status_code == 400
    # a PUT whose stream ends without its metadata stores nothing
    r = client.send("PUT", "/object/r1/0/a/c/o", headers={"X-Backend-Hash": "0" * 32,
                                                          "X-Timestamp": ts()},
                    body=wire.frame_header(wire.DATA, 3) + b"abc")
    assert r.status_code == 400
    assert not list((srv.root / "r1").rglob("*.data"))


# --------------------------------------------------------------------------- error handling


def mock_node(handler) -> RemoteNode:
    """A RemoteNode whose node is ``handler(request) -> httpx.Response``."""
    ring = Ring(2, 1)
    dev = ring.add_device("m1", 1, 100, "m1", "http://127.0.0.1:9")
    client = NodeClient("http://127.0.0.1:9", SECRET, timeout=0.5,
                        transport=httpx.MockTransport(handler))
    return RemoteNode(dev, client)


def test_every_failure_is_a_failed_replica():
    answers = {
        "500": lambda req: httpx.Response(500, text="boom"),
        "507": lambda req: httpx.Response(507, json={"error": "device gone"}),
        "garbage": lambda req: httpx.Response(200, content=b"<html>not json"),
        "wrong shape": lambda req: httpx.Response(200, json={"unexpected": True}),
        "teapot": lambda req: httpx.Response(418),
    }
    calls = [lambda n: n.object_info(0, A, C, "o"), lambda n: n.container_info(0, A, C),
             lambda n: n.container_list(0, A, C, limit=1), lambda n: n.account_put(0, A, ts()),
             lambda n: n.object_reader(0, A, C, "o"), lambda n: n.object_delete(0, A, C, "o", ts())]
    for what, handler in answers.items():
        n = mock_node(handler)
        for call in calls:
            with pytest.raises(NodeUnavailable):
                call(n)
                raise AssertionError(f"{what}: no NodeUnavailable")


def test_timeouts_fail_the_replica_without_suppressing_the_node():
    calls = []

    def slow(req):
        calls.append(req)
        raise httpx.ReadTimeout("too slow", request=req)

    n = mock_node(slow)
    for _ in range(2):
        with pytest.raises(NodeUnavailable):
            n.container_info(0, A, C)
    assert len(calls) == 2  # a slow answer is asked again next time

    def refused(req):
        calls.append(req)
        raise httpx.ConnectError("refused", request=req)

    calls.clear()
    n = mock_node(refused)
    for _ in range(3):
        with pytest.raises(NodeUnavailable):
            n.container_info(0, A, C)
    assert len(calls) == 1  # a node that does not answer is left alone for a while


def test_short_or_headless_data_fails_the_replica():
    info = wire.dumps({"timestamp": "1.00000", "size": 10, "metadata": {}}) + b"\n"
    n = mock_node(lambda req: httpx.Response(200, content=info + b"12345"))  # 5 of 10 bytes
    r = n.object_reader(0, A, C, "o")
    with pytest.raises(NodeUnavailable, match="5 bytes"):
        b"".join(r.read())
    n = mock_node(lambda req: httpx.Response(200, content=b"no info line"))
    with pytest.raises(NodeUnavailable):
        n.object_reader(0, A, C, "o")
    # a range read of another version than the one opened
    other = wire.dumps({"timestamp": "2.00000", "size": 10, "metadata": {}}) + b"\n"
    n = mock_node(lambda req: httpx.Response(206 if "range" in req.headers else 200,
                                             content=(other if "range" in req.headers else info) + b"0123456789"))
    r = n.object_reader(0, A, C, "o")
    with pytest.raises(NodeUnavailable, match="changed"):
        b"".join(r.read(2, 3))


def test_container_delete_conflict_is_not_empty():
    n = mock_node(lambda req: httpx.Response(409, json={"error": "container holds 2 objects"}))
    with pytest.raises(NotEmpty, match="2 objects"):
        n.container_delete(0, A, C, ts())


def test_requests_carry_a_valid_signature():
    seen = []

    def check(req):
        seen.append(wire.verify(SECRET, req.method, req.url.raw_path, req.headers.get(wire.AUTH_HEADER)))
        return httpx.Response(200, json=[]) if "list" in req.url.params else httpx.Response(404)

    n = mock_node(check)
    assert n.object_info(0, A, C, "a b/ü?x") is None
    assert n.container_list(0, A, C, limit=5, prefix="p q&r=s") == []
    assert len(seen) == 2 and all(seen)
