"""Online extend seen from inside a real guest.

A cloud with libvirt (QEMU) and no networking boots a tiny guest whose `user_data`
script prints `/sys/block/vdb/size` (512-byte sectors) on the serial console each
time it changes. A 1 GiB volume is hot-plugged (2097152 sectors), then grown to
2 GiB while in use (`--os-volume-api-version 3.42 volume set --size 2`): the volume
agent grows the file and posts Cinder's `volume-extended` event to the compute API,
whose agent calls libvirt's blockResize, and the guest's virtio disk reports
4194304 sectors without a reboot or a re-attach. Every wait is bounded; the server
and the volume are removed at the end.
"""

from __future__ import annotations

import pytest

from tests.cloud import Cloud
from tests.e2e import guests
from tests.e2e.guests import IMAGE, wait_console, wait_for, wait_volume

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900), pytest.mark.root, pytest.mark.libvirt]

guests.require_guests()

# user_data: for about 10 minutes, print vdb's size whenever it changes (in the
# background, so the guest finishes booting)
WATCH = """#!/bin/sh
nap() { sleep 0.2 2>/dev/null || sleep 1; }
(
last=none
i=0
while [ $i -lt 3000 ]; do
  now=$(cat /sys/block/vdb/size 2>/dev/null || echo absent)
  if [ "$now" != "$last" ]; then echo "volsize: $now"; last=$now; fi
  i=$((i+1)); nap
done
) </dev/null &
"""









@pytest.fixture(scope="module")
def cloud():
    c = Cloud("volextend", extra_env={"ONESTACK_COMPUTE_DRIVER": "libvirt"})
    try:
        c.start()
        c.onestack("image", "register", "tiny", timeout=600)
        yield c
    finally:
        c.stop()


def test_guest_sees_online_extend(cloud, tmp_path):
    script = tmp_path / "watch.sh"
    script.write_text(WATCH)
    sid = cloud.os_json("server", "create", "--flavor", "m1.nano", "--image", IMAGE, "--nic", "none",
                        "--os-compute-api-version", "2.37", "--config-drive", "true",
                        "--user-data", str(script), "grow-guest")["id"]
    vid = None
    try:
        vid = cloud.os_json("volume", "create", "--size", "1", "grow-vol")["id"]
        wait_volume(cloud, vid, "available")
        wait_for(lambda: cloud.os_json("server", "show", sid)["status"] in ("ACTIVE", "ERROR"), 240, "built")
        assert cloud.os_json("server", "show", sid)["status"] == "ACTIVE"
        wait_console(cloud, "grow-guest", r"onestack-tiny: ready\.", timeout=240)
        wait_console(cloud, "grow-guest", r"volsize: absent")

        cloud.openstack("server", "add", "volume", "grow-guest", vid)
        wait_volume(cloud, vid, "in-use")
        wait_console(cloud, "grow-guest", r"volsize: 2097152\b")

        cloud.openstack("--os-volume-api-version", "3.42", "volume", "set", "--size", "2", vid)
        wait_for(lambda: (lambda v: v["status"] == "in-use" and v["size"] == 2)(
            cloud.os_json("volume", "show", vid)), 60, "volume in-use at 2 GiB")
        wait_console(cloud, "grow-guest", r"volsize: 4194304\b", timeout=60)
        actions = [a["Action"] for a in cloud.os_json("server", "event", "list", "grow-guest")]
        assert "extend_volume" in actions

        cloud.openstack("server", "remove", "volume", "grow-guest", vid)
        wait_volume(cloud, vid, "available")
        wait_console(cloud, "grow-guest", r"volsize: 4194304\s+volsize: absent")
    finally:
        cloud.openstack("server", "delete", "--wait", sid, check=False)
        if vid:
            cloud.openstack("volume", "delete", "--force", vid, check=False)
    wait_for(lambda: not cloud.os_json("volume", "list"), 60, "volume deleted")
