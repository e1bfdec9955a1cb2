"""Real guests end to end: the book's compute and network labs with the real CLI.

A cloud with libvirt (QEMU TCG) and the network agent boots two tiny guests on the
demo project's `private` network behind `router1`: both get their DHCP addresses and
metadata (hostname, SSH key, user_data), the external namespace reaches one through a
floating IP and SSHes in with the keypair, and from inside it pings the other guest
and a host on the external network (the `public` namespace's own address). Security
group rules open and close SSH. A SIGKILLed onestack comes back with the guests still
running and reachable. A snapshot boots. Deleting the servers removes their taps.
All traffic stays inside namespaces this cloud made; every wait is bounded.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.cloud import BIN, Cloud, wait_for
from tests.e2e.guests import SSH

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600), pytest.mark.root, pytest.mark.libvirt, pytest.mark.netns]

if os.geteuid() != 0:
    pytest.skip("real guests need root", allow_module_level=True)
if not shutil.which("virsh") or not shutil.which("qemu-system-x86_64"):
    pytest.skip("libvirt/QEMU missing (scripts/install.sh)", allow_module_level=True)

READY = re.compile(r"onestack-tiny: ready\. hostname=(\S+) addresses: eth0=([\d.]+)/")
@pytest.fixture(scope="module")
def cloud():
    c = Cloud("guests", extra_env={"ONESTACK_NETWORK_AGENT": "true", "ONESTACK_COMPUTE_DRIVER": "libvirt"})
    try:
        c.start()
        log = c.state / "onestack.log"
        if not wait_for(lambda: c.os_json("network", "agent", "list"), 15, "network agents"):
            pytest.skip("no network agent")
        if "another onestack network agent runs on this host" in log.read_text():
            pytest.skip("another onestack's network agent runs on this host")
        c.onestack("image", "register", "tiny", timeout=600)
        yield c
    finally:
        c.stop()


def ready_line(cloud: Cloud, name: str, timeout: float = 240) -> re.Match:
    def check():
        return READY.search(cloud.openstack("console", "log", "show", name, user="demo").stdout)
    return wait_for(check, timeout, f"the ready line of {name}", step=1)


def in_public(cloud: Cloud, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run argv in the external network's namespace, as an admin would."""
    return subprocess.run([str(BIN / "onestack"), "netns", "exec", "public", "--", *argv], env=cloud.env,
                          capture_output=True, text=True, timeout=timeout)


def ssh(cloud: Cloud, host: str, key: str, cmd: str) -> subprocess.CompletedProcess:
    return in_public(cloud, sys.executable, "-c", SSH, host, key, cmd, timeout=40)


def test_book_labs_with_real_guests(cloud, tmp_path):
    demo = {"user": "demo"}
    key = tmp_path / "k.pem"
    key.write_text(cloud.openstack("keypair", "create", "lab-key", **demo).stdout)
    key.chmod(0o600)
    ssh_rule = cloud.os_json("security", "group", "rule", "create", "--proto", "tcp", "--dst-port", "22",
                             "default", **demo)
    cloud.openstack("security", "group", "rule", "create", "--proto", "icmp", "default", **demo)
    script = tmp_path / "ud.sh"
    script.write_text("#!/bin/sh\necho user-data-ran-$(hostname)\n")
    for name in ("lab-a", "lab-b"):
        cloud.openstack("server", "create", "--flavor", "m1.nano", "--image", "onestack-tiny-x86_64",
                        "--network", "private", "--security-group", "default", "--key-name", "lab-key",
                        "--user-data", str(script), name, **demo)
    for name in ("lab-a", "lab-b"):
        wait_for(lambda n=name: cloud.os_json("server", "show", n, **demo)["status"] == "ACTIVE", 240,
                 f"{name} ACTIVE")
    a, b = ready_line(cloud, "lab-a"), ready_line(cloud, "lab-b")
    assert a.group(1) == "lab-a" and b.group(1) == "lab-b"  # hostnames from the metadata service
    assert "user-data-ran-lab-a" in cloud.openstack("console", "log", "show", "lab-a", **demo).stdout
    shown = cloud.os_json("server", "show", "lab-a", **demo)
    assert a.group(2) in str(shown["addresses"])  # the DHCP lease is the address the API shows
    fip = cloud.os_json("floating", "ip", "create", "public", **demo)["floating_ip_address"]
    cloud.openstack("server", "add", "floating", "ip", "lab-a", fip, **demo)
    wait_for(lambda: fip in str(cloud.os_json("server", "show", "lab-a", **demo)["addresses"]), 10,
             "the floating IP among the addresses")
    wait_for(lambda: in_public(cloud, "ping", "-c", "1", "-W", "1", fip).returncode == 0, 20, "ping to the FIP")
    out = wait_for(lambda: ssh(cloud, fip, str(key), f"hostname; ping -c 1 -W 2 {b.group(2)} >/dev/null && "
                                                    f"echo peer-ok; ping -c 1 -W 2 172.24.4.1 >/dev/null && "
                                                    f"echo outside-ok").stdout, 40, "SSH to lab-a")
    assert out.split() == ["lab-a", "peer-ok", "outside-ok"], out
    # without the SSH rule, new connections are dropped; with it back, they work
    cloud.openstack("security", "group", "rule", "delete", ssh_rule["id"], **demo)
    time.sleep(1)
    assert ssh(cloud, fip, str(key), "hostname").returncode != 0
    cloud.openstack("security", "group", "rule", "create", "--proto", "tcp", "--dst-port", "22", "default", **demo)
    wait_for(lambda: ssh(cloud, fip, str(key), "hostname").stdout.strip() == "lab-a", 20, "SSH back")

    # onestack killed outright: the guests keep running; a restart finds them and their network
    pid = int((cloud.state / "onestack.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 10, "onestack to die")
    assert in_public(cloud, "ping", "-c", "1", "-W", "2", fip).returncode == 0
    cloud.start()
    assert cloud.os_json("server", "show", "lab-a", **demo)["status"] == "ACTIVE"
    wait_for(lambda: ssh(cloud, fip, str(key), "hostname").stdout.strip() == "lab-a", 30, "SSH after restart")

    # a snapshot of a real guest boots
    cloud.openstack("server", "image", "create", "--name", "lab-snap", "--wait", "lab-b", **demo)
    cloud.openstack("server", "create", "--flavor", "m1.nano", "--image", "lab-snap", "--network", "private",
                    "--wait", "lab-c", **demo)
    assert ready_line(cloud, "lab-c").group(1) == "lab-c"

    url = cloud.os_json("console", "url", "show", "--novnc", "lab-a", **demo)["url"]
    assert "token" in url

    taps = [f"tap{p['ID'].replace('-', '')[:11]}" for n in ("lab-a", "lab-b", "lab-c")
            for p in cloud.os_json("port", "list", "--server", n, **demo)]
    for name in ("lab-a", "lab-b", "lab-c"):
        cloud.openstack("server", "delete", "--wait", name, **demo)
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert not [t for t in taps if t in links], links
    cloud.openstack("image", "delete", "lab-snap", **demo)
    cloud.openstack("floating", "ip", "delete", fip, **demo)


def test_overlapping_projects_are_isolated(cloud, tmp_path):
    """Two projects, the same CIDR: each guest gets its address; neither reaches the other."""
    guests = {}
    with cloud.new_member("iso-a") as a, cloud.new_member("iso-b") as b:
        for tag, env, ip in (("a", a, "10.50.0.10"), ("b", b, "10.50.0.77")):
            key = tmp_path / f"{tag}.pem"
            key.write_text(cloud.openstack("keypair", "create", f"k-{tag}", env=env).stdout)
            key.chmod(0o600)
            for proto in (("--proto", "tcp", "--dst-port", "22"), ("--proto", "icmp")):
                cloud.openstack("security", "group", "rule", "create", *proto, "default", env=env)
            net = cloud.os_json("network", "create", f"net-{tag}", env=env)
            cloud.openstack("subnet", "create", "--network", f"net-{tag}", "--subnet-range", "10.50.0.0/24",
                            f"sn-{tag}", env=env)
            cloud.openstack("router", "create", f"r-{tag}", env=env)
            cloud.openstack("router", "set", "--external-gateway", "public", f"r-{tag}", env=env)
            cloud.openstack("router", "add", "subnet", f"r-{tag}", f"sn-{tag}", env=env)
            cloud.openstack("server", "create", "--flavor", "m1.nano", "--image", "onestack-tiny-x86_64",
                            "--nic", f"net-id={net['id']},v4-fixed-ip={ip}", "--key-name", f"k-{tag}",
                            f"iso-{tag}", env=env)
            guests[tag] = (env, ip, key)
        for tag, (env, ip, key) in guests.items():
            wait_for(lambda e=env, t=tag: READY.search(
                cloud.openstack("console", "log", "show", f"iso-{t}", env=e).stdout), 240, f"iso-{tag} ready",
                step=1)
            fip = cloud.os_json("floating", "ip", "create", "public", env=env)["floating_ip_address"]
            cloud.openstack("server", "add", "floating", "ip", f"iso-{tag}", fip, env=env)
            guests[tag] = (env, ip, key, fip)
        env, ip, key, fip = guests["a"]
        out = wait_for(lambda: ssh(cloud, fip, str(key), "ip -4 addr show eth0; ping -c 1 -W 2 10.50.0.77 "
                                                         ">/dev/null && echo reached || echo isolated").stdout,
                       60, "SSH to iso-a")
        assert "10.50.0.10/24" in out and "isolated" in out, out
        for tag, (env, *_rest) in guests.items():
            cloud.openstack("server", "delete", "--wait", f"iso-{tag}", env=env)
            for fip_row in cloud.os_json("floating", "ip", "list", env=env):
                cloud.openstack("floating", "ip", "delete", fip_row["ID"], env=env)
            cloud.openstack("router", "remove", "subnet", f"r-{tag}", f"sn-{tag}", env=env)
            cloud.openstack("router", "delete", f"r-{tag}", env=env)
            cloud.openstack("network", "delete", f"net-{tag}", env=env)
            cloud.openstack("keypair", "delete", f"k-{tag}", env=env)
