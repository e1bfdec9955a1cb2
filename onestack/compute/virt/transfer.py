"""Moving a stopped guest's root disk to another compute host (cold migration, resize).

Compute hosts share no storage (in the multi-node cloud each node has its own network
and mount namespace), so the disk travels between them. The source serves it read-only
over NBD with a ``qemu-storage-daemon`` of its own, as the volume nodes serve volumes:
bound to this host's ``compute.migration_address``, on a free port, under a random
256-bit export name that travels only in the bus message to the destination. The
destination's ``qemu-img convert`` reads the guest's view of the disk (the qcow2
overlay and its base, presented raw) and writes a standalone qcow2, sparse (zero
clusters are skipped); so the destination needs neither the base image nor the image
service (a server whose image has been deleted moves too).

Why NBD rather than an HTTP pull from the source agent: agents run no HTTP server (they
speak only on the bus), and qemu-storage-daemon + qemu-img is what the volume nodes
already run: QEMU's own reading of a qcow2 chain, with image locking, nothing new to
authenticate. NBD itself authenticates nobody, as the volume exports say: the name keeps
out mistakes and guesses, not someone who can reach the port; the migration address must
be one only compute hosts reach. The export stops when the destination has the disk
(or gave up), and at the latest when the move is confirmed or reverted.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from onestack.common import qemu_img
from onestack.compute.virt.errors import VirtError

log = logging.getLogger(__name__)

BINARY = "qemu-storage-daemon"


def nbd_uri(source: dict) -> str:
    host = source["host"]
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"nbd://{host}:{int(source['port'])}/{source['name']}"


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _ours(pid: int, pidfile: Path) -> bool:
    """Whether `pid` is the daemon started with `pidfile` (not a process that got its number since)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(argv) and os.path.basename(argv[0].decode(errors="replace")).startswith(BINARY) and \
        str(pidfile).encode() in argv


class DiskExports:
    """The read-only NBD exports of stopped guests' disks on one host, one per instance;
    their pid files under `directory` (an export outlives an onestack restart; the next
    confirm or revert stops it)."""

    def __init__(self, directory: Path, binary: str = BINARY, start_timeout: float = 30):
        self.dir = Path(directory)
        self.binary = binary
        self.start_timeout = start_timeout
        self._lock = threading.Lock()

    def _pidfile(self, key: str) -> Path:
        return self.dir / f"{key}.pid"

    def argv(self, path: Path, fmt: str, address: str, port: int, name: str, pidfile: Path) -> list[str]:
        return [self.binary,
                "--blockdev", json.dumps({"driver": "file", "node-name": "file0", "filename": str(path),
                                          "read-only": True}),
                "--blockdev", json.dumps({"driver": fmt, "node-name": "disk0", "file": "file0", "read-only": True}),
                "--nbd-server", json.dumps({"addr": {"type": "inet", "host": address, "port": str(port)}}),
                "--export", json.dumps({"type": "nbd", "id": "export0", "node-name": "disk0", "name": name,
                                        "writable": False}),
                "--pidfile", str(pidfile), "--daemonize"]

    def start(self, key: str, path: Path, fmt: str, address: str) -> dict:
        """Serve `path` (read as `fmt`) read-only on `address`; where and under which name."""
        if shutil.which(self.binary) is None and not os.path.isfile(self.binary):
            raise VirtError(f"{self.binary} not found (Debian package qemu-system-common)")
        with self._lock:
            self.dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.dir, 0o700)
            self._stop(key)
            name, pidfile = secrets.token_hex(32), self._pidfile(key)
            for attempt in range(5):  # a free port may be taken between the probe and the bind
                port = _free_port(address)
                try:
                    done = subprocess.run(self.argv(path, fmt, address, port, name, pidfile),
                                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                          timeout=self.start_timeout, start_new_session=True)
                except subprocess.TimeoutExpired:
                    raise VirtError(f"{self.binary} did not start within {self.start_timeout:.0f} s") from None
                if done.returncode == 0:
                    break
                lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
                # (its message repeats the options, the export name among them: the reason only)
                reason = lines[-1].rpartition(": ")[2] if lines else f"exit status {done.returncode}"
                if "in use" not in reason.lower() or attempt == 4:
                    raise VirtError(f"the disk of {key} could not be exported: {reason}")
            log.info("disk of %s exported for migration on %s:%s", key, address, port)
            return {"host": address, "port": port, "name": name}

    def stop(self, key: str) -> bool:
        """End the export of `key`; False if there was none."""
        with self._lock:
            return self._stop(key)

    def _stop(self, key: str, timeout: float = 10) -> bool:
        pidfile = self._pidfile(key)
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return False
        if _ours(pid, pidfile):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + timeout
            while _ours(pid, pidfile) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _ours(pid, pidfile):
                os.kill(pid, signal.SIGKILL)
        pidfile.unlink(missing_ok=True)
        return True


def pull(source: dict, dest: Path, timeout: float = 3600) -> None:
    """Copy the exported disk `source` into a new standalone qcow2 at `dest` (sparse)."""
    tmp = dest.with_name(f".{dest.name}.partial")
    try:
        qemu_img.convert(nbd_uri(source), tmp, "raw", "qcow2", trusted=True, timeout=timeout)
    except qemu_img.QemuImgError as e:
        tmp.unlink(missing_ok=True)
        # (qemu-img's message may name the URI, and with it the export name: the reason only)
        raise VirtError(f"the disk could not be copied from {source['host']}:{source['port']}: "
                        f"{e.reason.rpartition(': ')[2]}") from None
    tmp.chmod(0o600)
    os.replace(tmp, dest)
