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

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
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
    images,
)
from onestack.compute.virt.domain import domain_name

pytestmark = [pytest.mark.e2e, pytest.mark.root, pytest.mark.libvirt]

URI = "qemu:///system"
BOOT_TIMEOUT = 90
READY = r"onestack-tiny: ready\. hostname=(\S+)(?=\s)"  # (a whole name: the line may be half written)
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
def driver():
    _libvirt_or_skip()
    from onestack.compute.virt import LibvirtDriver

    # 0700, like the real state directory. Not under pytest's basetemp: every pytest
    # session chmods /tmp/pytest-of-<user> to 0700, which resets the ACL mask that
    # lets the QEMU user through, so a concurrent test run would cut running guests
    # off their disks.
    state = Path(tempfile.mkdtemp(prefix="onestack-virt-e2e-"))
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
        shutil.rmtree(state, ignore_errors=True)
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


@pytest.fixture(scope="module")
def bridge():
    """An isolated Linux bridge (no address, no uplink, left down: no packet leaves it)."""
    name = f"onsve{uuidlib.uuid4().hex[:8]}"
    subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True)


def console(driver, u: str) -> str:
    return driver.get_console_output(u, max_bytes=4 << 20)


def wait_console(
    driver, u: str, pattern: str, count: int = 1, timeout: float = BOOT_TIMEOUT, after: int = 0
):
    """Wait until `pattern` has matched `count` lines of the console log (from character
    `after` on); the last match."""
    deadline = time.monotonic() + timeout
    while True:
        found = list(re.finditer(pattern, console(driver, u)[after:], re.M))
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
    driver.detach_volume(u, dev)
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


# -- consoles, diagnostics, host


def _serve_proxies():
    """The console proxies of onestack.compute.consoles in uvicorn on a loopback port."""
    import socket
    import threading

    import uvicorn

    from onestack.compute import consoles

    apps = consoles.extra_mounts()

    async def mounts(scope, receive, send):
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        for prefix, app in apps.items():
            if scope["path"] == prefix or scope["path"].startswith(prefix + "/"):
                path = prefix + "/" if scope["path"] == prefix else scope["path"]
                return await app(dict(scope, root_path=prefix, path=path), receive, send)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(mounts, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    return server, thread, f"127.0.0.1:{port}"


def test_consoles_through_the_proxies(driver, server, tmp_path):
    """vnc_address and serial_pty of the running guest, through onestack's websocket
    proxies: the RFB banner of QEMU's VNC server, and the guest's login prompt."""
    import asyncio
    import socket

    pytest.importorskip("websockets")
    pytest.importorskip("uvicorn")
    from websockets.asyncio.client import connect

    from onestack.common import db
    from onestack.compute import consoles

    db.configure(f"sqlite:///{tmp_path / 'compute.db'}")  # console tokens live in compute's tables
    db.upgrade("compute")
    u = server
    wait_console(driver, u, READY)
    host, port = driver.vnc_address(u)
    assert host == "127.0.0.1" and port >= 5900
    with socket.create_connection((host, port), timeout=10) as s:  # QEMU's own server
        assert s.recv(12).startswith(b"RFB 003.00")
    pty = driver.serial_pty(u)
    assert re.match(r"^/dev/pts/\d+$", pty)

    vnc = consoles.tokens.issue(u, "e2e", "novnc", ("tcp", host, port))
    serial = consoles.tokens.issue(u, "e2e", "serial", ("pty", pty))
    srv, thread, proxy = _serve_proxies()
    try:

        async def talk():
            url = f"ws://{proxy}/novnc/websockify?token={vnc.token}"
            async with connect(url, subprotocols=["binary"], open_timeout=10) as ws:
                banner = await asyncio.wait_for(ws.recv(), 10)
            async with connect(f"ws://{proxy}/serial?token={serial.token}") as ws:
                await ws.send(b"\r")
                out = b""
                while b"login:" not in out:
                    out += await asyncio.wait_for(ws.recv(), 20)
            return banner, out

        banner, out = asyncio.run(talk())
        assert re.match(rb"^RFB 003\.00\d\n$", banner), banner
        assert b"login:" in out
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
        consoles.tokens.revoke_instance(u)


def test_interface_hot_plug(driver, server, bridge):
    u = server
    nic = Interface(bridge, "fa:16:3e:e2:e2:02", f"tap{bridge[3:]}")
    driver.attach_interface(u, nic)
    tap = Path("/sys/class/net", nic.target)
    assert tap.exists() and (tap / "master").resolve().name == bridge
    assert nic.mac in virsh("domiflist", domain_name(u)).stdout
    with pytest.raises(VirtError, match="already has"):
        driver.attach_interface(u, nic)
    start = time.monotonic()
    driver.detach_interface(u, nic.mac)
    timings["interface hot-unplug"] = time.monotonic() - start
    assert driver.interfaces(u) == [] and nic.mac not in virsh("domiflist", domain_name(u)).stdout
    assert not tap.exists()


def test_diagnostics_and_host_resources(driver, server):
    u = server
    diag = driver.diagnostics(u)
    assert diag["state"] == "running" and diag["driver"] == "libvirt"
    assert diag["hypervisor"] == driver.virt_type and diag["config_drive"] is True
    assert (diag["num_cpus"], diag["num_disks"], diag["num_nics"]) == (1, 2, 0)
    assert diag["memory_details"]["maximum"] == 256
    assert diag["cpu_details"][0]["time"] > 0
    assert diag["disk_details"][0]["read_bytes"] > 0  # the guest read its root disk
    host = driver.host_resources()
    assert host["vcpus"] == os.cpu_count() and host["memory_mb"] > 256
    assert host["local_gb"] > 0 and host["hypervisor_type"] == "QEMU"
    version = subprocess.run(["virsh", "-c", URI, "version"], capture_output=True, text=True).stdout
    m = re.search(r"Running hypervisor: QEMU (\d+)\.(\d+)\.(\d+)", version)
    if m:
        major, minor, micro = map(int, m.groups())
        assert host["hypervisor_version"] == major * 1_000_000 + minor * 1000 + micro
    assert host["cpu_info"]["arch"] == "x86_64"


# -- snapshot, resize, rescue, rebuild


def test_snapshot_boots_as_a_new_server(driver, server, tmp_path):
    u = server
    dest = tmp_path / "snapshot.qcow2"
    start = time.monotonic()
    size = driver.snapshot(u, dest)
    timings["snapshot (paused copy)"] = time.monotonic() - start
    assert driver.get_info(u).state == PowerState.RUNNING  # resumed
    assert size == 64 << 20
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", str(dest)], capture_output=True, check=True
        ).stdout
    )
    assert info["format"] == "qcow2" and "backing-filename" not in info  # standalone

    u2 = str(uuidlib.uuid4())
    image_id = f"snapshot-e2e-{u2[:8]}"
    created.add(u2)
    try:
        start = time.monotonic()
        driver.spawn(
            InstanceSpec(
                u2,
                128,
                1,
                ImageRef(image_id, dest, "qcow2"),
                config_drive=ConfigDrive(configdrive.nova_meta_data(u2, "from-snapshot")),
            )
        )
        found = wait_console(driver, u2, READY)
        timings["boot from snapshot to ready line"] = time.monotonic() - start
        assert found.group(1) == "from-snapshot"
    finally:
        driver.destroy(u2)
        driver.images.path(image_id).unlink(missing_ok=True)


def _virtual_size(driver, u: str) -> int:
    return images.virtual_size(driver.instance_dir(u) / "disk")


def test_resize_and_revert(driver, server):
    u = server
    boots = readies(driver, u)
    start = time.monotonic()
    info = driver.resize(u, 384, 2, 1)
    assert (info.state, info.memory_kib, info.vcpus) == (PowerState.RUNNING, 384 * 1024, 2)
    assert _virtual_size(driver, u) == 1 << 30
    # the guest boots with the grown disk (1 GiB = 1048576 1K-blocks)
    wait_console(driver, u, READY, count=boots + 1)
    timings["resize to ready line"] = time.monotonic() - start
    wait_console(driver, u, r"DISKS: vda=1048576 vdb=\d+ $", timeout=30)
    with pytest.raises(VirtError, match="confirmed or reverted"):
        driver.resize(u, 512, 2, 2)

    info = driver.revert_resize(u)
    assert (info.state, info.memory_kib, info.vcpus) == (PowerState.RUNNING, 256 * 1024, 1)
    assert _virtual_size(driver, u) == 64 << 20
    assert {p.name for p in driver.instance_dir(u).iterdir()} >= {"disk", "disk.config"}
    assert not [p for p in driver.instance_dir(u).iterdir() if "resize" in p.name]
    with pytest.raises(VirtError, match="no resize"):
        driver.revert_resize(u)
    wait_console(driver, u, r"^SYSLINUX", count=boots + 2, timeout=30)  # booting again


def test_rescue_and_unrescue(driver, server, image):
    u = server
    mark = len(console(driver, u))  # (the revert's boot is cut short: no need to wait)
    start = time.monotonic()
    info = driver.rescue(u, ImageRef("onestack-tiny-e2e", image, "qcow2"))
    assert info.state == PowerState.RUNNING
    wait_console(driver, u, READY, after=mark)
    timings["rescue to ready line"] = time.monotonic() - start
    # the rescue disk first, the instance's own root disk second, the config drive third
    disks = virsh("domblklist", domain_name(u)).stdout
    assert re.search(r"\bvda\s+\S+/disk\.rescue\b", disks), disks
    assert re.search(r"\bvdb\s+\S+/disk\s*$", disks, re.M), disks
    wait_console(driver, u, r"DISKS: vda=65536 vdb=65536 vdc=\d+ $", timeout=30, after=mark)
    with pytest.raises(VirtError, match="already rescued"):
        driver.rescue(u, ImageRef("onestack-tiny-e2e", image, "qcow2"))

    info = driver.unrescue(u)
    assert info.state == PowerState.RUNNING
    assert "disk.rescue" not in virsh("domblklist", domain_name(u)).stdout
    assert not (driver.instance_dir(u) / "disk.rescue").exists()
    with pytest.raises(VirtError, match="not rescued"):
        driver.unrescue(u)
    mark = len(console(driver, u))
    wait_console(driver, u, r"^SYSLINUX", timeout=30, after=mark)


def test_interfaces_survive_resize_and_rebuild(driver, server, image, bridge):
    """A stopped guest: its interface stays through resize, revert and rebuild, which
    keep everything but what they change (and it stays stopped); then the rebuilt guest
    boots with its new config drive."""
    u = server
    driver.power_off(u)
    nic = Interface(bridge, "fa:16:3e:e2:e2:01", f"tap{bridge[3:]}")
    driver.attach_interface(u, nic)
    assert driver.interfaces(u) == [nic]
    assert driver.resize(u, 256, 1, 1).state == PowerState.SHUTDOWN  # stays off
    assert driver.interfaces(u) == [nic]
    assert driver.revert_resize(u).state == PowerState.SHUTDOWN
    assert driver.interfaces(u) == [nic]
    meta = configdrive.nova_meta_data(u, "virt-e2e", hostname="rebuilt-e2e")
    spec = InstanceSpec(
        u,
        256,
        1,
        ImageRef("onestack-tiny-e2e", image, "qcow2"),
        config_drive=ConfigDrive(meta, USER_DATA),
    )
    assert driver.rebuild(spec, start=False).state == PowerState.SHUTDOWN
    assert driver.interfaces(u) == [nic]  # spec.interfaces empty: the domain's are kept
    driver.detach_interface(u, nic.mac)
    assert driver.interfaces(u) == []
    with pytest.raises(VirtError):
        driver.detach_interface(u, nic.mac)
    mark = len(console(driver, u))
    start = time.monotonic()
    driver.power_on(u)  # the rebuilt disk and config drive boot
    assert wait_console(driver, u, READY, after=mark).group(1) == "rebuilt-e2e"
    timings["rebuilt guest to ready line"] = time.monotonic() - start


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
