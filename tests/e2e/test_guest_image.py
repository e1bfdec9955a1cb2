"""The tiny guest image builds from Debian packages and boots under plain QEMU (TCG).

No cloud is involved: QEMU's user-mode network gives the guest its DHCP lease and
forwards one loopback port to the guest's SSH server (restrict=on: the guest
reaches nothing else).  Instance metadata comes from a config drive (a vfat file
labelled config-2) or from a metadata service at 169.254.169.254 that QEMU
forwards to a small HTTP server of the test on 127.0.0.1.
"""

from __future__ import annotations

import http.server
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

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
# QEMU's user network placed on the link-local /24, so 169.254.169.254 is on-link
# for the guest, as with a metadata route in a cloud.
MD_NET = "net=169.254.169.0/24,host=169.254.169.2"
MD_GUEST_IP = "169.254.169.15"  # slirp's first DHCP address in that net


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Guest:
    """A QEMU process whose serial console is read line by line, with timestamps."""

    def __init__(self, disks: list[str], ssh_port: int, net: str = ""):
        self.ssh_port = ssh_port
        self.lines: list[tuple[float, str]] = []
        self.started = time.monotonic()
        drives = []
        for spec in disks:
            drives += ["-drive", spec]
        self.proc = subprocess.Popen(
            [
                "qemu-system-x86_64",
                "-machine",
                "accel=tcg",
                "-m",
                "256",
                "-nographic",
                *drives,
                # user-mode networking stays inside QEMU; only a loopback port is forwarded
                "-netdev",
                # restrict=on: the guest reaches nothing beyond QEMU (only our forwards)
                f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{ssh_port}-:22{net}",
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

    def ssh(self, command: str, **auth) -> str:
        """Run `command` as cirros over the forwarded port; auth: password= or pkey=."""
        paramiko = pytest.importorskip("paramiko")
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        deadline = time.monotonic() + 60
        while True:
            try:
                client.connect(
                    "127.0.0.1",
                    port=self.ssh_port,
                    username="cirros",
                    timeout=30,
                    banner_timeout=30,
                    auth_timeout=30,
                    look_for_keys=False,
                    allow_agent=False,
                    **auth,
                )
                break
            except paramiko.AuthenticationException:
                raise  # a refused key or password is the answer, not a slow guest
            except (paramiko.SSHException, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        try:
            _, out, _ = client.exec_command(command, timeout=30)
            return out.read().decode()
        finally:
            client.close()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


@contextmanager
def booted(image: Path, tmp: Path, extra: list[str] = (), net: str = "") -> Iterator[Guest]:
    """Boot a throw-away qcow2 overlay of `image` (the built image is never written)."""
    overlay = tmp / "boot.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", image, overlay], check=True
    )
    g = Guest([f"file={overlay},if=virtio", *extra], _free_port(), net)
    try:
        yield g
    finally:
        g.stop()


def _blank_disk(path: Path, mib: int = 16) -> Path:
    with open(path, "wb") as f:
        f.truncate(mib * 1024 * 1024)
    return path


def _keypair():
    """A fresh ed25519 key: (paramiko key, OpenSSH public key line)."""
    import io

    paramiko = pytest.importorskip("paramiko")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return paramiko.Ed25519Key.from_private_key(io.StringIO(private)), public.decode() + " test@e2e"


def _meta_data(hostname: str, public_key: str) -> bytes:
    """A meta_data.json shaped like Nova's, with decoys the guest must not take."""
    return json.dumps(
        {
            "uuid": "6f1ab1b4-5b1c-4b5e-9d56-0d4a1f1b1c01",
            "meta": {"name": "not-the-hostname", "note": 'braces } and "quotes" {'},
            "public_keys": {"e2e": public_key + "\n"},
            "keys": [{"name": "e2e", "type": "ssh", "data": public_key + "\n"}],
            "hostname": hostname,
            "name": hostname.split(".")[0],
            "launch_index": 0,
            "availability_zone": "nova",
            "devices": [],
        }
    ).encode()


def _user_data(marker: str, status: int) -> bytes:
    return f'#!/bin/sh\necho "{marker} on $(hostname) as $(id -un)"\nexit {status}\n'.encode()


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        pytest.skip(f"host tools missing (see guest/README.md): {' '.join(missing)}")
    from guest.build import build

    out = tmp_path_factory.mktemp("guest") / "onestack-tiny-x86_64.qcow2"
    start = time.monotonic()
    build(out)
    print(f"\nbuild: {time.monotonic() - start:.1f}s", file=sys.stderr)
    return out


@pytest.fixture(scope="module")
def guest(image, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plain")
    with booted(image, tmp, [f"file={_blank_disk(tmp / 'vdb.raw')},if=virtio,format=raw"]) as g:
        yield g


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
    # restrict=on gives no router, so no route to 169.254.169.254: no waiting for it
    guest.wait_for(r"onestack-tiny: no metadata \(no config drive")
    guest.wait_for(r"onestack-tiny: dropbear listening")
    guest.wait_for(r"login as 'cirros' user")
    t_ready, ready = guest.wait_for(
        r"onestack-tiny: ready\. hostname=onestack-tiny addresses: eth0=10\.0\.2\.15/24"
    )
    # figures, not assertions on time (bench/ measures boot time)
    print(
        f"\nkernel at {t_kernel:.1f}s, lease at {t_lease:.1f}s, ready at {t_ready:.1f}s: {ready}",
        file=sys.stderr,
    )


def test_ssh_login_and_extra_disk(guest):
    guest.wait_for(r"onestack-tiny: ready\.")
    text = guest.ssh("id -un; hostname; cat /proc/partitions", password="gocubsgo")
    assert text.splitlines()[:2] == ["cirros", "onestack-tiny"]
    assert re.search(r"\bvdb\b", text), text  # an attached disk shows up, unformatted


def test_lsblk_lists_disks_as_tempest_reads_them(guest):
    """Tempest's validation runs `lsblk -lb --nodeps` in the guest (busybox has no lsblk)."""
    guest.wait_for(r"onestack-tiny: ready\.")
    prologue = "set -eu -o pipefail; PATH=$PATH:/sbin:/usr/sbin; "  # Tempest's ssh_shell_prologue
    out = guest.ssh(prologue + "lsblk -lb --nodeps; echo ==; lsblk --nodeps --noheadings --output NAME",
                    password="gocubsgo")
    table, names = out.split("==\n")
    lines = table.splitlines()
    pos = lines[0].find("TYPE")  # as tempest's RemoteClient.get_disks() picks the disks
    disks = [line.split()[0] for line in lines[1:] if line[pos:pos + 4] == "disk"]
    assert disks == ["vda", "vdb"], out
    sizes = {line.split()[0]: int(line.split()[3]) for line in lines[1:]}
    assert sizes["vdb"] == 16 * 1024 * 1024, out  # in bytes: the blank disk is 16 MiB
    assert [n for n in names.split() if n.startswith("vd")] == ["vda", "vdb"], out


def _config_drive(path: Path, files: dict[str, bytes], fs: str) -> Path:
    """A filesystem labelled config-2 holding `files`, as Nova's config drive."""
    src = path.with_suffix(".d")
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    if fs == "vfat":  # Nova's config_drive_format=vfat
        subprocess.run(
            ["mkfs.vfat", "-n", "config-2", "-C", path, "1024"], check=True, capture_output=True
        )
        subprocess.run(["mcopy", "-s", "-i", path, src / "openstack", "::/"], check=True)
    else:  # iso9660, Nova's default, as genisoimage makes it (Rock Ridge + Joliet)
        tool = shutil.which("genisoimage") or shutil.which("xorriso")
        if not tool:
            pytest.skip("no genisoimage or xorriso to make an iso9660 config drive")
        mkisofs = [tool] if tool.endswith("genisoimage") else [tool, "-as", "mkisofs"]
        subprocess.run(
            [*mkisofs, "-quiet", "-R", "-J", "-V", "config-2", "-o", path, src],
            check=True,
            capture_output=True,
        )
    return path


# vfat on a virtio disk (after a blank volume: /dev/vdc), or iso9660 on an IDE
# CD-ROM (/dev/sr0), where Nova's libvirt driver puts it on x86 by default.
@pytest.mark.parametrize(
    "fs, attach, device",
    [
        ("vfat", "if=virtio,format=raw,readonly=on", "/dev/vdc"),
        ("iso9660", "if=ide,index=2,media=cdrom,format=raw", "/dev/sr0"),
    ],
)
def test_config_drive(image, tmp_path, fs, attach, device):
    key, public = _keypair()
    drive = _config_drive(
        tmp_path / "config.img",
        {
            "openstack/latest/meta_data.json": _meta_data("cd-guest.novalocal", public),
            "openstack/latest/user_data": _user_data("USERDATA-RAN-CD", 3),
        },
        fs,
    )
    volume = _blank_disk(tmp_path / "vdb.raw")
    disks = [
        f"file={volume},if=virtio,format=raw",  # a volume: /dev/vdb
        f"file={drive},{attach}",
    ]
    with booted(image, tmp_path, disks) as g:
        g.wait_for(rf"onestack-tiny: metadata from config drive {device}$")
        g.wait_for(r"onestack-tiny: 1 SSH key\(s\) installed for cirros")
        g.wait_for(r"^USERDATA-RAN-CD on cd-guest\.novalocal as root")
        g.wait_for(r"onestack-tiny: user_data exited with status 3")
        t_ready, ready = g.wait_for(
            r"onestack-tiny: ready\. hostname=cd-guest\.novalocal addresses: eth0=10\.0\.2\.15/24"
        )
        print(f"\nconfig drive ({fs}): ready at {t_ready:.1f}s: {ready}", file=sys.stderr)
        out = g.ssh(
            "hostname; stat -c '%a %U' ~/.ssh ~/.ssh/authorized_keys; cat /proc/partitions",
            pkey=key,
        )
    lines = out.splitlines()
    assert lines[:3] == ["cd-guest.novalocal", "700 cirros", "600 cirros"], out
    assert re.search(r"\bvdb\b", out), out
    # the volume was seen, not touched: still all zeros
    assert volume.read_bytes() == bytes(volume.stat().st_size)


class _MetadataServer:
    """An HTTP server on 127.0.0.1 serving `files` (path -> body), logging requests."""

    def __init__(self, files: dict[str, bytes]):
        self.requests: list[tuple[str, int]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the stdlib's name)
                body = files.get(self.path.lstrip("/"))
                outer.requests.append((self.path, 200 if body is not None else 404))
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# QEMU runs this per guest connection to 169.254.169.254:80 (guestfwd "cmd:"), with
# the connection as stdin/stdout, and it relays to the test's server on loopback.
# (A "tcp:" guestfwd would connect once at QEMU start and carry a single connection.)
RELAY = """\
import selectors, socket, sys
guest = socket.socket(fileno=0)
server = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
sel = selectors.DefaultSelector()
sel.register(guest, selectors.EVENT_READ, server)
sel.register(server, selectors.EVENT_READ, guest)
open_ends = 2
while open_ends:
    events = sel.select(timeout=30)
    if not events:
        break  # bounded: nothing moved for 30 s
    for key, _ in events:
        data = key.fileobj.recv(65536)
        if data:
            key.data.sendall(data)
        else:  # this side has finished sending: pass the end on
            sel.unregister(key.fileobj)
            open_ends -= 1
            try:
                key.data.shutdown(socket.SHUT_WR)
            except OSError:
                pass
"""


@pytest.mark.parametrize("layout", ["openstack", "ec2"])
def test_metadata_service(image, tmp_path, layout):
    key, public = _keypair()
    host = f"md-{layout}"
    if layout == "openstack":
        files = {
            "openstack/latest/meta_data.json": _meta_data(host, public),
            "openstack/latest/user_data": _user_data("USERDATA-RAN-MD", 0),
        }
    else:  # a service with only the EC2 tree: the OpenStack paths answer 404
        files = {
            "latest/meta-data/hostname": host.encode(),
            "latest/meta-data/public-keys/0/openssh-key": public.encode() + b"\n",
            "latest/user-data": _user_data("USERDATA-RAN-MD", 0),
        }
    server = _MetadataServer(files)
    relay = tmp_path / "relay.py"
    relay.write_text(RELAY)
    forward = f"guestfwd=tcp:169.254.169.254:80-cmd:{sys.executable} {relay} {server.port}"
    assert "," not in forward  # a comma would end QEMU's option value
    try:
        with booted(image, tmp_path, net=f",{MD_NET},{forward}") as g:
            g.wait_for(rf"onestack-tiny: metadata from http://169\.254\.169\.254 \({layout}\)")
            g.wait_for(r"^USERDATA-RAN-MD on " + host)
            g.wait_for(r"onestack-tiny: user_data exited with status 0")
            t_ready, ready = g.wait_for(
                rf"onestack-tiny: ready\. hostname={host} addresses: eth0={MD_GUEST_IP}/24"
            )
            print(
                f"\nmetadata service ({layout}): ready at {t_ready:.1f}s: {ready}", file=sys.stderr
            )
            assert g.ssh("hostname", pkey=key).strip() == host
    finally:
        server.close()
    paths = [p for p, _ in server.requests]
    if layout == "openstack":
        assert paths[:2] == ["/openstack/latest/meta_data.json", "/openstack/latest/user_data"]
    else:
        assert server.requests[0] == ("/openstack/latest/meta_data.json", 404)
        assert paths[1:4] == [
            "/latest/meta-data/hostname",
            "/latest/meta-data/public-keys/0/openssh-key",
            "/latest/user-data",
        ]


def test_silent_metadata_service_does_not_hang_boot(image, tmp_path):
    # 169.254.169.254 is on-link but nothing answers (restrict=on drops the packets)
    with booted(image, tmp_path, net=f",{MD_NET}") as g:
        t_lease, _ = g.wait_for(rf"lease of {MD_GUEST_IP} obtained")
        g.wait_for(r"onestack-tiny: no metadata \(no config drive, no answer from")
        t_ready, ready = g.wait_for(r"onestack-tiny: ready\. hostname=onestack-tiny addresses: ")
        print(
            f"\nsilent metadata service: ready {t_ready - t_lease:.1f}s after the lease",
            file=sys.stderr,
        )
