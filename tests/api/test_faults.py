"""Issue 18's faults that need no real guest, on all-in-one clouds of their own (fake
driver, SQLite): the database file locked by another connection, onestack killed
outright while ten servers are building, and a full image store.

Locked database: writes wait ``database.busy_timeout`` (2 s here), then answer 503 with
Retry-After in each service's own error body, however many are queued; reads go on (WAL);
once the lock goes, the same calls work with no restart.

SIGKILL during boots: every onestack process is killed while the builds spawn (the fake
driver takes ``compute.fake_spawn_seconds`` to spawn here, so they are all caught there),
then the cloud starts again. No server stays in BUILD: each ends in ERROR with a fault
(Nova's _init_instance: a build its host had begun died with the host), keeping its host,
its room in Placement and its ports until it is deleted; a build lost while still
scheduling ends on no host and its room is given back. Deleting them all leaves no port
and no allocation, and a new server boots.

Full image store (root: a tmpfs in a mount namespace of the cloud's own): an upload that
does not fit is a 413 as Glance's StorageFull, leaves nothing half-written and harms no
stored image; once there is room, uploads work.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from openstack import exceptions as sdk_exc

from tests.cloud import BIN, Cloud, wait_for

BUSY_TIMEOUT = 2  # seconds (database.busy_timeout)
SPAWN = "ONESTACK_COMPUTE_FAKE_SPAWN_SECONDS"


@pytest.fixture(scope="module")
def fcloud():
    c = Cloud("faults", extra_env={
        "ONESTACK_DATABASE_BUSY_TIMEOUT": str(BUSY_TIMEOUT),
        SPAWN: "300",  # builds stay in spawning until the kill
        "ONESTACK_COMPUTE_FAKE_HOSTS": "1",  # two hosts: both recover their builds
        "ONESTACK_COMPUTE_QUOTA_INSTANCES": "20",
    })
    try:
        c.start()
        yield c
    finally:
        c.stop()


# -- the database locked by another connection --------------------------------------


def refused(call) -> sdk_exc.HttpException:
    with pytest.raises(sdk_exc.HttpException) as e:
        call()
    return e.value


def test_locked_database_answers_503_with_retry_after_then_recovers(fcloud):
    conn = fcloud.sdk()
    try:
        # signed in and every endpoint discovered before the lock
        networks = sorted(n.name for n in conn.network.networks())
        list(conn.compute.keypairs())
        list(conn.identity.projects())
        tag = uuid.uuid4().hex[:6]
        lock = sqlite3.connect(fcloud.state / "onestack.db", isolation_level=None)
        try:
            lock.execute("BEGIN EXCLUSIVE")  # the one writer's lock, held by another process's connection
            calls = {
                "network": (lambda: conn.network.create_network(name=f"busy-{tag}"),
                            lambda body: body["NeutronError"]["type"] == "HTTPServiceUnavailable"
                            and body["NeutronError"]["message"]),
                "compute": (lambda: conn.compute.create_keypair(name=f"busy-{tag}"),
                            lambda body: body["serviceUnavailable"]["code"] == 503
                            and body["serviceUnavailable"]["message"]),
                "identity": (lambda: conn.identity.create_project(name=f"busy-{tag}"),
                             lambda body: body["error"]["code"] == 503 and body["error"]["message"]),
            }
            for service, (call, message_of) in calls.items():
                e = refused(call)
                assert e.status_code == 503, (service, e)
                assert e.response.headers.get("Retry-After") == "5", (service, e.response.headers)
                assert "database is not available" in message_of(e.response.json()), service
            # readers are not held up (WAL)
            assert sorted(n.name for n in conn.network.networks()) == networks
            # writers queued behind one another are refused within a bound too, not one
            # busy timeout after the other (8 of them: 16 s)
            with ThreadPoolExecutor(8) as pool:
                futures = [pool.submit(refused, lambda i=i: conn.network.create_network(name=f"busy-{tag}-{i}"))
                           for i in range(8)]
                deadline = time.monotonic() + 5 * BUSY_TIMEOUT
                statuses = [f.result(timeout=max(0.0, deadline - time.monotonic())).status_code for f in futures]
            assert statuses == [503] * 8
        finally:
            lock.rollback()
            lock.close()
        # no restart: the same calls work again, and the refused ones left nothing behind
        assert sorted(n.name for n in conn.network.networks()) == networks
        net = conn.network.create_network(name=f"after-{tag}")
        conn.network.delete_network(net)
        conn.compute.delete_keypair(conn.compute.create_keypair(name=f"after-{tag}"))
        assert not [p for p in conn.identity.projects() if p.name.startswith("busy-")]
    finally:
        conn.close()


# -- onestack killed during ten boots ----------------------------------------------


def usage_by_provider(cloud: Cloud) -> dict[str, dict[str, int]]:
    return {rp["name"]: {u["resource_class"]: u["usage"]
                         for u in cloud.os_json("resource", "provider", "usage", "show", rp["uuid"])}
            for rp in cloud.os_json("resource", "provider", "list")}


def test_sigkill_during_ten_boots_leaves_no_server_building(fcloud, tmp_path):
    path = tmp_path / "tiny.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    image = fcloud.os_json("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                           "--file", str(path), "tiny")["id"]
    fcloud.openstack("network", "create", "kill-net")
    fcloud.openstack("subnet", "create", "--network", "kill-net", "--subnet-range", "192.168.91.0/24", "kill-sn")
    fcloud.openstack("server", "create", "--flavor", "m1.nano", "--image", image, "--network", "kill-net",
                     "--min", "10", "--max", "10", "boot")
    fcloud.openstack("server", "create", "--flavor", "m1.nano", "--image", image, "--nic", "none", "early")

    def building() -> list[dict]:
        rows = fcloud.os_json("server", "list", "--long")
        return rows if len(rows) == 11 and all(r["Task State"] == "spawning" for r in rows) else []

    ids = {r["Name"]: r["ID"] for r in wait_for(building, 60, "the 11 builds to spawn")}
    # one is deleted as it builds: its host gets to it after the build, which the kill ends
    doomed = ids.pop("boot-10")
    fcloud.openstack("server", "delete", doomed)

    pid = int((fcloud.state / "onestack.pid").read_text())
    os.killpg(pid, signal.SIGKILL)  # `up --detach` made it a session leader: all its processes
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 30, "onestack to die (and be reaped)")
    # `early` is staged one step back, as a kill after the scheduler's claim and before its
    # host was written leaves it: scheduling, on no host, no ports (it asked for none)
    db = sqlite3.connect(fcloud.state / "onestack.db")
    with db:
        db.execute("UPDATE compute_instance SET host = NULL, node = NULL, task_state = 'scheduling' "
                   "WHERE uuid = ?", (ids["early"],))
    db.close()

    del fcloud.env[SPAWN]  # the next builds spawn at once
    fcloud.start()

    def settled() -> list[dict]:
        rows = fcloud.os_json("server", "list")
        return rows if all(r["Status"] != "BUILD" and r["ID"] != doomed for r in rows) else []

    assert len(wait_for(settled, 30, "no server in BUILD, and the deleted one gone")) == 10
    shown = {name: fcloud.os_json("server", "show", sid) for name, sid in ids.items()}
    for name, s in shown.items():
        assert s["status"] == "ERROR" and not s["OS-EXT-STS:task_state"], (name, s["status"])
        assert s["fault"]["code"] == 500 and s["fault"]["message"], name
    hosted = {name: s for name, s in shown.items() if name != "early"}
    for name, s in hosted.items():
        assert s["OS-EXT-SRV-ATTR:host"], name
        assert "restarted during the build" in s["fault"]["message"], s["fault"]
    assert not shown["early"]["OS-EXT-SRV-ATTR:host"]
    assert "while scheduling" in shown["early"]["fault"]["message"], shown["early"]["fault"]

    # Placement: exactly the servers on a host hold room, each one m1.nano on its host
    for gone in (ids["early"], doomed):
        wait_for(lambda gone=gone: fcloud.os_json("resource", "provider", "allocation", "show", gone) == [], 30,
                 "the room of the build lost while scheduling, and of the deleted one, to be given back")
    providers = {rp["name"]: rp["uuid"] for rp in fcloud.os_json("resource", "provider", "list")}
    for name, s in hosted.items():
        allocs = fcloud.os_json("resource", "provider", "allocation", "show", ids[name])
        assert [a["resource_provider"] for a in allocs] == [providers[s["OS-EXT-SRV-ATTR:host"]]], (name, allocs)
        assert allocs[0]["resources"]["VCPU"] == 1 and allocs[0]["resources"]["MEMORY_MB"] == 128, allocs
    usage = usage_by_provider(fcloud)
    assert sum(u.get("VCPU", 0) for u in usage.values()) == len(hosted), usage
    per_host = {}
    for s in hosted.values():
        per_host[s["OS-EXT-SRV-ATTR:host"]] = per_host.get(s["OS-EXT-SRV-ATTR:host"], 0) + 1
    assert {h: usage[h].get("VCPU", 0) for h in per_host} == per_host, (usage, per_host)

    # Neutron: one port per server on a host (its address), none for `early`
    for name, s in hosted.items():
        ports = fcloud.os_json("port", "list", "--device-id", ids[name])
        assert len(ports) == 1, (name, ports)
        ip = ports[0]["Fixed IP Addresses"][0]["ip_address"]
        assert ip in str(s["addresses"]), (name, ip, s["addresses"])
    assert fcloud.os_json("port", "list", "--device-id", ids["early"]) == []
    # the delete begun before the kill was finished: nothing of it is left
    assert fcloud.os_json("port", "list", "--device-id", doomed) == []

    # they delete cleanly: nothing of them is left in Neutron or Placement
    fcloud.openstack("server", "delete", "--wait", *ids.values())
    assert [p for p in fcloud.os_json("port", "list", "--long")
            if p.get("Device Owner", "").startswith("compute:")] == []
    for sid in ids.values():
        assert fcloud.os_json("resource", "provider", "allocation", "show", sid) == []
    assert all(not any(u.values()) for u in usage_by_provider(fcloud).values())

    # and the cloud builds again
    fcloud.openstack("server", "create", "--flavor", "m1.nano", "--image", image, "--network", "kill-net",
                     "--wait", "after")
    assert fcloud.os_json("server", "show", "after")["status"] == "ACTIVE"
    fcloud.openstack("server", "delete", "--wait", "after")


# -- the image store full -------------------------------------------------------------


@pytest.mark.root
@pytest.mark.tools("unshare", "mount", "nsenter")
def test_full_image_store_refuses_uploads_then_recovers(tmp_path):
    """An 8 MiB tmpfs is the image store, mounted in a mount namespace that only the cloud
    lives in (private propagation): the host's mounts never change, and the tmpfs goes
    with the cloud's last process."""
    c = Cloud("full-store")
    store = c.state / "images"
    store.mkdir()
    try:
        up = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             'mount -t tmpfs -o size=8m onestack-test "$1" && exec "$2" up --detach', "sh", str(store),
             str(BIN / "onestack")],
            env=c.env, capture_output=True, text=True, timeout=120)
        assert up.returncode == 0, up.stdout + up.stderr
        pid = int((c.state / "onestack.pid").read_text())

        def in_store() -> list[str]:  # the store as the cloud sees it
            return subprocess.run(["nsenter", "-t", str(pid), "-m", "ls", "-A", str(store)], check=True,
                                  capture_output=True, text=True).stdout.split()

        first, second = tmp_path / "first.raw", tmp_path / "second.raw"
        first.write_bytes(os.urandom(5 << 20))
        second.write_bytes(os.urandom(5 << 20))
        a = c.os_json("image", "create", "--disk-format", "raw", "--container-format", "bare", "--file", str(first),
                      "first")
        assert a["status"] == "active"
        full = c.openstack("image", "create", "--disk-format", "raw", "--container-format", "bare",
                           "--file", str(second), "second", check=False)
        assert full.returncode != 0
        assert "413" in full.stderr or "Image storage media is full" in full.stderr, full.stderr
        # nothing half-written is left, the image that was there is whole, the refused one
        # waits for its data (or was deleted by the client)
        assert in_store() == [a["id"]]
        left = [i for i in c.os_json("image", "list", "--long") if i["Name"] == "second"]
        assert all(i["Status"] == "queued" for i in left), left
        got = tmp_path / "got.raw"
        c.openstack("image", "save", "--file", str(got), a["id"])
        assert got.read_bytes() == first.read_bytes()
        # room again: the same upload works
        c.openstack("image", "delete", a["id"])
        b = c.os_json("image", "create", "--disk-format", "raw", "--container-format", "bare", "--file", str(second),
                      "second-again")
        assert b["status"] == "active"
        c.openstack("image", "save", "--file", str(got), b["id"])
        assert got.read_bytes() == second.read_bytes()
    finally:
        c.stop()
