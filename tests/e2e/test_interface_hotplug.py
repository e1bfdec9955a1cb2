"""Interface hot-plug seen from inside a real guest.

A cloud with libvirt (QEMU) and the network agent boots a tiny guest with no NIC and a
config drive; its `user_data` script watches for network devices and runs DHCP on each
new one. `openstack server add port` hot-plugs a virtio NIC on the port's tap: the guest
sees the device with the port's MAC and gets the port's address from the network's
dnsmasq (the network agent wired the tap: the port goes ACTIVE). A hard reboot keeps
the NIC (it is in the domain's definition too): the guest's boot-time DHCP gets the
lease again. `openstack server remove port` unplugs it from the running guest and from
the definition, and unbinds the port. Every wait is bounded; all traffic stays inside
the cloud's own bridge and namespace.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.cloud import Cloud
from tests.e2e import guests
from tests.e2e.guests import wait_console, wait_for, wait_ready

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900), pytest.mark.root, pytest.mark.libvirt,
              pytest.mark.netns]

guests.require_guests()

# user_data: for about 10 minutes, report each network device as it comes and goes, and
# ask DHCP for an address on each new one (in the background, so the guest finishes booting)
WATCH = """#!/bin/sh
nap() { sleep 0.2 2>/dev/null || sleep 1; }
(
seen=" "
i=0
while [ $i -lt 3000 ]; do
  for n in /sys/class/net/eth*; do
    [ -e "$n" ] || continue
    d=${n##*/}
    case "$seen" in *" $d "*) continue;; esac
    seen="$seen$d "
    echo "hotnic: $d $(cat $n/address) appeared"
    udhcpc -i $d -n -q -t 20 -T 1 -O mtu -s /etc/udhcpc/default.script 2>&1 | grep onestack-tiny
  done
  for d in $seen; do
    [ -e /sys/class/net/$d ] && continue
    echo "hotnic: $d gone"
    seen=$(echo "$seen" | sed "s/ $d / /")
  done
  i=$((i+1)); nap
done
) </dev/null &
"""


@pytest.fixture(scope="module")
def cloud():
    yield from guests.networked_cloud("hotplug")


def _domain_xml(uuid: str, inactive: bool = False) -> str:
    args = ["virsh", "-c", "qemu:///system", "dumpxml", f"onestack-{uuid}"] + (["--inactive"] if inactive else [])
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=30).stdout


def test_guest_sees_hotplugged_nic(cloud: Cloud, tmp_path):
    net = cloud.os_json("network", "create", "hotplug-net")
    cloud.openstack("subnet", "create", "--network", net["id"], "--subnet-range", "10.77.0.0/24", "hotplug-net")
    port = cloud.os_json("port", "create", "--network", net["id"], "hotplug-port")
    mac, ip = port["mac_address"], port["fixed_ips"][0]["ip_address"]
    sid = guests.boot(cloud, "hotplug-guest", tmp_path, WATCH)
    try:
        wait_ready(cloud, "hotplug-guest")
        cloud.openstack("server", "add", "port", sid, port["id"])
        wait_console(cloud, "hotplug-guest", rf"hotnic: eth0 {mac} appeared")
        # the network agent wired the tap (ACTIVE) and the network's dnsmasq leased the port's address
        wait_for(lambda: cloud.os_json("port", "show", port["id"])["status"] == "ACTIVE", 60, "port ACTIVE")
        wait_console(cloud, "hotplug-guest", rf"onestack-tiny: eth0 lease {ip}/", timeout=120)
        assert mac in _domain_xml(sid) and mac in _domain_xml(sid, inactive=True)

        # in the definition too: after a hard reboot the guest boots with it and leases it again
        cloud.openstack("server", "reboot", "--hard", "--wait", sid)
        wait_for(lambda: guests.console(cloud, "hotplug-guest").count(f"onestack-tiny: eth0 lease {ip}/") >= 2,
                 240, "the lease after the hard reboot", step=1)
        wait_console(cloud, "hotplug-guest", rf"ready\. hostname=\S+ addresses: eth0={ip}/", timeout=240)

        cloud.openstack("server", "remove", "port", sid, port["id"])
        wait_for(lambda: not cloud.os_json("port", "show", port["id"])["device_id"], 180, "the port unbound")
        assert mac not in _domain_xml(sid) and mac not in _domain_xml(sid, inactive=True)
        actions = [a["Action"] for a in cloud.os_json("server", "event", "list", sid)]
        assert {"attach_interface", "detach_interface"} <= set(actions)
    finally:
        cloud.openstack("server", "delete", "--wait", sid, check=False)
        cloud.openstack("port", "delete", port["id"], check=False)
        cloud.openstack("network", "delete", net["id"], check=False)
