"""A real guest's CPU time, as the telemetry collector measures it, rises while it is busy.

A cloud with libvirt (QEMU TCG), no networking and the collector polling every 5 s
boots a tiny guest whose `user_data` idles a little, then keeps its one vcpu busy with
a shell loop for 90 s (saying so on the serial console), then idles again. Through
`openstack metric ...` (gnocchiclient): the server's `instance` resource has `cpu`
(cumulative ns) rising by many seconds of CPU while the loop runs, and `cpu_util` falling
below half its busy level once the loop ended (how busy a guest gets depends on what else
the 2-core host runs); its root disk's `instance_disk` resource counts the bytes the boot read. Every wait is bounded; the server goes at the end.
"""

from __future__ import annotations

import json

import pytest

from tests.cloud import Cloud
from tests.e2e import guests
from tests.e2e.guests import wait_console, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900), pytest.mark.root, pytest.mark.libvirt]

guests.require_guests()

BUSY = """#!/bin/sh
(
sleep 10
echo "load: busy"
end=$(( $(date +%s) + 90 ))
while [ "$(date +%s)" -lt "$end" ]; do :; done
echo "load: idle"
) </dev/null &
"""


@pytest.fixture(scope="module")
def cloud():
    c = Cloud("telemetry-guests", extra_env={"ONESTACK_COMPUTE_DRIVER": "libvirt",
                                             "ONESTACK_TELEMETRY_INTERVAL": "5"})
    try:
        c.start()
        if not any(e["Type"] == "metric" for e in c.os_json("catalog", "list")):
            pytest.skip("no metric service in this build")
        c.onestack("image", "register", "tiny", timeout=600)
        yield c
    finally:
        c.stop()


def _points(cloud: Cloud, metric: str, rid: str) -> list[dict]:
    """The means at the finest granularity the metric keeps, oldest first."""
    r = cloud.openstack("metric", "measures", "show", metric, "--resource-id", rid, "--aggregation", "mean",
                        "-f", "json", check=False)
    points = json.loads(r.stdout) if r.returncode == 0 else []
    finest = min((p["granularity"] for p in points), default=None)
    return [p for p in points if p["granularity"] == finest]


def _last(cloud: Cloud, metric: str, rid: str) -> float | None:
    points = _points(cloud, metric, rid)
    return points[-1]["value"] if points else None


def test_cpu_time_rises_while_the_guest_is_busy(cloud, tmp_path):
    sid = guests.boot(cloud, "busy-guest", tmp_path, BUSY)
    try:
        guests.wait_ready(cloud, "busy-guest")
        wait_console(cloud, "busy-guest", r"load: busy", timeout=60)
        start = wait_for(lambda: _last(cloud, "cpu", sid), 60, "a measure of cpu")
        # 20 s of CPU: an idle TCG guest takes many minutes for that, the busy loop well under two
        wait_for(lambda: (_last(cloud, "cpu", sid) or 0) >= start + 20e9, 120, "the guest's cpu time to rise 20 s")
        busy = _last(cloud, "cpu_util", sid)
        assert busy is not None and busy > 10, _points(cloud, "cpu_util", sid)

        # (how busy depends on what else the host runs; idle is well under half of it)
        wait_console(cloud, "busy-guest", r"load: idle", timeout=120)
        try:
            wait_for(lambda: (lambda u: u is not None and u < busy / 2)(_last(cloud, "cpu_util", sid)), 150,
                     f"cpu_util below half its busy {busy:.0f} % once the loop ended")
        except AssertionError as e:
            raise AssertionError(f"{e}: {_points(cloud, 'cpu_util', sid)}") from None
        assert (_last(cloud, "disk.device.read.bytes", f"{sid}-vda") or 0) > 0
    finally:
        cloud.openstack("server", "delete", "--wait", sid, check=False)
