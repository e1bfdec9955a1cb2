"""The tiny guest image builds from Debian packages and boots under plain QEMU (TCG).

No cloud is involved: QEMU's user-mode network gives the guest its DHCP lease
(10.0.2.15) and forwards one loopback port to the guest's SSH server.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TOOLS = [
    "qemu-system-x86_64",
    "qemu-img",
    "apt-get",
    "dpkg-deb",
    "mkfs.vfat",
    "mcopy",
    "syslinux",
    "sfdisk",
]
BOOT_TIMEOUT = 120


def _load_builder():
    spec = importlib.util.spec_from_file_location("guest_build", ROOT / "guest/build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Guest:
    """A QEMU process whose serial console is read line by line, with timestamps."""

    def __init__(self, image: Path, extra_disk: Path, ssh_port: int):
        self.ssh_port = ssh_port
        self.lines: list[tuple[float, str]] = []
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [
                "qemu-system-x86_64",
                "-machine",
                "accel=tcg",
                "-m",
                "256",
                "-nographic",
                "-drive",
                f"file={image},if=virtio",
                "-drive",
                f"file={extra_disk},if=virtio,format=raw",
                # user-mode networking stays inside QEMU; only a loopback port is forwarded
                "-netdev",
                # restrict=on: the guest reaches nothing beyond QEMU (only our forward)
                f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{ssh_port}-:22",
                "-device",
                "virtio-net-pci,netdev=n0",
                "-serial",
                "mon:stdio",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n")
            self.lines.append((time.monotonic() - self.started, line))

    def wait_for(self, pattern: str, timeout: float = BOOT_TIMEOUT) -> tuple[float, str]:
        """First serial line matching `pattern`: (seconds since QEMU start, line)."""
        deadline = self.started + timeout
        seen = 0
        while True:  # lines already read are checked even past the deadline
            for t, line in self.lines[seen:]:
                if re.search(pattern, line):
                    return t, line
            seen = len(self.lines)
            if time.monotonic() > deadline or self.proc.poll() is not None:
                break
            time.sleep(0.05)
        tail = "\n".join(line for _, line in self.lines[-25:])
        raise AssertionError(f"no serial line matched {pattern!r}; last lines:\n{tail}")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        pytest.skip(f"host tools missing (see guest/README.md): {' '.join(missing)}")
    out = tmp_path_factory.mktemp("guest") / "onestack-tiny-x86_64.qcow2"
    _load_builder().build(out)
    return out


@pytest.fixture(scope="module")
def guest(image, tmp_path_factory):
    overlay = image.with_name("boot.qcow2")  # never write to the built image itself
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", image, overlay], check=True
    )
    extra = tmp_path_factory.mktemp("vol") / "vdb.raw"
    with open(extra, "wb") as f:
        f.truncate(16 * 1024 * 1024)
    g = Guest(overlay, extra, _free_port())
    yield g
    g.stop()


def test_image_is_small_qcow2(image):
    info = subprocess.run(
        ["qemu-img", "info", "--output=json", image], check=True, capture_output=True, text=True
    ).stdout
    assert '"format": "qcow2"' in info
    assert '"backing-filename"' not in info
    assert image.stat().st_size < 64 * 1024 * 1024


def test_boots_to_ready_with_dhcp(guest):
    guest.wait_for(r"SYSLINUX \d")  # the bootloader, from the disk's own MBR
    t_kernel, _ = guest.wait_for(r"onestack-tiny: Linux \d\S+-cloud-amd64 started")
    guest.wait_for(r"onestack-tiny: loaded virtio_blk")
    guest.wait_for(r"onestack-tiny: loaded virtio_net")
    t_lease, _ = guest.wait_for(r"lease of 10\.0\.2\.15 obtained")
    guest.wait_for(r"onestack-tiny: dropbear listening")
    guest.wait_for(r"login as 'cirros' user")
    t_ready, ready = guest.wait_for(r"onestack-tiny: ready\..*eth0=10\.0\.2\.15/24")
    # figures, not assertions on time (bench/ measures boot time)
    print(
        f"\nkernel at {t_kernel:.1f}s, lease at {t_lease:.1f}s, ready at {t_ready:.1f}s: {ready}",
        file=sys.stderr,
    )


def test_ssh_login_and_extra_disk(guest):
    paramiko = pytest.importorskip("paramiko")
    guest.wait_for(r"onestack-tiny: ready\.")
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    deadline = time.monotonic() + 60
    while True:
        try:
            client.connect(
                "127.0.0.1",
                port=guest.ssh_port,
                username="cirros",
                password="gocubsgo",
                timeout=30,
                banner_timeout=30,
                auth_timeout=30,
                look_for_keys=False,
                allow_agent=False,
            )
            break
        except (paramiko.SSHException, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    try:
        _, out, _ = client.exec_command("id -un; hostname; cat /proc/partitions", timeout=30)
        text = out.read().decode()
    finally:
        client.close()
    assert text.splitlines()[:2] == ["cirros", "onestack-tiny"]
    assert re.search(r"\bvdb\b", text), text  # an attached disk shows up, unformatted
