"""Remote attach: volumes reach real guests over NBD exports (qemu-storage-daemon).

A cloud with libvirt (QEMU TCG), no networking and ``volume.attach_protocol = "nbd"``,
so even on this one machine every attachment goes the way a guest on another node
would take (an NBD export on 127.0.0.1, one daemon per attachment):

- a 1 GiB volume hot-plugged into a guest is a ``<disk type='network'>`` in its XML;
  the guest sees ``/dev/vdb`` empty and writes its marker, which lands in the volume file;
- onestack restarts (down, up) with the volume attached: the daemon is re-adopted, not
  restarted, and the guest keeps its disk; detach then stops the daemon;
- a server boots from a volume over NBD (its ready line), and deleting it ends the export.

Every wait is bounded; servers and volumes are removed, and no export daemon of this
cloud is left running.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cloud import Cloud
from tests.e2e import guests
from tests.e2e.guests import IMAGE, console, wait_console, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900), pytest.mark.root, pytest.mark.libvirt]

guests.require_guests()
if not shutil.which("qemu-storage-daemon"):
    pytest.skip("qemu-storage-daemon missing (qemu-system-common)", allow_module_level=True)


# user_data: wait for /dev/vdb (the config drive is an IDE CD-ROM), print its first
# bytes, write a marker, sync, and say when the disk is gone. In the background.
PROBE = """#!/bin/sh
nap() { sleep 0.1 2>/dev/null || sleep 1; }
(
i=0
while [ ! -b /dev/vdb ]; do i=$((i+1)); [ $i -gt 9000 ] && exit 0; nap; done
echo "nbdprobe: appeared read=[$(dd if=/dev/vdb bs=64 count=1 2>/dev/null | tr -cd 'a-z0-9-')]"
printf '%s' "over-nbd" | dd of=/dev/vdb conv=notrunc 2>/dev/null
sync
echo "nbdprobe: wrote over-nbd"
i=0
while [ -b /dev/vdb ]; do i=$((i+1)); [ $i -gt 9000 ] && exit 0; nap; done
echo "nbdprobe: gone"
) </dev/null &
"""




@pytest.fixture(scope="module")
def cloud():
    c = Cloud("volnbd", extra_env={"ONESTACK_COMPUTE_DRIVER": "libvirt",
                                   "ONESTACK_VOLUME_ATTACH_PROTOCOL": "nbd"})
    try:
        c.start()
        c.onestack("image", "register", "tiny", timeout=600)
        yield c
    finally:
        c.stop()
        # `onestack down --purge` stopped this cloud's export daemons
        assert daemons(c) == [], "export daemons outlived their cloud"


def exports_dir(cloud: Cloud) -> Path:
    return cloud.state / "volumes" / "exports"


def ledger(cloud: Cloud) -> list[dict]:
    try:
        return json.loads((exports_dir(cloud) / "ledger.json").read_text())["exports"]
    except FileNotFoundError:
        return []


def daemons(cloud: Cloud) -> list[int]:
    """Live qemu-storage-daemon processes whose pid file is in this cloud's exports dir."""
    mark = str(exports_dir(cloud)) + "/"
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state != "Z" and argv and argv[0].endswith(b"qemu-storage-daemon") and \
                any(a.decode(errors="replace").startswith(mark) for a in argv):
            out.append(int(proc.name))
    return sorted(out)












def wait_volume(cloud: Cloud, ref: str, status: str, timeout: float = 90) -> None:
    guests.wait_volume(cloud, ref, status, timeout)


def wait_ready(cloud: Cloud, name: str) -> None:
    guests.wait_ready(cloud, name, timeout=300)


def boot(cloud: Cloud, name: str, tmp_path, *source: str) -> str:
    return guests.boot(cloud, name, tmp_path, PROBE, *source)


def domain_disks(server_id: str) -> dict[str, str]:
    """target dev -> disk type ('file' / 'network') of the guest's live XML."""
    import xml.etree.ElementTree as ET

    xml = subprocess.run(["virsh", "-c", "qemu:///system", "dumpxml", f"onestack-{server_id}"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    out = {}
    for d in ET.fromstring(xml).iter("disk"):
        target, source = d.find("target"), d.find("source")
        kind = d.get("type")
        if kind == "network" and source is not None:
            kind = f"network:{source.get('protocol')}"
        out[target.get("dev")] = kind
    return out


def test_hotplug_over_nbd_survives_restart(cloud, tmp_path):
    sid = vol = None
    try:
        sid = boot(cloud, "nbd-a", tmp_path)
        vol = cloud.os_json("volume", "create", "--size", "1", "nbd-vol")["id"]
        wait_volume(cloud, vol, "available")
        wait_ready(cloud, "nbd-a")
        assert daemons(cloud) == []

        cloud.openstack("server", "add", "volume", "nbd-a", vol)
        wait_volume(cloud, vol, "in-use")
        [entry] = ledger(cloud)
        assert entry["volume_id"] == vol and entry["host"] == "127.0.0.1"
        assert daemons(cloud) == [entry["pid"]]
        assert os.getsid(entry["pid"]) != os.getsid(0)  # its own session
        assert domain_disks(sid)["vdb"] == "network:nbd"
        wait_console(cloud, "nbd-a", r"nbdprobe: appeared read=\[\]")
        wait_console(cloud, "nbd-a", r"nbdprobe: wrote over-nbd")
        with open(cloud.state / "volumes" / f"volume-{vol}", "rb") as f:
            assert f.read(8) == b"over-nbd"  # through the export into the file

        # onestack restarts: the export is re-adopted as it runs, the guest keeps its disk
        cloud.onestack("down")
        assert daemons(cloud) == [entry["pid"]]
        cloud.start()
        assert daemons(cloud) == [entry["pid"]]
        assert [e["pid"] for e in ledger(cloud)] == [entry["pid"]]
        assert "nbdprobe: gone" not in console(cloud, "nbd-a")

        cloud.openstack("server", "remove", "volume", "nbd-a", vol)
        wait_volume(cloud, vol, "available")
        wait_console(cloud, "nbd-a", r"nbdprobe: gone")
        wait_for(lambda: daemons(cloud) == [], 30, "the export daemon to stop")
        assert ledger(cloud) == []
        # the data stays in the volume after the detach
        out = subprocess.run(["qemu-io", "-r", "-f", "raw", str(cloud.state / "volumes" / f"volume-{vol}"),
                              "-c", "read -v 0 8"], capture_output=True, text=True, check=True, timeout=60)
        assert " ".join(f"{b:02x}" for b in b"over-nbd") in out.stdout
    finally:
        if sid:
            cloud.openstack("server", "delete", "--wait", sid, check=False)
        if vol:
            wait_volume(cloud, vol, "available")
            cloud.openstack("volume", "delete", vol, check=False)
    wait_for(lambda: not cloud.os_json("volume", "list"), 60, "volume deleted")
    assert daemons(cloud) == []


def test_boot_from_volume_over_nbd(cloud, tmp_path):
    vol = cloud.os_json("volume", "create", "--size", "1", "--image", IMAGE, "nbd-boot")["id"]
    try:
        wait_volume(cloud, vol, "available", timeout=180)
        sid = boot(cloud, "nbd-boot", tmp_path, "--volume", vol)
        try:
            wait_ready(cloud, "nbd-boot")  # the tiny guest booted from the export
            assert domain_disks(sid)["vda"] == "network:nbd"
            assert [e["volume_id"] for e in ledger(cloud)] == [vol]
            assert len(daemons(cloud)) == 1
        finally:
            cloud.openstack("server", "delete", "--wait", sid)
        wait_volume(cloud, vol, "available")
        wait_for(lambda: daemons(cloud) == [], 30, "the boot volume's export daemon to stop")
    finally:
        cloud.openstack("volume", "delete", vol, check=False)
    wait_for(lambda: not cloud.os_json("volume", "list"), 60, "boot volume deleted")
    assert daemons(cloud) == [] and ledger(cloud) == []
