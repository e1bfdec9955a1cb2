"""Block Storage with real guests: the book's Cinder lab seen from inside the guests.

A cloud with libvirt (QEMU TCG) and no networking (`--nic none`, so no network
agent is needed) boots tiny guests with a config drive whose `user_data` script
watches for `/dev/vdb`: each time the disk appears it prints what the disk holds
(its first bytes), writes its own marker when asked, syncs, and prints again when
the disk is gone, all on the serial console (`openstack console log show`).

- a new 1 GiB volume hot-plugged into guest A is seen empty; A writes to it;
- detached, A sees it disappear; attached to guest B, B reads A's data;
- a snapshot of it, and a volume made from the snapshot, hold the same data (B reads it);
- a backup of it (into the object store), restored into a new volume, holds it too;
- a server boots from a volume made from the tiny image (its ready line), and the
  volume survives the server's deletion (`delete_on_termination` false);
- a volume attached and detached while its guest still boots (the guest drops the first
  unplug requests) is asked for again until it comes back available.

Transfers and the refusals are covered by tests/api/test_volume_lab.py. Every wait
is bounded; servers, volumes and snapshots are removed at the end.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from onestack.compute.virt.domain import domain_name
from tests.cloud import Cloud
from tests.e2e import guests
from tests.e2e.guests import IMAGE, PROBE, wait_console, wait_for, wait_ready, wait_volume

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600), pytest.mark.root, pytest.mark.libvirt]
guests.require_guests()

# user_data: watch /dev/vdb (the first volume: the config drive is an IDE CD-ROM) up
# to 4 times; print its first bytes when it appears, write WRITE-<n> if asked, sync,
# and say when it is gone. In the background, so the guest finishes booting.
@pytest.fixture(scope="module")
def cloud():
    c = Cloud("volguests", extra_env={"ONESTACK_COMPUTE_DRIVER": "libvirt"})
    try:
        c.start()
        c.onestack("image", "register", "tiny", timeout=600)
        yield c
    finally:
        c.stop()


def volume_status(cloud: Cloud, ref: str) -> str:
    return cloud.os_json("volume", "show", ref)["status"]


def boot(cloud: Cloud, name: str, tmp_path, write: str = "", *source: str) -> str:
    return guests.boot(cloud, name, tmp_path, PROBE.format(write=write), *source)


def test_volumes_seen_by_guests(cloud, tmp_path):
    servers, volumes, snapshots, backups = [], [], [], []
    try:
        servers.append(boot(cloud, "vol-a", tmp_path, "alpha"))
        servers.append(boot(cloud, "vol-b", tmp_path, ""))
        vol = cloud.os_json("volume", "create", "--size", "1", "lab-vol")["id"]
        volumes.append(vol)
        wait_volume(cloud, vol, "available")
        for name in ("vol-a", "vol-b"):
            wait_ready(cloud, name)

        # hot-plugged into A: empty; A writes its marker
        cloud.openstack("server", "add", "volume", "vol-a", vol)
        wait_volume(cloud, vol, "in-use")
        wait_console(cloud, "vol-a", r"volprobe: 1 appeared read=\[\]")
        wait_console(cloud, "vol-a", r"volprobe: 1 wrote alpha-1")

        # detached: A sees it go; attached to B: B reads A's data
        cloud.openstack("server", "remove", "volume", "vol-a", vol)
        wait_volume(cloud, vol, "available")
        wait_console(cloud, "vol-a", r"volprobe: 1 gone")
        cloud.openstack("server", "add", "volume", "vol-b", vol)
        wait_console(cloud, "vol-b", r"volprobe: 1 appeared read=\[alpha-1\]")
        cloud.openstack("server", "remove", "volume", "vol-b", vol)
        wait_volume(cloud, vol, "available")
        wait_console(cloud, "vol-b", r"volprobe: 1 gone")

        # snapshot -> a new volume from it has the data
        snap = cloud.os_json("volume", "snapshot", "create", "--volume", vol, "lab-snap")["id"]
        snapshots.append(snap)
        wait_for(lambda: cloud.os_json("volume", "snapshot", "show", snap)["status"] == "available", 60,
                 "snapshot available")
        copy = cloud.os_json("volume", "create", "--snapshot", snap, "lab-from-snap")["id"]
        volumes.append(copy)
        wait_volume(cloud, copy, "available")
        cloud.openstack("server", "add", "volume", "vol-b", copy)
        wait_console(cloud, "vol-b", r"volprobe: 2 appeared read=\[alpha-1\]")
        cloud.openstack("server", "remove", "volume", "vol-b", copy)
        wait_volume(cloud, copy, "available")

        # backup (into the object store) -> restore into a new volume: B reads the data
        bk = cloud.os_json("volume", "backup", "create", "--name", "lab-backup", vol)["id"]
        backups.append(bk)
        wait_for(lambda: cloud.os_json("volume", "backup", "show", bk)["status"] == "available", 120,
                 "backup available")
        restored = cloud.os_json("volume", "backup", "restore", bk, "lab-restored")["volume_id"]
        volumes.append(restored)
        wait_volume(cloud, restored, "available", timeout=120)
        cloud.openstack("server", "add", "volume", "vol-b", restored)
        wait_console(cloud, "vol-b", r"volprobe: 3 appeared read=\[alpha-1\]")
        cloud.openstack("server", "remove", "volume", "vol-b", restored)
        wait_volume(cloud, restored, "available")
    finally:
        for sid in servers:
            cloud.openstack("server", "delete", "--wait", sid, check=False)
        for bid in backups:
            cloud.openstack("volume", "backup", "delete", bid, check=False)
            wait_for(lambda bid=bid: bid not in {b["ID"] for b in cloud.os_json("volume", "backup", "list")},
                     60, "backup deleted")
        for sid in snapshots:
            cloud.openstack("volume", "snapshot", "delete", sid, check=False)
            wait_for(lambda sid=sid: sid not in {s["ID"] for s in cloud.os_json("volume", "snapshot", "list")},
                     60, "snapshot deleted")
        for vid in volumes:
            cloud.openstack("volume", "delete", "--force", vid, check=False)
    wait_for(lambda: not cloud.os_json("volume", "list"), 60, "volumes deleted")


def test_boot_from_volume(cloud, tmp_path):
    vol = cloud.os_json("volume", "create", "--size", "1", "--image", IMAGE, "boot-vol")["id"]
    try:
        wait_volume(cloud, vol, "available", timeout=120)
        sid = boot(cloud, "vol-boot", tmp_path, "", "--volume", vol)
        try:
            wait_ready(cloud, "vol-boot")  # the tiny guest booted from the volume's file
            shown = cloud.os_json("server", "show", sid)
            assert [a["id"] for a in shown["volumes_attached"]] == [vol]
            assert cloud.os_json("volume", "show", vol)["attachments"][0]["device"] == "/dev/vda"
        finally:
            cloud.openstack("server", "delete", "--wait", sid)
        # delete_on_termination false (`--volume`): the volume outlives its server
        wait_volume(cloud, vol, "available")
    finally:
        cloud.openstack("volume", "delete", vol, check=False)
    wait_for(lambda: not cloud.os_json("volume", "list"), 60, "boot volume deleted")


def test_shelve_unshelve_volume_backed_guest_keeps_its_data(cloud, tmp_path):
    """A guest booted from a volume writes a marker near the end of its root volume (past
    the tiny image's data); shelved (offloaded: the domain goes, no image is made, the volume
    stays attached) and unshelved, it boots from the same volume and reads the marker back."""
    tag = f"kept-{os.urandom(4).hex()}"
    script = tmp_path / "rootprobe.sh"
    script.write_text(f"""#!/bin/sh
(
at=$(dd if=/dev/vda bs=1024 skip=921600 count=1 2>/dev/null | tr -cd 'a-z0-9-')
echo "rootprobe: read=[$at]"
if [ -z "$at" ]; then
  printf '%s' '{tag}' | dd of=/dev/vda bs=1024 seek=921600 conv=notrunc 2>/dev/null
  sync
  echo "rootprobe: wrote {tag}"
fi
) </dev/null &
""")
    vol = cloud.os_json("volume", "create", "--size", "1", "--image", IMAGE, "shelve-root")["id"]
    sid = None
    try:
        wait_volume(cloud, vol, "available", timeout=120)
        sid = cloud.os_json("server", "create", "--flavor", "m1.nano", "--volume", vol, "--nic", "none",
                            "--os-compute-api-version", "2.37", "--config-drive", "true",
                            "--user-data", str(script), "bfv-shelve")["id"]
        wait_ready(cloud, sid)
        wait_console(cloud, sid, rf"rootprobe: wrote {tag}")

        images = {i["ID"] for i in cloud.os_json("image", "list")}
        cloud.openstack("server", "shelve", sid)
        wait_for(lambda: cloud.os_json("server", "show", sid)["status"] in ("SHELVED_OFFLOADED", "ERROR"), 120,
                 "server shelved")
        shown = cloud.os_json("server", "show", sid)
        assert shown["status"] == "SHELVED_OFFLOADED", shown.get("fault")
        assert {i["ID"] for i in cloud.os_json("image", "list")} == images  # no image for a volume-backed one
        assert cloud.os_json("volume", "show", vol)["attachments"][0]["server_id"] == sid

        cloud.openstack("server", "unshelve", sid)
        wait_ready(cloud, sid)
        wait_console(cloud, sid, rf"rootprobe: read=\[{tag}\]")
        assert cloud.os_json("volume", "show", vol)["attachments"][0]["device"] == "/dev/vda"
    finally:
        if sid:
            cloud.openstack("server", "delete", "--wait", sid, check=False)
        wait_for(lambda: volume_status(cloud, vol) == "available", 60, "root volume released")
        cloud.openstack("volume", "delete", vol, check=False)
    wait_for(lambda: vol not in {v["ID"] for v in cloud.os_json("volume", "list")}, 60, "root volume deleted")


def test_detach_from_a_guest_still_booting(cloud, tmp_path):
    """Tempest's test_attach_detach_volume on a real guest: a volume attached as soon as the
    server is ACTIVE and detached at once. The guest, still booting, has not set up ACPI
    hot-plug and drops the first unplug request; the detach is asked again until the guest
    lets go, and the volume is available again, gone from the server and from its guest."""
    vol = cloud.os_json("volume", "create", "--size", "1", "early-vol")["id"]
    sid = None
    try:
        wait_volume(cloud, vol, "available")
        sid = guests.boot(cloud, "vol-early", tmp_path, "#!/bin/sh\n")
        wait_for(lambda: cloud.os_json("server", "show", sid)["status"] in ("ACTIVE", "ERROR"), 240,
                 "vol-early built")
        cloud.openstack("server", "add", "volume", sid, vol)
        wait_volume(cloud, vol, "in-use")
        cloud.openstack("server", "remove", "volume", sid, vol)
        wait_volume(cloud, vol, "available", timeout=300)  # 8 requests 20 s apart at most
        assert cloud.os_json("server", "volume", "list", sid) == []
        assert cloud.os_json("volume", "show", vol)["attachments"] == []
        detach = next(a for a in cloud.os_json("server", "event", "list", sid) if a["Action"] == "detach_volume")
        events = cloud.os_json("server", "event", "show", sid, detach["Request ID"])["events"]
        assert [(e["event"], e["result"]) for e in events] == [("compute_detach_volume", "Success")], events
        for state in ([], ["--inactive"]):  # the running guest and its definition agree
            disks = subprocess.run(["virsh", "-c", "qemu:///system", "domblklist", *state, domain_name(sid)],
                                   capture_output=True, text=True, check=True).stdout
            assert f"volume-{vol}" not in disks, (state, disks)
    finally:
        if sid:
            cloud.openstack("server", "delete", "--wait", sid, check=False)
        cloud.openstack("volume", "delete", vol, check=False)
    wait_for(lambda: vol not in {v["ID"] for v in cloud.os_json("volume", "list")}, 60, "volume deleted")
