"""Block Storage (Cinder v3) through the real `openstack` CLI: the book's lab and the refusals.

Volumes are sparse files of the file backend; servers run on the fake compute
driver, so an attachment is recorded by the driver, not seen by a guest (that is
tests/e2e/test_volume_guests.py).
"""

from __future__ import annotations

import subprocess
import uuid

import httpx
import pytest

from tests.cloud import Cloud, wait_for


def volume(cloud: Cloud, ref: str, **kw) -> dict:
    return cloud.os_json("volume", "show", ref, **kw)


def wait_volume(cloud: Cloud, ref: str, status: str, timeout: float = 30, **kw) -> dict:
    seen: dict = {}

    def check():
        seen.update(volume(cloud, ref, **kw))
        if seen["status"].startswith("error") and not status.startswith("error"):
            raise AssertionError(f"volume {ref} went to {seen['status']}")
        return seen["status"] == status

    wait_for(check, timeout, what=f"volume {ref} to be {status} (last: {seen.get('status')})")
    return seen


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def refused(cloud: Cloud, *args: str, user: str = "admin", env=None) -> str:
    r = cloud.openstack(*args, user=user, env=env, check=False)
    assert r.returncode != 0, f"openstack {' '.join(args)} should have been refused"
    return r.stderr


def api(cloud: Cloud, method: str, path: str, body=None, user: str = "admin", version: str = "3.0"):
    """A raw Block Storage v3 request (project-less URL) with the user's token."""
    token = cloud.openstack("token", "issue", "-f", "value", "-c", "id", user=user).stdout.strip()
    return httpx.request(method, f"{cloud.url}/volume/v3{path}", json=body, timeout=30,
                         headers={"X-Auth-Token": token, "OpenStack-API-Version": f"volume {version}"})


@pytest.fixture(scope="module")
def image(cloud, tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "small.raw"
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(path), "16M"], check=True)
    img = cloud.os_json("image", "create", "--disk-format", "raw", "--container-format", "bare", "--public",
                        "--file", str(path), name("volsrc"))
    yield img
    cloud.openstack("image", "delete", img["id"], check=False)


def test_services_types_and_zones(cloud):
    services = cloud.os_json("volume", "service", "list")
    binaries = {s["Binary"]: s for s in services}
    assert {"cinder-scheduler", "cinder-volume", "cinder-backup"} <= set(binaries)
    assert binaries["cinder-volume"]["Host"].endswith("@filedriver-1")
    assert all(s["State"] == "up" and s["Status"] == "enabled" for s in services)
    types = [t["Name"] for t in cloud.os_json("volume", "type", "list")]
    assert "filedriver-1" in types
    zones = cloud.os_json("availability", "zone", "list", "--volume")
    assert zones[0]["Zone Name"] == "nova" and zones[0]["Zone Status"] == "available"


def test_volume_life_cycle(cloud, image):
    n = name("lab")
    v = cloud.os_json("volume", "create", "--size", "1", "--property", "tier=gold", n)
    assert v["status"] == "creating" and v["size"] == 1
    v = wait_volume(cloud, n, "available")
    assert v["type"] == "filedriver-1" and str(v["bootable"]).lower() == "false"
    assert v["properties"] == {"tier": "gold"}
    assert v["os-vol-host-attr:host"].endswith("@filedriver-1#filedriver-1")
    listed = {x["Name"]: x for x in cloud.os_json("volume", "list")}
    assert listed[n]["Status"] == "available" and listed[n]["Size"] == 1

    # update, extend (never smaller), readonly, bootable
    cloud.openstack("volume", "set", "--name", n + "-x", "--description", "lab volume", n)
    n += "-x"
    cloud.openstack("volume", "set", "--size", "2", n)
    v = wait_volume(cloud, n, "available")
    assert v["size"] == 2 and v["description"] == "lab volume"
    vid = volume(cloud, n)["id"]
    r = api(cloud, "POST", f"/volumes/{vid}/action", {"os-extend": {"new_size": 1}})
    assert r.status_code == 400
    assert "New size for extend must be greater than current size" in r.json()["badRequest"]["message"]
    assert r.headers["OpenStack-API-Version"] == "volume 3.0"
    cloud.openstack("volume", "set", "--read-only", "--bootable", n)
    v = volume(cloud, n)
    assert v["properties"].get("readonly") == "True" and str(v["bootable"]).lower() == "true"
    cloud.openstack("volume", "set", "--read-write", "--non-bootable", n)

    # snapshot -> volume from it; clone; the volume with a snapshot is not deleted without cascade
    snap = cloud.os_json("volume", "snapshot", "create", "--volume", n, name("snap"))
    wait_for(lambda: cloud.os_json("volume", "snapshot", "show", snap["id"])["status"] == "available",
             what="snapshot available")
    # metadata of volumes and snapshots: set merges, unset removes one key
    for kind, ref in (("volume", n), ("volume snapshot", snap["id"])):
        cloud.openstack(*kind.split(), "set", "--property", "a=1", "--property", "b=2", ref)
        cloud.openstack(*kind.split(), "unset", "--property", "a", ref)
        props = cloud.os_json(*kind.split(), "show", ref)["properties"]
        assert props.get("b") == "2" and "a" not in props, props
    vid = volume(cloud, n)["id"]
    r = api(cloud, "PUT", f"/volumes/{vid}/metadata/b", {"meta": {"c": "3"}})
    assert r.status_code == 400 and "mismatch" in r.json()["badRequest"]["message"]
    r = api(cloud, "DELETE", f"/snapshots/{snap['id']}/metadata/nope")
    assert r.status_code == 404 and "nope" in r.json()["itemNotFound"]["message"]
    from_snap = cloud.os_json("volume", "create", "--snapshot", snap["id"], name("fromsnap"))
    assert wait_volume(cloud, from_snap["id"], "available")["size"] == 2
    clone = cloud.os_json("volume", "create", "--source", n, name("clone"))
    assert wait_volume(cloud, clone["id"], "available")["source_volid"] == volume(cloud, n)["id"]
    err = refused(cloud, "volume", "delete", n)
    assert "dependent snapshots" in err

    # from an image (bootable, image metadata), and back to an image
    fromimg = cloud.os_json("volume", "create", "--size", "1", "--image", image["id"], name("fromimg"))
    v = wait_volume(cloud, fromimg["id"], "available")
    assert str(v["bootable"]).lower() == "true" and v["volume_image_metadata"]["image_id"] == image["id"]
    up = name("uploaded")
    cloud.openstack("image", "create", "--volume", fromimg["id"], "--disk-format", "raw", up)
    wait_for(lambda: cloud.os_json("image", "show", up)["status"] == "active", what="uploaded image active")
    wait_volume(cloud, fromimg["id"], "available")
    cloud.openstack("image", "delete", up)

    # cascade delete takes the snapshot along
    cloud.openstack("volume", "delete", from_snap["id"], clone["id"], fromimg["id"])
    cloud.openstack("volume", "delete", "--purge", n)
    wait_for(lambda: not [x for x in cloud.os_json("volume", "list")
                          if x["ID"] in (from_snap["id"], clone["id"], fromimg["id"]) or x["Name"] == n],
             what="volumes gone")
    assert snap["id"] not in {s["ID"] for s in cloud.os_json("volume", "snapshot", "list")}


def test_attach_detach_and_refusals(cloud, tmp_path):
    disk = tmp_path / "boot.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    image_id = cloud.os_json("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                             "--file", str(disk), name("boot"))["id"]
    servers = [cloud.os_json("server", "create", "--flavor", "m1.nano", "--image", image_id, "--nic", "none",
                             "--os-compute-api-version", "2.37", name("vm"))["id"] for _ in range(2)]
    for sid in servers:
        wait_for(lambda sid=sid: cloud.os_json("server", "show", sid)["status"] == "ACTIVE", timeout=60,
                 what="server ACTIVE")
    n = name("att")
    vid = cloud.os_json("volume", "create", "--size", "1", n)["id"]
    wait_volume(cloud, vid, "available")
    try:
        att = cloud.os_json("server", "add", "volume", servers[0], vid)
        assert att["Device"] == "/dev/vdb" and att["Volume ID"] == vid
        v = wait_volume(cloud, vid, "in-use")
        assert v["attachments"][0]["server_id"] == servers[0]
        assert v["attachments"][0]["device"] == "/dev/vdb"
        listed = cloud.os_json("server", "volume", "list", servers[0])
        assert [x["Volume ID"] for x in listed] == [vid]
        shown = cloud.os_json("server", "show", servers[0])
        assert vid in str(shown["volumes_attached"])

        # refusals: a second server, delete in use
        err = refused(cloud, "server", "add", "volume", servers[1], vid)
        assert "400" in err
        err = refused(cloud, "volume", "delete", vid)
        assert "must be available" in err
        # a detach marks the volume detaching first (Nova's begin_detaching): one that is not
        # in-use (an admin reset it) is refused with a 400 and stays attached
        cloud.openstack("volume", "set", "--state", "error", vid)
        err = refused(cloud, "server", "remove", "volume", servers[0], vid)
        assert "400" in err and "in-use" in err, err
        assert [x["Volume ID"] for x in cloud.os_json("server", "volume", "list", servers[0])] == [vid]
        assert "detach_volume" not in [a["Action"] for a in cloud.os_json("server", "event", "list", servers[0])]
        cloud.openstack("volume", "set", "--state", "in-use", vid)

        cloud.openstack("server", "remove", "volume", servers[0], vid)
        wait_volume(cloud, vid, "available")
        assert cloud.os_json("server", "volume", "list", servers[0]) == []

        # the v3 attachments API shows nothing left
        atts = cloud.os_json("volume", "attachment", "list", "--os-volume-api-version", "3.27")
        assert not [a for a in atts if a["Volume ID"] == vid]

        # delete_on_termination: the volume goes with the server
        cloud.openstack("server", "add", "volume", "--enable-delete-on-termination",
                        "--os-compute-api-version", "2.79", servers[1], vid)
        wait_volume(cloud, vid, "in-use")
        cloud.openstack("server", "delete", "--wait", servers[1])
        servers.remove(servers[1])
        wait_for(lambda: vid not in {x["ID"] for x in cloud.os_json("volume", "list")}, what="volume deleted")
    finally:
        for sid in servers:
            cloud.openstack("server", "delete", "--wait", sid, check=False)
        cloud.openstack("volume", "delete", "--force", vid, check=False)
        cloud.openstack("image", "delete", image_id, check=False)


def test_quota_and_limits(cloud):
    with cloud.new_member("volq") as env:
        project = env["OS_PROJECT_NAME"]
        cloud.openstack("quota", "set", "--volumes", "1", "--gigabytes", "3", project)
        first = cloud.os_json("volume", "create", "--size", "2", name("q1"), env=env)
        wait_volume(cloud, first["id"], "available", env=env)
        err = refused(cloud, "volume", "create", "--size", "1", name("q2"), env=env)
        assert "413" in err or "exceed" in err.lower()
        cloud.openstack("quota", "set", "--volumes", "5", project)
        err = refused(cloud, "volume", "create", "--size", "2", name("q3"), env=env)
        assert "gigabytes" in err
        limits = cloud.os_json("limits", "show", "--absolute", env=env)
        values = {x["Name"]: x["Value"] for x in limits}
        assert values["total_volumes_used"] == 1 and values["total_gigabytes_used"] == 2
        assert values["max_total_volume_gigabytes"] == 3
        cloud.openstack("volume", "delete", first["id"], env=env)
        wait_for(lambda: not cloud.os_json("volume", "list", env=env), what="quota volume deleted")


def test_transfer_moves_ownership(cloud):
    with cloud.new_member("voltx") as giver, cloud.new_member("volrx") as taker:
        v = cloud.os_json("volume", "create", "--size", "1", name("tx"), env=giver)
        wait_volume(cloud, v["id"], "available", env=giver)
        tr = cloud.os_json("volume", "transfer", "request", "create", v["id"], env=giver)
        assert tr["auth_key"] and tr["volume_id"] == v["id"]
        assert volume(cloud, v["id"], env=giver)["status"] == "awaiting-transfer"
        err = refused(cloud, "volume", "transfer", "request", "accept", "--auth-key", "wrong", tr["id"], env=taker)
        assert "auth key" in err.lower()
        cloud.openstack("volume", "transfer", "request", "accept", "--auth-key", tr["auth_key"], tr["id"],
                        env=taker)
        got = volume(cloud, v["id"], env=taker)
        assert got["status"] == "available"
        assert cloud.openstack("volume", "show", v["id"], env=giver, check=False).returncode != 0
        cloud.openstack("volume", "delete", v["id"], env=taker)


def test_private_type_access_and_retype(cloud):
    with cloud.new_member("voltype") as env:
        project = env["OS_PROJECT_NAME"]
        tname = name("gold")
        cloud.openstack("volume", "type", "create", "--private", "--property", "volume_backend_name=filedriver-1",
                        tname)
        try:
            assert tname not in [t["Name"] for t in cloud.os_json("volume", "type", "list", env=env)]
            refused(cloud, "volume", "create", "--size", "1", "--type", tname, name("t"), env=env)
            cloud.openstack("volume", "type", "set", "--project", project, tname)
            assert tname in [t["Name"] for t in cloud.os_json("volume", "type", "list", env=env)]
            v = cloud.os_json("volume", "create", "--size", "1", name("t"), env=env)
            wait_volume(cloud, v["id"], "available", env=env)
            cloud.openstack("volume", "set", "--type", tname, "--retype-policy", "never", v["id"], env=env)
            assert wait_volume(cloud, v["id"], "available", env=env)["type"] == tname
            refused(cloud, "volume", "type", "delete", tname)  # in use
            cloud.openstack("volume", "delete", v["id"], env=env)
            wait_for(lambda: not cloud.os_json("volume", "list", env=env), what="typed volume deleted")
        finally:
            cloud.openstack("volume", "type", "delete", tname, check=False)


def test_backup_and_restore(cloud):
    n = name("bk")
    v = cloud.os_json("volume", "create", "--size", "1", n)
    wait_volume(cloud, v["id"], "available")
    b = cloud.os_json("volume", "backup", "create", "--name", name("backup"), v["id"])
    wait_for(lambda: cloud.os_json("volume", "backup", "show", b["id"])["status"] == "available",
             what="backup available")
    wait_volume(cloud, v["id"], "available")
    cloud.openstack("volume", "backup", "restore", b["id"], v["id"], "--force")
    wait_volume(cloud, v["id"], "available")
    cloud.openstack("volume", "backup", "delete", b["id"])
    wait_for(lambda: b["id"] not in {x["ID"] for x in cloud.os_json("volume", "backup", "list")},
             what="backup deleted")
    cloud.openstack("volume", "delete", v["id"])


def test_backup_needs_an_enabled_backup_service(cloud):
    """The API asks the services table (as Cinder's backup API does), not the agent in its
    own process: with cinder-backup disabled a backup is refused with a 503."""
    v = cloud.os_json("volume", "create", "--size", "1", name("nobk"))
    wait_volume(cloud, v["id"], "available")
    host = next(s["Host"] for s in cloud.os_json("volume", "service", "list") if s["Binary"] == "cinder-backup")
    cloud.openstack("volume", "service", "set", "--disable", host, "cinder-backup")
    try:
        err = refused(cloud, "volume", "backup", "create", "--name", name("backup"), v["id"])
        assert "503" in err and "cinder-backup" in err, err
        assert cloud.os_json("volume", "backup", "list", "--volume", v["id"]) == []  # nothing was made
    finally:
        cloud.openstack("volume", "service", "set", "--enable", host, "cinder-backup")
    b = cloud.os_json("volume", "backup", "create", "--name", name("backup"), v["id"])
    wait_for(lambda: cloud.os_json("volume", "backup", "show", b["id"])["status"] == "available",
             what="backup available")
    cloud.openstack("volume", "backup", "delete", b["id"])
    wait_for(lambda: b["id"] not in {x["ID"] for x in cloud.os_json("volume", "backup", "list")},
             what="backup deleted")
    cloud.openstack("volume", "delete", v["id"])


def test_admin_actions(cloud):
    v = cloud.os_json("volume", "create", "--size", "1", name("adm"))
    wait_volume(cloud, v["id"], "available")
    cloud.openstack("volume", "set", "--state", "error", v["id"])
    assert volume(cloud, v["id"])["status"] == "error"
    others = cloud.os_json("volume", "list", "--all-projects", "--long")
    assert v["id"] in {x["ID"] for x in others}
    err = refused(cloud, "volume", "set", "--state", "available", v["id"], user="demo")
    assert "No Volume found" in err  # another project's volume is not even visible
    mine = cloud.os_json("volume", "create", "--size", "1", name("demo"), user="demo")
    wait_volume(cloud, mine["id"], "available", user="demo")
    r = api(cloud, "POST", f"/volumes/{mine['id']}/action", {"os-reset_status": {"status": "error"}}, user="demo")
    assert r.status_code == 403 and "forbidden" in r.json()
    cloud.openstack("volume", "delete", mine["id"], user="demo")
    cloud.openstack("volume", "delete", "--force", v["id"])
    wait_for(lambda: v["id"] not in {x["ID"] for x in cloud.os_json("volume", "list")}, what="force-deleted")


def _volume_file(cloud: Cloud, volume_id: str):
    return cloud.state / "volumes" / f"volume-{volume_id}"


def _poke(path, offset: int, byte: bytes, length: int = 1024 * 1024) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(byte * length)


def _peek(path, offset: int, length: int = 1024 * 1024) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(length)
    assert len(set(data)) == 1, f"mixed data at {offset}"
    return data[:1]


def wait_backup(cloud: Cloud, ref: str) -> dict:
    seen: dict = {}

    def check():
        seen.update(cloud.os_json("volume", "backup", "show", ref))
        assert seen["status"] != "error", f"backup failed: {seen.get('fail_reason')}"
        return seen["status"] == "available"

    wait_for(check, 60, what=f"backup {ref} available (last: {seen.get('status')})")
    return seen


def test_full_and_incremental_backups_keep_the_data(cloud):
    """The volume's data goes to the object store in chunks; an incremental backup stores
    only what changed, and restoring either brings back exactly its own point in time."""
    MiB = 1024 * 1024
    v = cloud.os_json("volume", "create", "--size", "1", name("bkdata"))
    wait_volume(cloud, v["id"], "available")
    path = _volume_file(cloud, v["id"])
    _poke(path, 0, b"A")
    _poke(path, 512 * MiB, b"B")
    assert "No backups available" in refused(cloud, "volume", "backup", "create", "--incremental", v["id"])

    full = cloud.os_json("volume", "backup", "create", "--name", name("full"), v["id"])
    full = wait_backup(cloud, full["id"])
    assert full["is_incremental"] is False and full["object_count"] == 3  # two 4 MiB chunks and the manifest
    wait_volume(cloud, v["id"], "available")

    _poke(path, 0, b"C")
    _poke(path, 900 * MiB, b"D")
    inc = cloud.os_json("volume", "backup", "create", "--incremental", "--name", name("inc"), v["id"])
    inc = wait_backup(cloud, inc["id"])
    assert inc["is_incremental"] is True and inc["object_count"] == 3  # the two changed chunks and the manifest
    assert cloud.os_json("volume", "backup", "show", full["id"])["has_dependent_backups"] is True
    wait_volume(cloud, v["id"], "available")

    # the objects are in the object store, in the volume service's account
    objects = {o["Name"] for o in cloud.os_json("object", "list", "volumebackups", user="cinder")}
    assert f"volume_{v['id']}/{full['id']}/manifest" in objects
    assert f"volume_{v['id']}/{inc['id']}/chunk-{(900 * MiB) // (4 * MiB):08d}" in objects

    stderr = refused(cloud, "volume", "backup", "delete", full["id"])
    assert "Incremental backups exist" in stderr

    # restore each into a new volume: each shows its own point in time
    restored = {}
    for b in (full, inc):
        out = cloud.os_json("volume", "backup", "restore", b["id"], name("restored"))
        restored[b["id"]] = out["volume_id"]
        wait_volume(cloud, out["volume_id"], "available", timeout=60)
    r_full, r_inc = (_volume_file(cloud, restored[full["id"]]), _volume_file(cloud, restored[inc["id"]]))
    assert (_peek(r_full, 0), _peek(r_full, 512 * MiB), _peek(r_full, 900 * MiB)) == (b"A", b"B", b"\0")
    assert (_peek(r_inc, 0), _peek(r_inc, 512 * MiB), _peek(r_inc, 900 * MiB)) == (b"C", b"B", b"D")

    # restoring over an existing volume replaces all of its data
    cloud.openstack("volume", "backup", "restore", "--force", full["id"], v["id"])
    wait_volume(cloud, v["id"], "available", timeout=60)
    assert (_peek(path, 0), _peek(path, 900 * MiB)) == (b"A", b"\0")

    # a corrupted chunk is detected on restore, and the volume says so
    chunk = f"volume_{v['id']}/{inc['id']}/chunk-00000000"
    cloud.openstack("object", "delete", "volumebackups", chunk, user="cinder")
    bad = cloud.os_json("volume", "backup", "restore", inc["id"], name("broken"))
    wait_volume(cloud, bad["volume_id"], "error_restoring", timeout=60)

    cloud.openstack("volume", "backup", "delete", inc["id"])
    wait_for(lambda: inc["id"] not in {x["ID"] for x in cloud.os_json("volume", "backup", "list")},
             what="incremental backup deleted")
    cloud.openstack("volume", "backup", "delete", full["id"])
    wait_for(lambda: full["id"] not in {x["ID"] for x in cloud.os_json("volume", "backup", "list")},
             what="full backup deleted")
    left = {o["Name"] for o in cloud.os_json("object", "list", "volumebackups", user="cinder")}
    assert not {n for n in left if n.startswith(f"volume_{v['id']}/")}
    for vid in (v["id"], *restored.values(), bad["volume_id"]):
        cloud.openstack("volume", "delete", "--force", vid, check=False)
