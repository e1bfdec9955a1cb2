"""NBD exports of volume files, for guests whose compute node is not this volume node.

One ``qemu-storage-daemon`` per attachment serves one volume file over NBD::

    qemu-storage-daemon --blockdev file (the volume file) --blockdev raw|qcow2 (its format)
                        --nbd-server addr.type=inet,host=<volume.export_address>,port=<free port>
                        --export type=nbd,name=<export name>,writable=on|off
                        --pidfile <exports dir>/<key>.pid --daemonize

The client (the guest's QEMU, through libvirt ``<disk type='network'><source
protocol='nbd' name=...>``) sees raw data whatever the file's format: the daemon
opens the qcow2 layer itself. The export name is a random 256-bit value made per
attachment, returned in the connection info and never logged.

What that name is worth, honestly: NBD has no authentication of its own, and the
QEMU NBD server answers ``NBD_OPT_LIST`` with its exports' names (``qemu-nbd -L``
prints them). The name keeps a client from opening another attachment's export by
mistake or by guessing a name; it does not keep out anyone who can reach the port.
So the export address must be one only compute nodes reach (a storage network),
and the hardening step is TLS: with ``volume.export_tls_dir`` set, the daemon
requires TLS with x509 client certificates (``tls-creds-x509 ... verify-peer=on``)
and the connection info says ``tls: true``, for which libvirt (9.0 can: ``<source
protocol='nbd' tls='yes'>`` and ``nbd_tls_x509_cert_dir`` in qemu.conf on each
compute node) presents that node's client certificate.

``--daemonize`` makes the daemon its own session, child of init, not of onestack:
an onestack restart leaves the exports (and the guests' disks) alone. The parent
exits once the export is listening (or failed), so a start is a plain blocking
call and no zombie is left. Every export is written to a JSON ledger in the
exports directory (mode 0600: it holds the export names); a new manager re-adopts
the live ones, starts again those whose daemon died (same port and name: the
guests' XML names them), and forgets those whose volume file is gone.
``purge()`` (``onestack down --purge``) stops the daemons its ledger names, and
only processes that are this directory's ``qemu-storage-daemon``.
"""

from __future__ import annotations

import hashlib
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
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

BINARY = "qemu-storage-daemon"
LEDGER = "ledger.json"
PROTOCOLS = ("auto", "file", "nbd")


class ExportError(Exception):
    pass


@dataclass
class Export:
    key: str  # which attachment: a hash of the volume id and the connector
    volume_id: str
    path: str  # the volume file
    format: str  # its format (raw | qcow2); clients always see raw
    host: str  # the address the daemon listens on
    port: int
    name: str  # the export name: the per-attachment secret
    pid: int
    readonly: bool = False
    shared: bool = False  # a multiattach volume (no image locking)
    tls: bool = False
    users: int = 1  # attachments of a multiattach volume with the same connector
    connector: dict = field(default_factory=dict)

    def connection_data(self) -> dict:
        data = {"host": self.host, "port": self.port, "name": self.name, "format": "raw",
                "volume_id": self.volume_id, "access_mode": "ro" if self.readonly else "rw"}
        if self.tls:
            data["tls"] = True
        return data

    def __repr__(self) -> str:  # never the name
        return f"Export(volume {self.volume_id}, {self.host}:{self.port}, pid {self.pid})"


def use_nbd(protocol: str, volume_host: str, connector: dict | None) -> bool:
    """Whether an attachment goes over NBD: always (``nbd``), never (``file``), or when
    the connector's host is another node than this volume host (``auto``)."""
    if protocol == "nbd":
        return True
    if protocol == "file":
        return False
    host = (connector or {}).get("host")
    return bool(host) and host != volume_host.split("@")[0]


def attachment_key(volume_id: str, connector: dict | None) -> str:
    canon = json.dumps({"volume": volume_id, "connector": connector or {}}, sort_keys=True, default=str)
    return hashlib.sha256(canon.encode()).hexdigest()[:32]


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    if stat.rpartition(")")[2].split()[:1] == ["Z"]:
        return []  # a zombie is gone as far as we care
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def daemon_alive(pid: int, pidfile: Path) -> bool:
    """Whether `pid` is the qemu-storage-daemon started with `pidfile` (not just any
    process that got the same number after a reboot)."""
    if pid <= 0:
        return False
    argv = _cmdline(pid)
    if not argv or not os.path.basename(argv[0]).startswith(BINARY):
        return False
    return any(a == "--pidfile" and b == str(pidfile) for a, b in zip(argv, argv[1:], strict=False))


def _stop_pid(pid: int, pidfile: Path, timeout: float = 10) -> None:
    """SIGTERM (QEMU flushes and closes the image), then SIGKILL after `timeout`."""
    if not daemon_alive(pid, pidfile):
        pidfile.unlink(missing_ok=True)
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while daemon_alive(pid, pidfile):
        if time.monotonic() > deadline:
            log.warning("volume export daemon %s did not stop on SIGTERM; killing it", pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 5
            while daemon_alive(pid, pidfile) and time.monotonic() < deadline:
                time.sleep(0.05)
            break
        time.sleep(0.05)
    pidfile.unlink(missing_ok=True)


def _read_ledger(directory: Path) -> list[dict]:
    try:
        data = json.loads((directory / LEDGER).read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as e:
        log.warning("volume export ledger %s unreadable (%s); starting empty", directory / LEDGER, e)
        return []
    return [e for e in data.get("exports", []) if isinstance(e, dict)]


class ExportManager:
    """The NBD exports of one volume host, kept in a ledger under `directory`."""

    def __init__(self, directory: Path, address: str = "127.0.0.1", tls_dir: str | Path | None = None,
                 binary: str = BINARY, start_timeout: float = 30):
        self.dir = Path(directory)
        self.address = address
        self.tls_dir = Path(tls_dir) if tls_dir else None
        self.binary = binary
        self.start_timeout = start_timeout
        self._lock = threading.Lock()
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        self._exports: dict[str, Export] = {}
        for raw in _read_ledger(self.dir):
            try:
                e = Export(**raw)
            except TypeError:
                continue
            self._exports[e.key] = e
        self.reconcile()

    # -- the ledger

    def pidfile(self, key: str) -> Path:
        return self.dir / f"{key}.pid"

    def _save(self) -> None:
        tmp = self.dir / f".{LEDGER}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"version": 1, "exports": [asdict(e) for e in self._exports.values()]}, f, indent=1)
        os.replace(tmp, self.dir / LEDGER)

    def exports(self) -> list[Export]:
        with self._lock:
            return list(self._exports.values())

    def alive(self, e: Export) -> bool:
        return daemon_alive(e.pid, self.pidfile(e.key))

    # -- starting and stopping daemons

    def _argv(self, e: Export) -> list[str]:
        file_node = {"driver": "file", "node-name": "file0", "filename": e.path}
        if e.shared:
            file_node["locking"] = "off"
        fmt_node = {"driver": e.format, "node-name": "disk0", "file": "file0"}
        if e.readonly:
            fmt_node["read-only"] = True
        server: dict = {"addr": {"type": "inet", "host": e.host, "port": str(e.port)}}
        argv = [self.binary]
        if e.tls:
            argv += ["--object", json.dumps({"qom-type": "tls-creds-x509", "id": "tls0", "endpoint": "server",
                                             "dir": str(self.tls_dir), "verify-peer": True})]
            server["tls-creds"] = "tls0"
        argv += ["--blockdev", json.dumps(file_node), "--blockdev", json.dumps(fmt_node),
                 "--nbd-server", json.dumps(server),
                 "--export", json.dumps({"type": "nbd", "id": "export0", "node-name": "disk0", "name": e.name,
                                         "writable": not e.readonly}),
                 "--pidfile", str(self.pidfile(e.key)), "--daemonize"]
        return argv

    def _start(self, e: Export) -> None:
        """Run the daemon of `e` (its port, name and pidfile set); returns once it listens."""
        if shutil.which(self.binary) is None and not os.path.isfile(self.binary):
            raise ExportError(f"{self.binary} not found (Debian package qemu-system-common)")
        try:
            done = subprocess.run(self._argv(e), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=self.start_timeout, start_new_session=True)
        except subprocess.TimeoutExpired:
            raise ExportError(f"{self.binary} did not start within {self.start_timeout:.0f} s") from None
        if done.returncode != 0:
            lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
            # the daemon's message repeats its options (the export name among them): keep the reason only
            reason = lines[-1].rpartition(": ")[2] if lines else f"exit status {done.returncode}"
            raise ExportError(f"{self.binary} could not export volume {e.volume_id}: {reason}")
        try:
            e.pid = int(self.pidfile(e.key).read_text().strip())
        except (OSError, ValueError):
            raise ExportError(f"{self.binary} wrote no pid file for volume {e.volume_id}") from None

    def export(self, volume_id: str, path: str | Path, fmt: str, connector: dict | None, *,
               readonly: bool = False, shared: bool = False) -> Export:
        """The export of this attachment (volume + connector): the running one, or a new
        daemon on a free port with a new name."""
        if fmt not in ("raw", "qcow2"):
            raise ExportError(f"volume {volume_id} has format {fmt!r}; exports serve raw or qcow2")
        if not Path(path).is_file():
            raise ExportError(f"the file of volume {volume_id} is missing")
        key = attachment_key(volume_id, connector)
        with self._lock:
            old = self._exports.get(key)
            if old is not None and self.alive(old):
                if shared:
                    old.users += 1
                    self._save()
                return old
            if old is not None:
                self._exports.pop(key)
            others = [x for x in self._exports.values() if x.volume_id == volume_id]
            if others and not shared:
                # one attachment at a time (the API sees to it): an export of this volume for
                # another connector is a stale one (its detach never reached us) or the same
                # attachment moved to another host; either way it goes, or two guests would write
                for x in others:
                    log.info("stale NBD export of volume %s on port %s stopped", volume_id, x.port)
                    _stop_pid(x.pid, self.pidfile(x.key))
                    self._exports.pop(x.key)
                self._save()
            elif others and fmt == "qcow2":
                raise ExportError(f"volume {volume_id} is qcow2 and already exported: two daemons writing "
                                  "one qcow2 file would corrupt it")
            e = Export(key=key, volume_id=volume_id, path=str(Path(path).resolve()), format=fmt,
                       host=self.address, port=0, name=secrets.token_hex(32), pid=0, readonly=readonly,
                       shared=shared, tls=self.tls_dir is not None, connector=dict(connector or {}))
            for attempt in range(5):  # a free port may be taken between the probe and the bind
                e.port = _free_port(self.address)
                try:
                    self._start(e)
                    break
                except ExportError as err:
                    if "in use" not in str(err).lower() or attempt == 4:
                        raise
            self._exports[key] = e
            self._save()
            log.info("volume %s exported over NBD on %s:%s (pid %s)", volume_id, e.host, e.port, e.pid)
            return e

    def unexport(self, volume_id: str, connector: dict | None) -> bool:
        """End this attachment's export (the last user of a shared one); False if there was none."""
        key = attachment_key(volume_id, connector)
        with self._lock:
            e = self._exports.get(key)
            if e is None:
                return False
            if e.users > 1:
                e.users -= 1
                self._save()
                return True
            _stop_pid(e.pid, self.pidfile(key))
            self._exports.pop(key)
            self._save()
        log.info("NBD export of volume %s on %s:%s stopped", volume_id, e.host, e.port)
        return True

    def stop_volume(self, volume_id: str) -> int:
        """End every export of a volume (it is being deleted); how many there were."""
        with self._lock:
            gone = [e for e in self._exports.values() if e.volume_id == volume_id]
            for e in gone:
                _stop_pid(e.pid, self.pidfile(e.key))
                self._exports.pop(e.key)
            if gone:
                self._save()
        return len(gone)

    def reconcile(self) -> None:
        """Adopt the live daemons of the ledger; start again those that died (same port and
        name, so a guest that reconnects finds its disk); forget those whose file is gone."""
        with self._lock:
            changed = False
            for e in list(self._exports.values()):
                if self.alive(e):
                    continue
                self.pidfile(e.key).unlink(missing_ok=True)
                if not Path(e.path).is_file():
                    log.warning("NBD export of volume %s dropped: its file is gone", e.volume_id)
                    self._exports.pop(e.key)
                    changed = True
                    continue
                try:
                    self._start(e)
                    log.info("NBD export of volume %s started again on %s:%s", e.volume_id, e.host, e.port)
                except ExportError as err:
                    log.warning("NBD export of volume %s could not be started again: %s", e.volume_id, err)
                    self._exports.pop(e.key)
                changed = True
            if changed:
                self._save()

    def stop_all(self) -> int:
        """Stop every export (purge); how many were running."""
        with self._lock:
            n = 0
            for e in self._exports.values():
                if self.alive(e):
                    n += 1
                _stop_pid(e.pid, self.pidfile(e.key))
            self._exports.clear()
            self._save()
        return n


def purge(directory: Path) -> int:
    """Stop the export daemons named in the ledger of `directory` (``onestack down
    --purge``), checking each pid is that directory's qemu-storage-daemon; how many."""
    directory = Path(directory)
    n = 0
    for raw in _read_ledger(directory):
        try:
            pid, pidfile = int(raw.get("pid", 0)), directory / f"{raw['key']}.pid"
        except (KeyError, TypeError, ValueError):
            continue
        if daemon_alive(pid, pidfile):
            n += 1
        _stop_pid(pid, pidfile)
    (directory / LEDGER).unlink(missing_ok=True)
    return n


def exports_dir(conf) -> Path:
    """The exports directory of a configuration (as the volume settings place it)."""
    v = conf.volume
    return (Path(v.volumes_dir) if v.volumes_dir else conf.state_dir / "volumes") / "exports"
