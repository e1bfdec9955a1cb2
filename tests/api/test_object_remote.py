"""The object store across hosts: a cloud whose ring has two devices of its own and
two on an object node server (`onestack object server`, its own process with its
own devices directory, on loopback). python-swiftclient drives the proxy; the
node is killed and restarted; the replicator (`onestack object replicate`) and
the expirer repair and clean up across the two. Agents are off in the cloud:
passes are run with the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import httpx
import pytest
from swiftclient import client as swift

from onestack.object_store import wire
from tests.cloud import BIN, Cloud, free_port, wait_for

SECRET = "test-node-secret-" + uuid.uuid4().hex


class NodeServer:
    """`onestack object server` in a process of its own (a storage node)."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="onestack-test-objnode-"))
        self.devices = self.dir / "devices"
        for d in ("r1", "r2"):
            (self.devices / d).mkdir(parents=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (self.dir / "none.toml").write_text("")
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ONESTACK_"))},
            "ONESTACK_CONFIG": str(self.dir / "none.toml"),
            "ONESTACK_STATE_DIR": str(self.dir / "state"),
            "ONESTACK_OBJECT_STORE_DEVICES_DIR": str(self.devices),
            "ONESTACK_OBJECT_STORE_NODE_SECRET": SECRET,
            "ONESTACK_OBJECT_STORE_AUDITOR_INTERVAL": "1",  # the node audits its own devices
        }
        self.proc: subprocess.Popen | None = None

    def start(self) -> NodeServer:
        log = open(self.dir / "node.log", "ab")  # noqa: SIM115 (the child holds it)
        self.proc = subprocess.Popen(
            [str(BIN / "onestack"), "object", "server", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env, stdout=log, stderr=log)
        log.close()

        def listening():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the node server exited: {(self.dir / 'node.log').read_text()[-2000:]}")
            try:
                return httpx.get(self.url + "/", timeout=1).status_code == 401
            except httpx.TransportError:
                return False

        wait_for(listening, 30, "the object node server")
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self.proc = None

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def data_files(self) -> list[Path]:
        return sorted(self.devices.rglob("objects/*/*/*/*.data"))


def copies(roots: list[Path], data: bytes) -> list[Path]:
    """The .data files under these device roots holding exactly these bytes."""
    return [f for r in roots for f in sorted(r.rglob("objects/*/*/*/*.data"))
            if f.stat().st_size == len(data) and f.read_bytes() == data]


@pytest.fixture(scope="module")
def node():
    n = NodeServer().start()
    yield n
    n.close()


@pytest.fixture(scope="module")
def rcloud(node):
    c = Cloud("object-remote", extra_env={
        "ONESTACK_OBJECT_STORE_REPLICATOR_INTERVAL": "0",
        "ONESTACK_OBJECT_STORE_AUDITOR_INTERVAL": "0",
        "ONESTACK_OBJECT_STORE_EXPIRER_INTERVAL": "0",
        "ONESTACK_OBJECT_STORE_NODE_SECRET": SECRET,
    })
    try:
        # the operator's ring: two devices of this host, two of the storage node
        c.onestack("object", "ring", "create", "--part-power", "6", "--replicas", "3")
        local = c.state / "object" / "devices"
        for i in (1, 2):
            (local / f"d{i}").mkdir(parents=True)
            c.onestack("object", "ring", "add", "--name", f"d{i}", "--zone", str(i),
                       "--path", str(local / f"d{i}"))
        for i, d in ((3, "r1"), (4, "r2")):
            c.onestack("object", "ring", "add", "--name", d, "--zone", str(i), "--node-url", node.url)
        c.onestack("object", "ring", "rebalance")
        c.start()
    except BaseException:
        c.stop()
        raise
    yield c
    c.stop()


@pytest.fixture(scope="module")
def sw(rcloud):
    env = rcloud.openrc("demo")
    # retries=0: a failure is what some tests want to see, not swiftclient's retries
    c = swift.Connection(authurl=env["OS_AUTH_URL"], user="demo", key=env["OS_PASSWORD"],
                         auth_version="3", retries=0,
                         os_options={"project_name": "demo", "user_domain_name": "Default",
                                     "project_domain_name": "Default"})
    yield c
    c.close()


def local_roots(cloud) -> list[Path]:
    return sorted((cloud.state / "object" / "devices").iterdir())


def all_roots(cloud, node) -> list[Path]:
    return local_roots(cloud) + [node.devices / "r1", node.devices / "r2"]


def replicate(cloud) -> str:
    r = cloud.onestack("object", "replicate", check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_ring_shows_and_checks_node_devices(rcloud, node):
    shown = json.loads(rcloud.onestack("object", "ring", "show", "--json").stdout)
    hosts = {d["name"]: d["host"] for d in shown["devices"]}
    assert hosts == {"d1": "local", "d2": "local", "r1": node.url, "r2": node.url}
    r = rcloud.onestack("object", "ring", "add", "--name", "bad", "--zone", "5",
                        "--node-url", "10.0.0.1", check=False)
    assert r.returncode != 0 and "http://HOST:PORT" in r.stderr


def test_objects_on_local_and_remote_devices(rcloud, node, sw):
    c = f"remote-{uuid.uuid4().hex[:6]}"
    sw.put_container(c)
    blobs = {f"o{i}": os.urandom(30_000 + i) for i in range(12)}
    for name, data in blobs.items():
        sw.put_object(c, name, data)
    for name, data in blobs.items():
        assert sw.get_object(c, name)[1] == data
        assert len(copies(all_roots(rcloud, node), data)) == 3
    assert node.data_files()  # half the devices are the node's: it holds copies
    assert [o["name"] for o in sw.get_container(c)[1]] == sorted(blobs)
    sw.post_object(c, "o0", {"X-Object-Meta-Color": "blue"})
    assert sw.head_object(c, "o0")["x-object-meta-color"] == "blue"
    for name in blobs:
        sw.delete_object(c, name)
    assert sw.get_container(c)[1] == []
    sw.delete_container(c)


def test_large_object_streams_through_the_node(rcloud, node, sw):
    c = f"large-{uuid.uuid4().hex[:6]}"
    sw.put_container(c)
    size, piece = 24 * 1024 * 1024 + 123, os.urandom(1024 * 1024)
    md5 = hashlib.md5()

    def body():  # sent chunked: the proxy never sees the whole object at once
        sent = 0
        while sent < size:
            data = piece[: min(len(piece), size - sent)]
            md5.update(data)
            sent += len(data)
            yield data

    etag = sw.put_object(c, "big", body())
    assert etag == md5.hexdigest()
    headers, chunks = sw.get_object(c, "big", resp_chunk_size=1024 * 1024)
    got, check = 0, hashlib.md5()
    for chunk in chunks:
        got += len(chunk)
        check.update(chunk)
    assert (got, check.hexdigest()) == (size, etag)
    on_node = [f for f in node.data_files() if f.stat().st_size == size]
    assert on_node  # the ring put at least one replica on the node
    # a range read of a replica
    _, part = sw.get_object(c, "big", headers={"Range": "bytes=5000000-5000009"})
    assert len(part) == 10
    sw.delete_object(c, "big")


def test_node_refuses_unsigned_requests(node):
    assert httpx.get(f"{node.url}/account/r1/0/AUTH_x").status_code == 401
    r = httpx.put(f"{node.url}/object/r1/0/AUTH_x/c/o", content=b"data",
                  headers={wire.AUTH_HEADER: wire.sign("guess", "PUT", b"/object/r1/0/AUTH_x/c/o"),
                           "X-Timestamp": "1.0", "X-Backend-Hash": "0" * 32})
    assert r.status_code == 403
    assert not node.data_files() or not any(f.read_bytes() == b"data" for f in node.data_files())


def test_replication_repairs_a_lost_remote_replica(rcloud, node, sw):
    c = f"repair-{uuid.uuid4().hex[:6]}"
    sw.put_container(c)
    data = os.urandom(50_000)
    sw.put_object(c, "obj", data)
    remote = copies([node.devices / "r1", node.devices / "r2"], data)
    if not remote:  # every replica landed here: put more until one is on the node
        for i in range(20):
            data = os.urandom(50_000 + i)
            sw.put_object(c, "obj", data)
            if remote := copies([node.devices / "r1", node.devices / "r2"], data):
                break
    assert remote
    for f in remote:
        shutil.rmtree(f.parent)  # the hash directory: as if never written
    assert len(copies(all_roots(rcloud, node), data)) == 3 - len(remote)
    replicate(rcloud)
    assert len(copies(all_roots(rcloud, node), data)) == 3
    assert copies([node.devices / "r1", node.devices / "r2"], data)


def test_node_audits_and_the_proxy_repairs(rcloud, node, sw):
    c = f"audit-{uuid.uuid4().hex[:6]}"
    sw.put_container(c)
    remote: list[Path] = []
    for i in range(20):  # an object with a replica on the node
        data = os.urandom(40_000 + i)
        sw.put_object(c, f"o{i}", data)
        if remote := copies([node.devices / "r1", node.devices / "r2"], data):
            break
    assert remote
    bad = remote[0]
    raw = bytearray(data)
    raw[100] ^= 0xFF
    bad.write_bytes(bytes(raw))
    device = bad.relative_to(node.devices).parts[0]
    wait_for(lambda: list((node.devices / device / "quarantined").rglob("*.data")), 60,
             "the node's auditor to quarantine the corrupt copy")
    assert sw.get_object(c, f"o{i}")[1] == data  # from a good copy
    replicate(rcloud)
    assert len(copies(all_roots(rcloud, node), data)) == 3


def test_dead_node_reads_and_writes_keep_quorum(rcloud, node, sw):
    c = f"down-{uuid.uuid4().hex[:6]}"
    sw.put_container(c)
    before = {f"b{i}": os.urandom(20_000 + i) for i in range(10)}
    for name, data in before.items():
        sw.put_object(c, name, data)
    node.kill()
    try:
        for name, data in before.items():  # every read answers, from the other replicas
            assert sw.get_object(c, name)[1] == data
        during = {f"d{i}": os.urandom(21_000 + i) for i in range(10)}
        for name, data in during.items():  # 2 local devices: a quorum of 3 replicas
            sw.put_object(c, name, data)
        for name, data in during.items():
            assert sw.get_object(c, name)[1] == data
            assert not copies([node.devices / "r1", node.devices / "r2"], data)
        listed = [o["name"] for o in sw.get_container(c)[1]]
        assert listed == sorted([*before, *during])
        c2 = f"new-{uuid.uuid4().hex[:6]}"
        sw.put_container(c2)  # container and account databases keep quorum too
        sw.put_object(c2, "x", b"x")
    finally:
        node.start()
    # back: the replicator brings the node's devices up to date
    replicate(rcloud)
    for data in during.values():
        assert len(copies(all_roots(rcloud, node), data)) == 3
    assert any(copies([node.devices / "r1", node.devices / "r2"], d) for d in during.values())
    # handoff copies went home: every object has exactly its three replicas
    for data in [*before.values(), *during.values()]:
        assert len(copies(all_roots(rcloud, node), data)) == 3


def test_expirer_deletes_across_nodes(rcloud, node, sw):
    c = f"exp-{uuid.uuid4().hex[:6]}"
    sw.put_container(c)
    data = os.urandom(10_000)
    sw.put_object(c, "soon", data, headers={"X-Delete-After": "1"})
    sw.put_object(c, "stays", b"stays")

    passes = []

    def expired():
        r = rcloud.onestack("object", "expire", "--json", check=False)
        assert r.returncode == 0, r.stderr
        passes.append((r.stdout + r.stderr[-500:]).strip().replace("\n", " "))
        return [o["name"] for o in sw.get_container(c)[1]] == ["stays"]

    try:
        wait_for(expired, 60, "the expirer to delete the object from the listing")
    except AssertionError as e:  # say what the passes did (they are retried until this holds)
        raise AssertionError(f"{e}; expirer passes: {passes[:3]} ... {passes[-2:]}; "
                             f"listing: {sw.get_container(c)[1]}") from None
    replicate(rcloud)  # (a copy a handoff took while the node was away meets its tombstone)
    assert not copies(all_roots(rcloud, node), data)
