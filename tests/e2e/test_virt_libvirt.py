"""The compute virt layer runs the tiny guest through libvirt (qemu:///system).

One guest, booted from a qcow2 overlay on the cached base image with a vfat
config drive (hostname, an SSH key, a user_data script), is taken through the
life cycle the compute service will drive: ready line on the serial console
log, a volume attached and detached, pause/unpause, suspend/resume, soft and
hard reboot, destroy. The guest has no network at all (no interface): the
checks read its console log, where its user_data prints the virtio disks it
sees each time they change. Every wait is bounded; the module's fixtures
destroy whatever they made, also when a test fails.

Needs root and a running libvirtd (scripts/install.sh starts it with
scripts/libvirt-up.sh); skipped with the reason otherwise.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid as uuidlib
from pathlib import Path

import pytest

from onestack.compute.virt import (
    ConfigDrive,
    ImageError,
    ImageRef,
    InstanceNotFound,
    InstanceSpec,
    Interface,
    PowerState,
    VirtError,
    configdrive,
)
from onestack.compute.virt.domain import domain_name

pytestmark = pytest.mark.e2e

URI = "qemu:///system"
BOOT_TIMEOUT = 90
READY = r"onestack-tiny: ready\. hostname=(\S+)"
MARKER = f"VIRT-E2E-{uuidlib.uuid4().hex[:8]}"
HOSTNAME = "virt-e2e.novalocal"
PUBLIC_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTheVirtTestOnly0000000000000000 virt@e2e"
)
# The guest prints its virtio disks (name=1K-blocks) each time the set changes, for
# 5 minutes, in the background (user_data runs before the ready line).
USER_DATA = f"""#!/bin/sh
echo "{MARKER} on $(hostname)"
(
  i=0; prev=
  while [ $i -lt 300 ]; do
    cur=$(awk '$4 ~ /^vd[a-z]+$/ {{printf "%s=%s ", $4, $3}}' /proc/partitions)
    [ "$cur" != "$prev" ] && echo "DISKS: $cur"
    prev=$cur; i=$((i + 1)); sleep 1
  done
) &
""".encode()

timings: dict[str, float] = {}
created: set[str] = set()


def _libvirt_or_skip():
    libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed")
    if os.geteuid() != 0:
        pytest.skip("needs root (qemu:///system)")
    libvirt.registerErrorHandler(lambda _c, _e: None, None)
    try:
        conn = libvirt.open(URI)
        conn.getLibVersion()
        conn.close()
    except libvirt.libvirtError as e:
        pytest.skip(f"libvirtd not reachable at {URI} ({e}); start it: scripts/libvirt-up.sh")
    return libvirt


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    _libvirt_or_skip()
    from onestack.compute.virt import LibvirtDriver

    state = tmp_path_factory.mktemp("virt-state")  # 0700, like the real state directory
    start = time.monotonic()
    d = LibvirtDriver(state)
    timings["driver start (KVM probe)"] = time.monotonic() - start
    print(f"\nvirt type {d.virt_type}: {d.accel.reason}", file=sys.stderr)
    try:
        yield d
    finally:
        for u in list(created):  # only what this module made
            d.destroy(u)
        d.close()
        print(
            "\n" + "\n".join(f"  {k}: {v:.1f}s" for k, v in timings.items()),
            file=sys.stderr,
        )


@pytest.fixture(scope="module")
def image():
    import guest

    try:
        return guest.ensure_tiny()
    except guest.BuildError as e:
        pytest.skip(f"cannot build the tiny image: {e}")


def console(driver, u: str) -> str:
    return driver.get_console_output(u, max_bytes=4 << 20)


def wait_console(driver, u: str, pattern: str, count: int = 1, timeout: float = BOOT_TIMEOUT):
    """Wait until `pattern` has matched `count` lines of the console log; the last match."""
    deadline = time.monotonic() + timeout
    while True:
        found = list(re.finditer(pattern, console(driver, u), re.M))
        if len(found) >= count:
            return found[count - 1]
        if time.monotonic() > deadline:
            tail = "\n".join(console(driver, u).splitlines()[-25:])
            raise AssertionError(f"{count}x {pattern!r} not on the console; last lines:\n{tail}")
        time.sleep(0.2)


def readies(driver, u: str) -> int:
    return len(re.findall(READY, console(driver, u), re.M))


def wait_state(driver, u: str, state: PowerState, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while (info := driver.get_info(u)).state != state:
        if time.monotonic() > deadline:
            raise AssertionError(f"state {info.state.name}, expected {state.name}")
        time.sleep(0.1)
    return info


def virsh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["virsh", "-c", URI, *args], capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def server(driver, image):
    u = str(uuidlib.uuid4())
    meta = configdrive.nova_meta_data(
        u, "virt-e2e", hostname=HOSTNAME, public_keys={"e2e": PUBLIC_KEY + "\n"}
    )
    spec = InstanceSpec(
        u,
        memory_mib=256,
        vcpus=1,
        image=ImageRef("onestack-tiny-e2e", image, "qcow2"),
        config_drive=ConfigDrive(meta, USER_DATA),
        display_name="virt-e2e",
        flavor="m1.nano",
    )
    created.add(u)
    start = time.monotonic()
    info = driver.spawn(spec)
    timings["spawn() to RUNNING"] = time.monotonic() - start
    assert info.state == PowerState.RUNNING
    wait_console(driver, u, READY)
    timings["spawn() to ready line"] = time.monotonic() - start
    yield u
    driver.destroy(u)


def test_spawn_boots_to_ready_line(driver, server):
    u = server
    text = console(driver, u)
    ready = re.search(READY, text, re.M)
    assert ready.group(1) == HOSTNAME, ready.group(0)
    assert re.search(rf"^{MARKER} on {re.escape(HOSTNAME)}", text, re.M), text[-2000:]
    assert "onestack-tiny: metadata from config drive /dev/vdb" in text
    assert "onestack-tiny: 1 SSH key(s) installed for cirros" in text
    assert "onestack-tiny: user_data exited with status 0" in text

    info = driver.get_info(u)
    assert (info.state, info.vcpus, info.memory_kib) == (PowerState.RUNNING, 1, 256 * 1024)
    assert u in driver.list_instances()
    xml = driver.domain_xml(u)
    assert f"<name>{domain_name(u)}</name>" in xml
    assert f"type='{driver.virt_type}'" in xml.split(">")[0] or (
        f'type="{driver.virt_type}"' in xml.split(">")[0]
    )
    assert re.search(r"<graphics type=.vnc. port=.\d+. autoport=.yes. listen=.127\.0\.0\.1", xml)
    assert str(driver.console_log_path(u)) in xml
    inst_dir = driver.instance_dir(u)
    assert {p.name for p in inst_dir.iterdir()} >= {"disk", "disk.config", "console.log"}
    # the root disk is an overlay on the cached base, sized as the image (root_gb=0)
    info = subprocess.run(
        ["qemu-img", "info", "-U", "--output=json", str(inst_dir / "disk")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(driver.images.path("onestack-tiny-e2e")) in info


def test_volume_attach_and_detach(driver, server, tmp_path):
    u = server
    volume = tmp_path / "volume.raw"
    with open(volume, "wb") as f:
        f.truncate(16 << 20)  # a blank 16 MiB volume: 16384 1K-blocks in the guest
    start = time.monotonic()
    dev = driver.attach_volume(u, volume, serial="vol-e2e")
    assert dev == "vdb"  # libvirt's name; vdz is the config drive
    assert driver.volumes(u) == {"vdb": str(volume.resolve())}
    assert re.search(
        rf"\bvdb\s+{re.escape(str(volume.resolve()))}", virsh("domblklist", domain_name(u)).stdout
    )
    # in the guest it is the third virtio disk (vda root, vdb config drive): vdc
    seen = wait_console(driver, u, r"DISKS: .*\bvd[a-z]+=16384\b", timeout=30)
    timings["volume attach to seen in guest"] = time.monotonic() - start
    assert "vdc=16384" in seen.group(0), seen.group(0)

    start = time.monotonic()
    driver.detach_volume(u, dev, timeout=30)
    assert driver.volumes(u) == {}
    assert str(volume) not in virsh("domblklist", domain_name(u)).stdout
    wait_console(driver, u, r"DISKS: vda=\d+ vdb=\d+ $", count=2, timeout=30)
    timings["volume detach"] = time.monotonic() - start
    assert volume.read_bytes() == bytes(16 << 20)  # seen, never written
    with pytest.raises(VirtError):
        driver.detach_volume(u, "vdb")


def test_pause_and_unpause(driver, server):
    u = server
    driver.pause(u)
    assert driver.get_info(u).state == PowerState.PAUSED
    driver.unpause(u)
    assert driver.get_info(u).state == PowerState.RUNNING


def test_suspend_and_resume(driver, server):
    u = server
    boots = readies(driver, u)
    start = time.monotonic()
    driver.suspend(u)
    timings["suspend"] = time.monotonic() - start
    info = driver.get_info(u)
    assert (info.state, info.managed_save) == (PowerState.SHUTDOWN, True)
    start = time.monotonic()
    driver.resume(u)
    timings["resume"] = time.monotonic() - start
    info = driver.get_info(u)
    assert (info.state, info.managed_save) == (PowerState.RUNNING, False)
    with pytest.raises(VirtError, match="not suspended"):
        driver.resume(u)
    time.sleep(1)
    assert readies(driver, u) == boots  # restored where it was, not booted again


def test_soft_reboot(driver, server):
    u = server
    boots = readies(driver, u)
    start = time.monotonic()
    assert driver.reboot(u, hard=False, timeout=30) == "soft"  # ctrl-alt-del: init reboots
    wait_console(driver, u, READY, count=boots + 1)
    timings["soft reboot to ready line"] = time.monotonic() - start
    assert driver.get_info(u).state == PowerState.RUNNING


def test_hard_reboot(driver, server):
    u = server
    boots = readies(driver, u)
    start = time.monotonic()
    assert driver.reboot(u, hard=True) == "hard"
    found = wait_console(driver, u, READY, count=boots + 1)
    timings["hard reboot to ready line"] = time.monotonic() - start
    assert found.group(1) == HOSTNAME  # the config drive is read again


def test_power_off_and_on(driver, server):
    u = server
    driver.power_off(u)  # no clean shutdown asked (timeout 0): the plug is pulled
    assert driver.get_info(u).state == PowerState.SHUTDOWN
    driver.power_off(u)  # already off: nothing to do
    boots = readies(driver, u)
    driver.power_on(u)
    assert driver.get_info(u).state == PowerState.RUNNING
    wait_console(driver, u, r"^SYSLINUX", count=boots + 1, timeout=30)


def test_destroy_leaves_nothing(driver, server):
    u = server
    inst_dir = driver.instance_dir(u)
    driver.destroy(u)
    assert u not in driver.list_instances()
    assert virsh("dominfo", domain_name(u)).returncode != 0
    assert not inst_dir.exists()
    with pytest.raises(InstanceNotFound):
        driver.get_info(u)
    driver.destroy(u)  # again: nothing to do
    assert driver.images.path("onestack-tiny-e2e").exists()  # the cache stays


def _assert_gone(driver, u: str) -> None:
    assert u not in driver.list_instances()
    assert virsh("dominfo", domain_name(u)).returncode != 0
    assert not driver.instance_dir(u).exists()


def test_failed_spawn_leaves_nothing(driver, image, tmp_path):
    # libvirt defines the domain, then cannot start it: no such bridge
    u = str(uuidlib.uuid4())
    created.add(u)
    tap = "tapvirte2e0"
    spec = InstanceSpec(
        u,
        memory_mib=128,
        vcpus=1,
        image=ImageRef("onestack-tiny-e2e", image, "qcow2"),
        config_drive=ConfigDrive({"uuid": u, "name": "doomed"}),
        interfaces=[Interface("onsnobridge0", "fa:16:3e:00:00:01", tap)],
    )
    with pytest.raises(VirtError, match="onsnobridge0"):
        driver.spawn(spec)
    _assert_gone(driver, u)
    assert not Path("/sys/class/net", tap).exists()

    # the image is refused before any domain exists: data that is not the declared format
    bogus = tmp_path / "bogus.img"
    bogus.write_bytes(b"not a disk image" * 100)
    u2 = str(uuidlib.uuid4())
    created.add(u2)
    spec2 = InstanceSpec(u2, 128, 1, ImageRef("bogus-e2e", bogus, "qcow2"))
    with pytest.raises(ImageError):
        driver.spawn(spec2)
    _assert_gone(driver, u2)
    assert not driver.images.path("bogus-e2e").exists()
    assert not [p for p in driver.images.root.iterdir() if p.name.startswith(".bogus-e2e.")
                and p.is_dir()]  # fmt: skip
