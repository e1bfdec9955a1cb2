"""What the e2e tests with real guests share: skips, bounded waits, the serial
console, volume status and booting a tiny guest with a user_data script and a
config drive (no network needed)."""

from __future__ import annotations

import os
import re
import shutil

import pytest

from tests.cloud import Cloud, wait_for  # noqa: F401 (the e2e modules import it from here)

IMAGE = "onestack-tiny-x86_64"
READY = re.compile(r"onestack-tiny: ready\. hostname=(\S+)(?=\s)")  # (a whole name: the line may be half written)

# run by the host's Python: `python -c SSH host keyfile command` prints its output
SSH = """
import sys, paramiko
host, key, cmd = sys.argv[1], sys.argv[2], sys.argv[3]
c = paramiko.SSHClient()
c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
c.connect(host, username="cirros", key_filename=key, timeout=8, banner_timeout=8, auth_timeout=8,
          look_for_keys=False, allow_agent=False)
_, out, _ = c.exec_command(cmd, timeout=20)
sys.stdout.write(out.read().decode())
"""

# a guest's user_data: reports each time /dev/vdb appears and goes, writing to it
PROBE = """#!/bin/sh
WRITE='{write}'
nap() {{ sleep 0.1 2>/dev/null || sleep 1; }}
(
n=0
while [ $n -lt 4 ]; do
  i=0
  while [ ! -b /dev/vdb ]; do i=$((i+1)); [ $i -gt 6000 ] && exit 0; nap; done
  n=$((n+1))
  echo "volprobe: $n appeared read=[$(dd if=/dev/vdb bs=64 count=1 2>/dev/null | tr -cd 'a-z0-9-')]"
  if [ -n "$WRITE" ]; then
    printf '%s' "$WRITE-$n" | dd of=/dev/vdb conv=notrunc 2>/dev/null
    sync
    echo "volprobe: $n wrote $WRITE-$n"
  fi
  i=0
  while [ -b /dev/vdb ]; do i=$((i+1)); [ $i -gt 6000 ] && exit 0; nap; done
  echo "volprobe: $n gone"
done
) </dev/null &
"""


def networked_cloud(name: str, **env: str):
    """A cloud with real guests and the network agent, the tiny image registered (a generator
    for module fixtures: yields the cloud, stops it after). Skips when another onestack's
    network agent holds this host."""
    c = Cloud(name, extra_env={"ONESTACK_NETWORK_AGENT": "true", "ONESTACK_COMPUTE_DRIVER": "libvirt", **env})
    try:
        c.start()
        busy = "another onestack network agent runs on this host"
        wait_for(lambda: busy in (c.state / "onestack.log").read_text() or c.os_json("network", "agent", "list"),
                 30, "the network agents")
        if busy in (c.state / "onestack.log").read_text():
            pytest.skip("another onestack's network agent runs on this host")
        c.onestack("image", "register", "tiny", timeout=600)
        yield c
    finally:
        c.stop()


def require_guests() -> None:
    """Skip the calling module unless real guests can run here."""
    if os.geteuid() != 0:
        pytest.skip("real guests need root", allow_module_level=True)
    if not shutil.which("virsh") or not shutil.which("qemu-system-x86_64"):
        pytest.skip("libvirt/QEMU missing (scripts/install.sh)", allow_module_level=True)


def console(cloud: Cloud, server: str) -> str:
    return cloud.openstack("console", "log", "show", server).stdout


def wait_console(cloud: Cloud, server: str, pattern: str, timeout: float = 90) -> re.Match:
    rx = re.compile(pattern)
    last = {"text": ""}

    def check():
        last["text"] = console(cloud, server)
        return rx.search(last["text"])
    try:
        return wait_for(check, timeout, f"{pattern!r} on the console of {server}", step=1)
    except AssertionError as e:
        raise AssertionError(f"{e}; console ends with:\n{last['text'][-1500:]}") from None


def wait_volume(cloud: Cloud, ref: str, status: str, timeout: float = 60) -> None:
    def check():
        now = cloud.os_json("volume", "show", ref)["status"]
        if now.startswith("error") and not status.startswith("error"):
            raise AssertionError(f"volume {ref} went to {now}")
        return now == status
    wait_for(check, timeout, f"volume {ref} {status}")


def boot(cloud: Cloud, name: str, tmp_path, script: str, *source: str) -> str:
    """A tiny guest (m1.nano, no network, config drive) running ``script`` as user_data."""
    path = tmp_path / f"{name}.sh"
    path.write_text(script)
    src = source or ("--image", IMAGE)
    return cloud.os_json("server", "create", "--flavor", "m1.nano", *src, "--nic", "none",
                         "--os-compute-api-version", "2.37", "--config-drive", "true",
                         "--user-data", str(path), name)["id"]


def wait_ready(cloud: Cloud, name: str, timeout: float = 240) -> None:
    wait_for(lambda: cloud.os_json("server", "show", name)["status"] in ("ACTIVE", "ERROR"), timeout,
             f"{name} built")
    shown = cloud.os_json("server", "show", name)
    assert shown["status"] == "ACTIVE", shown.get("fault")
    wait_console(cloud, name, READY.pattern, timeout=timeout)
