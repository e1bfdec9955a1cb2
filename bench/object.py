"""Object storage throughput: small objects per second and a 1 GiB object
against the disk, for onestack's Swift API and, in the same run, for a real
OpenStack Swift on loopback.

For each system (onestack first, then Swift):

1. small objects: 4 KiB PUTs, then GETs of the same objects, with 1 and with
   16 concurrent clients (threads, each with its own keep-alive connection),
   --ops requests per phase (default 2000; a phase stops after
   --phase-seconds however far it got); then the objects are deleted with 16
   clients (also timed). Prints requests/s, median and p90 latency;
2. a 1 GiB object: disk baseline first (1 MiB writes + fsync to the storage
   filesystem: one file, then 3 files at once as 3 replicas are written),
   then PUT of a 1 GiB sparse file (sized body, sendfile), then reading one
   stored replica file with its pages evicted (the disk's read rate), then
   GET with every stored file's pages evicted; --rounds times, medians
   printed. Target: PUT >= 50% of the disk's write rate with 3 replicas
   written (the rate of 3 copies at once, the disk's own bound for such a
   PUT, is printed beside it). For onestack it also prints the server's peak
   RSS above idle during the transfers.

The transfers use a minimal HTTP/1.1 client on a plain socket (sendfile up,
recv_into down), so the figures are the servers', not a Python client's: the
client shares the machine's two cores with the servers.

onestack: its own cloud (3 replicas, the default), or --url with
--admin-password; a Keystone token from {cloud}/identity/v3/auth/tokens, the
storage URL from the token's catalog (type object-store, public interface).

Swift, the peer: Swift from PyPI in its own virtualenv .venv-swift (created on
first use), a proxy (tempauth, memcache) and account, container and object
servers on free loopback ports, rings of 3 devices (one per zone) and 3
replicas, storage in a temporary directory on the same filesystem as
onestack's (its xattr support is checked first). memcached is needed by
tempauth; when it is missing and the bench runs as root it is installed with
apt (and said so). If the peer cannot be installed or started, the reason is
printed and onestack's figures still are. Never fails on time.

    .venv/bin/python bench/object.py                         # both, 1 GiB
    .venv/bin/python bench/object.py --mib 256 --ops 500     # quicker
    .venv/bin/python bench/object.py --systems swift         # the peer only
    .venv/bin/python bench/object.py --url http://127.0.0.1:8774 --admin-password ...
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from _cloud import REPO, Cloud, free_port, running, stop_on_sigterm, summary
from image import PeakRss, disk_read, disk_write, evict, read_response_head, rss_kib

MiB = 1024 * 1024
SWIFT_VENV = REPO / ".venv-swift"
SWIFT_REQUIREMENT = "swift"  # the newest release on PyPI
PART_POWER = 10  # as onestack's default ring
REPLICAS = 3


def say(message: str) -> None:
    print(message, flush=True)


# --------------------------------------------------------------------------- targets


@dataclass
class Target:
    """One object store to measure: where to send requests and what it stores on."""

    name: str
    storage_url: str  # http://host:port/.../v1/AUTH_xxx
    token: str
    data_dir: Path | None  # the device directories (page eviction, replica files), if local
    pid: int | None = None  # a server process to sample RSS of, if known
    notes: list[str] = field(default_factory=list)

    @property
    def path(self) -> str:
        return urlsplit(self.storage_url).path.rstrip("/")

    @property
    def address(self) -> tuple[str, int]:
        u = urlsplit(self.storage_url)
        return u.hostname, u.port or 80

    def request(self, method: str, path: str, body: bytes = b"", expected=(200, 201, 202, 204),
                headers: dict | None = None) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection(*self.address, timeout=120)
        try:
            conn.request(method, self.path + path, body=body or None,
                         headers={"X-Auth-Token": self.token, **(headers or {})})
            r = conn.getresponse()
            r.read()
        finally:
            conn.close()
        if r.status not in expected:
            raise RuntimeError(f"{self.name}: {method} {path} answered {r.status}")
        return r


def keystone_target(url: str, password: str, pid: int | None, data_dir: Path | None) -> Target:
    """Admin token from onestack's identity API; the object-store URL from its catalog."""
    r = httpx.post(f"{url}/identity/v3/auth/tokens", timeout=60, json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"name": "Default"}, "password": password}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}})
    r.raise_for_status()
    catalog = r.json()["token"].get("catalog", [])
    endpoints = [e["url"] for s in catalog if s["type"] == "object-store"
                 for e in s["endpoints"] if e["interface"] == "public"]
    if not endpoints:
        raise RuntimeError("the token's catalog has no public object-store endpoint")
    info = httpx.get(f"{url}/object-store/info", timeout=30)
    target = Target("onestack", endpoints[0].rstrip("/"), r.headers["X-Subject-Token"], data_dir, pid)
    if info.status_code == 200:
        swift = info.json().get("swift", {})
        target.notes.append(f"/info: max_file_size {swift.get('max_file_size', '?')}, "
                            f"{len(info.json())} capabilities")
    else:
        target.notes.append(f"GET /object-store/info answered {info.status_code}")
    return target


# --------------------------------------------------------------------------- small objects


@dataclass
class Phase:
    ops: int
    wall: float
    latencies: list[float]
    errors: list[str]

    @property
    def rate(self) -> float:
        return self.ops / self.wall if self.wall > 0 else 0.0


def run_phase(target: Target, method: str, names: list[list[str]], body: bytes,
              expected: tuple[int, ...], max_seconds: float) -> Phase:
    """One thread per list of names, each with its own keep-alive connection."""
    latencies: list[list[float]] = [[] for _ in names]
    errors: list[str] = []
    start = threading.Barrier(len(names) + 1)
    deadline = [0.0]
    headers = {"X-Auth-Token": target.token}
    if method == "PUT":
        headers["Content-Type"] = "application/octet-stream"

    def client(i: int) -> None:
        conn = http.client.HTTPConnection(*target.address, timeout=60)
        mine = latencies[i]
        start.wait()
        for name in names[i]:
            if time.perf_counter() > deadline[0] or len(errors) > 20:
                break
            t = time.perf_counter()
            try:
                conn.request(method, f"{target.path}/{name}", body=body if method == "PUT" else None,
                             headers=headers)
                r = conn.getresponse()
                data = r.read()
            except (OSError, http.client.HTTPException) as err:
                errors.append(f"{method} {name}: {err!r}")
                conn.close()
                conn = http.client.HTTPConnection(*target.address, timeout=60)
                continue
            mine.append(time.perf_counter() - t)
            if r.status not in expected:
                errors.append(f"{method} {name}: {r.status} {data[:200]!r}")
            elif method == "GET" and len(data) != len(body):
                errors.append(f"GET {name}: {len(data)} bytes, expected {len(body)}")
        conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(len(names))]
    for t in threads:
        t.start()
    deadline[0] = time.perf_counter() + max_seconds
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    done = [x for lat in latencies for x in lat]
    return Phase(len(done), wall, done, errors)


def small_objects(target: Target, clients_list: list[int], ops: int, size: int,
                  max_seconds: float) -> dict[str, Phase]:
    container = f"bench-small-{secrets.token_hex(3)}"
    target.request("PUT", f"/{container}")
    body = os.urandom(size)
    results: dict[str, Phase] = {}
    written: list[str] = []
    for clients in clients_list:
        per = max(1, ops // clients)
        names = [[f"{container}/c{clients}-{c}-{i:05d}" for i in range(per)] for c in range(clients)]
        label = f"{clients} client" + ("s" if clients > 1 else "")
        for method, expected in (("PUT", (201,)), ("GET", (200,))):
            phase = run_phase(target, method, names, body, expected, max_seconds)
            results[f"{method} {label}"] = phase
            report_phase(target.name, f"{size // 1024} KiB {method} {label}", phase)
        written += [n for ns in names for n in ns]
    # clean up, timed: DELETE with the largest number of clients
    clients = max(clients_list)
    chunks = [written[i::clients] for i in range(clients)]
    phase = run_phase(target, "DELETE", chunks, body, (204, 404), max_seconds * 4)
    results[f"DELETE {clients} clients"] = phase
    report_phase(target.name, f"{size // 1024} KiB DELETE {clients} clients", phase)
    with contextlib.suppress(RuntimeError):
        target.request("DELETE", f"/{container}", expected=(204,))
    return results


def report_phase(system: str, what: str, phase: Phase) -> None:
    if not phase.latencies:
        say(f"  {system:8s} {what:26s}: no request completed")
    else:
        med, p90 = summary(phase.latencies)
        say(f"  {system:8s} {what:26s}: {phase.rate:7.0f} req/s  (median {med:6.1f} ms, "
            f"p90 {med if len(phase.latencies) < 2 else p90:6.1f} ms, n={phase.ops})")
    for err in phase.errors[:3]:
        say(f"    error: {err}")
    if len(phase.errors) > 3:
        say(f"    ... {len(phase.errors) - 3} more errors")


# --------------------------------------------------------------------------- the large object


def raw_put(target: Target, path: str, src: Path, size: int) -> float:
    """PUT a file's bytes (sized body, sendfile); seconds from the request to the answer."""
    host, port = target.address
    with socket.create_connection((host, port)) as sock:
        t = time.perf_counter()
        sock.sendall((f"PUT {target.path}{path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                      f"X-Auth-Token: {target.token}\r\nContent-Type: application/octet-stream\r\n"
                      f"Content-Length: {size}\r\n\r\n").encode())
        with open(src, "rb") as f:
            sock.sendfile(f)
        status, _, body = read_response_head(sock)
        elapsed = time.perf_counter() - t
    if status != 201:
        raise RuntimeError(f"{target.name}: PUT of the large object answered {status} {body[:200]!r}")
    return elapsed


def raw_get(target: Target, path: str) -> tuple[int, float]:
    """GET a body into a reused buffer (sized or chunked); (bytes, seconds)."""
    host, port = target.address
    buf = bytearray(MiB)
    view = memoryview(buf)
    with socket.create_connection((host, port)) as sock:
        t = time.perf_counter()
        sock.sendall(f"GET {target.path}{path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                     f"X-Auth-Token: {target.token}\r\n\r\n".encode())
        status, headers, rest = read_response_head(sock)
        if status != 200:
            raise RuntimeError(f"{target.name}: GET of the large object answered {status}")
        if "content-length" in headers:
            length, got = int(headers["content-length"]), len(rest)
            while got < length:
                n = sock.recv_into(view)
                if not n:
                    break
                got += n
        else:  # chunked: slower on this side, but still counted
            got, pending = 0, rest
            reader = sock.makefile("rb")
            stream = _Chained(pending, reader)
            while True:
                line = stream.readline()
                n = int(line.split(b";")[0], 16)
                if n == 0:
                    break
                remaining = n
                while remaining:
                    chunk = stream.read(min(remaining, MiB))
                    if not chunk:
                        raise ConnectionError("chunked body cut short")
                    remaining -= len(chunk)
                got += n
                stream.readline()
        return got, time.perf_counter() - t


class _Chained:
    """Bytes already received, then a file: readline() and read(n)."""

    def __init__(self, first: bytes, f):
        self.first, self.f = first, f

    def readline(self) -> bytes:
        if b"\n" in self.first:
            line, _, self.first = self.first.partition(b"\n")
            return line + b"\n"
        line, self.first = self.first + self.f.readline(), b""
        return line

    def read(self, n: int) -> bytes:
        if self.first:
            out, self.first = self.first[:n], self.first[n:]
            return out
        return self.f.read(n)


def disk_write_copies(directory: Path, size: int, copies: int) -> float:
    """Object bytes/s of writing COPIES files of SIZE at once (1 MiB writes + fsync each, one
    thread per copy), as a replicated PUT writes them: the disk's own bound for such a PUT."""
    from concurrent.futures import ThreadPoolExecutor

    block = os.urandom(MiB)
    paths = [directory / f"bench-disk-copy-{i}" for i in range(copies)]

    def write(path: Path) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for _ in range(size // MiB):
                os.write(fd, block)
            os.fsync(fd)
        finally:
            os.close(fd)

    try:
        t = time.perf_counter()
        with ThreadPoolExecutor(copies) as pool:
            list(pool.map(write, paths))
        return size / (time.perf_counter() - t)
    finally:
        for path in paths:
            path.unlink(missing_ok=True)


def evict_tree(root: Path) -> None:
    """Drop the pages of every file under ROOT from the page cache."""
    for path in root.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file() and not path.is_symlink():
                evict(path)


def largest_file(root: Path) -> Path | None:
    best, size = None, -1
    for path in root.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file() and path.stat().st_size > size:
                best, size = path, path.stat().st_size
    return best


@dataclass
class Large:
    put: list[float] = field(default_factory=list)  # bytes/s
    get: list[float] = field(default_factory=list)
    disk_write: list[float] = field(default_factory=list)
    disk_read: list[float] = field(default_factory=list)
    disk_copies: list[float] = field(default_factory=list)  # object bytes/s, REPLICAS at once
    replicas: int = 0
    put_rss: float = 0.0  # MB above idle
    get_rss: float = 0.0


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def large_object(target: Target, sparse: Path, size: int, rounds: int) -> Large:
    container = f"bench-large-{secrets.token_hex(3)}"
    target.request("PUT", f"/{container}")
    result = Large()
    idle = rss_kib(target.pid) if target.pid else 0
    baseline_dir = target.data_dir if target.data_dir and target.data_dir.is_dir() else None
    for _ in range(rounds):
        os.sync()  # no dirty pages from the phase before
        if baseline_dir:
            result.disk_write.append(disk_write(baseline_dir, size))
            os.sync()
            result.disk_copies.append(disk_write_copies(baseline_dir, size, REPLICAS))
            os.sync()
        sampler = PeakRss(target.pid) if target.pid else contextlib.nullcontext()
        with sampler as peak:
            elapsed = raw_put(target, f"/{container}/big", sparse, size)
        result.put.append(size / elapsed)
        if target.pid:
            result.put_rss = max(result.put_rss, (peak.peak - idle) / 1024)
        if target.data_dir:
            replicas = [p for p in target.data_dir.rglob("*") if p.is_file() and p.stat().st_size == size]
            result.replicas = len(replicas)
            stored = largest_file(target.data_dir)
            if stored is not None and stored.stat().st_size >= size:
                result.disk_read.append(disk_read(stored))
            evict_tree(target.data_dir)
        sampler = PeakRss(target.pid) if target.pid else contextlib.nullcontext()
        with sampler as peak:
            got, elapsed = raw_get(target, f"/{container}/big")
        if got != size:
            raise RuntimeError(f"{target.name}: GET returned {got} of {size} bytes")
        result.get.append(size / elapsed)
        if target.pid:
            result.get_rss = max(result.get_rss, (peak.peak - idle) / 1024)
        target.request("DELETE", f"/{container}/big", expected=(204,))
    with contextlib.suppress(RuntimeError):
        target.request("DELETE", f"/{container}", expected=(204,))
    return result


def report_large(name: str, size_mib: int, large: Large, rounds: int) -> None:
    w, r = median(large.disk_write), median(large.disk_read)
    put, get = median(large.put), median(large.get)
    copies = median(large.disk_copies)
    if w:
        say(f"  {name:8s} disk (storage filesystem): write {w / MiB:6.0f} MB/s (1 MiB writes + fsync), "
            f"{REPLICAS} copies at once {copies / MiB:6.0f} MB/s of object, "
            f"read {r / MiB:6.0f} MB/s (a stored replica, pages evicted)")
    replicas = f", {large.replicas} replica files of {size_mib} MiB seen" if large.replicas else ""
    target = " (target >= 50%)" if name == "onestack" else ""
    put_vs = f" = {put / w:4.0%} of disk write{target}" if w else ""
    get_vs = f" = {get / r:4.0%} of disk read" if r else ""
    rss_put = f", peak RSS +{large.put_rss:.0f} MB" if large.put_rss else ""
    rss_get = f", peak RSS +{large.get_rss:.0f} MB" if large.get_rss else ""
    if copies:
        put_vs += f", {put / copies:4.0%} of {REPLICAS} copies at once"
    say(f"  {name:8s} {size_mib} MiB PUT {put / MiB:7.1f} MB/s{put_vs}{replicas}{rss_put}")
    say(f"  {name:8s} {size_mib} MiB GET {get / MiB:7.1f} MB/s{get_vs}{rss_get}"
        + (f"  (medians of {rounds})" if rounds > 1 else ""))


def measure(target: Target, args, sparse: Path) -> dict:
    say(f"{target.name}: {target.storage_url}")
    for note in target.notes:
        say(f"  {note}")
    figures: dict = {}
    clients = [int(c) for c in args.clients.split(",")]
    figures["small"] = small_objects(target, clients, args.ops, args.kib * 1024, args.phase_seconds)
    large = large_object(target, sparse, args.mib * MiB, args.rounds)
    report_large(target.name, args.mib, large, args.rounds)
    figures["large"] = large
    return figures


# --------------------------------------------------------------------------- the Swift peer


class PeerUnavailable(Exception):
    """Swift could not be installed or started: said why, and the bench goes on."""


def run_logged(cmd: list[str], log: Path, timeout: float, env=None) -> int:
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        return subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout,
                              env=env).returncode


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def apt_install(packages: list[str], log: Path) -> bool:
    """apt-get install, as root only; True if it worked."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return False
    say(f"  installing {' '.join(packages)} with apt-get (running as root), log in {log}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    if run_logged(cmd, log, 900, env) == 0:
        return True
    run_logged(["apt-get", "update", "-q"], log, 600, env)
    return run_logged(cmd, log, 900, env) == 0


def ensure_swift(log: Path) -> Path:
    """.venv-swift with Swift from PyPI; its bin directory."""
    bin_dir = SWIFT_VENV / "bin"
    check = [str(bin_dir / "python"), "-c",
             "import swift.proxy.server, swift.obj.server, pyeclib.ec_iface"]
    if (bin_dir / "swift-proxy-server").exists() and \
            subprocess.run(check, capture_output=True, timeout=120).returncode == 0:
        return bin_dir
    if not (bin_dir / "python").exists():
        python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
        say(f"  creating {SWIFT_VENV} (Swift's own virtualenv, once)")
        if run_logged([python, "-m", "venv", str(SWIFT_VENV)], log, 300) != 0:
            raise PeerUnavailable(f"cannot create {SWIFT_VENV}:\n{tail(log)}")
    say(f"  installing {SWIFT_REQUIREMENT} from PyPI into {SWIFT_VENV.name}, log in {log}")
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "-q", SWIFT_REQUIREMENT]
    if run_logged(pip, log, 1200) != 0:
        # pyeclib builds against liberasurecode when no wheel fits; cryptography against OpenSSL
        if apt_install(["liberasurecode-dev", "libssl-dev", "build-essential", "python3-dev"], log):
            if run_logged(pip, log, 1200) == 0:
                return bin_dir
        raise PeerUnavailable(f"`pip install {SWIFT_REQUIREMENT}` failed:\n{tail(log)}")
    if subprocess.run(check, capture_output=True, timeout=120).returncode != 0:
        if not apt_install(["liberasurecode1"], log) or \
                subprocess.run(check, capture_output=True, timeout=120).returncode != 0:
            raise PeerUnavailable("Swift is installed but does not import (liberasurecode?)")
    return bin_dir


def ensure_memcached(log: Path) -> str:
    found = shutil.which("memcached") or ("/usr/bin/memcached" if Path("/usr/bin/memcached").exists() else "")
    if found:
        return found
    if apt_install(["memcached"], log) and Path("/usr/bin/memcached").exists():
        return "/usr/bin/memcached"
    raise PeerUnavailable("memcached (needed by Swift's tempauth) is not installed "
                          "(apt-get install memcached, or run the bench as root)")


def xattr_ok(directory: Path) -> bool:
    """Swift's object server keeps metadata in user xattrs of 254-byte pieces."""
    probe = directory / ".xattr-probe"
    try:
        probe.write_bytes(b"")
        for key in ("user.swift.metadata", "user.swift.metadata1"):
            os.setxattr(probe, key, b"x" * 254)
        return os.getxattr(probe, "user.swift.metadata1") == b"x" * 254
    except OSError:
        return False
    finally:
        probe.unlink(missing_ok=True)


SERVER_CONF = """\
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {port}
workers = {workers}
user = {user}
swift_dir = {etc}
devices = {devices}
mount_check = false
log_address = {etc}/no-syslog

[pipeline:main]
pipeline = healthcheck {kind}-server

[app:{kind}-server]
use = egg:swift#{kind}

[filter:healthcheck]
use = egg:swift#healthcheck
"""

PROXY_CONF = """\
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {port}
workers = {workers}
user = {user}
swift_dir = {etc}
log_address = {etc}/no-syslog

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk tempurl tempauth copy container-quotas account-quotas slo dlo versioned_writes proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:tempauth]
use = egg:swift#tempauth
user_bench_tester = testing .admin

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:{memcache_port}
"""
for _name in ("catch_errors", "gatekeeper", "healthcheck", "proxy-logging", "listing_formats", "bulk",
              "tempurl", "copy", "container-quotas", "account-quotas", "slo", "dlo", "versioned_writes"):
    PROXY_CONF += f"\n[filter:{_name}]\nuse = egg:swift#{_name.replace('-', '_')}\n"
    if _name == "versioned_writes":  # X-Versions-Location, as onestack offers it
        PROXY_CONF += "allow_versioned_writes = true\n"

SWIFT_CONF = """\
[swift-hash]
swift_hash_path_prefix = {prefix}
swift_hash_path_suffix = {suffix}

[storage-policy:0]
name = Policy-0
default = yes
"""


class SwiftPeer:
    """A real Swift (proxy + account/container/object servers + memcached) on loopback."""

    def __init__(self, parent: Path, workers: str):
        self.root = Path(tempfile.mkdtemp(prefix="onestack-bench-swift-", dir=parent))
        self.workers = workers
        self.procs: dict[str, subprocess.Popen] = {}
        self.log = self.root / "setup.log"

    def start(self) -> Target:
        bin_dir = ensure_swift(self.log)
        memcached = ensure_memcached(self.log)
        etc, devices, logs = self.root / "etc", self.root / "devices", self.root / "log"
        for d in (etc, logs, *(devices / f"d{i}" for i in range(1, REPLICAS + 1))):
            d.mkdir(parents=True)
        note = ""
        if not xattr_ok(devices / "d1"):
            # Swift keeps object metadata in xattrs: fall back to tmpfs, said in the figures
            shutil.rmtree(devices)
            devices = Path(tempfile.mkdtemp(prefix="onestack-bench-swift-dev-", dir="/dev/shm"))
            self.extra_dir = devices
            for i in range(1, REPLICAS + 1):
                (devices / f"d{i}").mkdir()
            if not xattr_ok(devices / "d1"):
                raise PeerUnavailable(f"no user xattrs on {self.root} nor on /dev/shm")
            note = f"xattrs do not work on {self.root.parent}: Swift's devices are on tmpfs {devices}"
        ports = {kind: free_port() for kind in ("proxy", "account", "container", "object", "memcache")}
        user = os.environ.get("USER") or __import__("pwd").getpwuid(os.geteuid()).pw_name
        (etc / "swift.conf").write_text(SWIFT_CONF.format(prefix=secrets.token_hex(8),
                                                          suffix=secrets.token_hex(8)))
        for kind in ("account", "container", "object"):
            (etc / f"{kind}-server.conf").write_text(SERVER_CONF.format(
                port=ports[kind], workers=self.workers, user=user, etc=etc, devices=devices, kind=kind))
            builder = str(etc / f"{kind}.builder")
            rb = str(bin_dir / "swift-ring-builder")
            cmds = [[rb, builder, "create", str(PART_POWER), str(REPLICAS), "1"]]
            cmds += [[rb, builder, "add", f"r1z{i}-127.0.0.1:{ports[kind]}/d{i}", "100"]
                     for i in range(1, REPLICAS + 1)]
            cmds.append([rb, builder, "rebalance"])
            for cmd in cmds:
                rc = run_logged(cmd, self.log, 120)
                if rc not in (0, 1):  # 1: rebalanced with warnings
                    raise PeerUnavailable(f"`{' '.join(cmd[1:])}` exited {rc}:\n{tail(self.log)}")
            if not (etc / f"{kind}.ring.gz").exists():
                raise PeerUnavailable(f"no {kind} ring was written:\n{tail(self.log)}")
        (etc / "proxy-server.conf").write_text(PROXY_CONF.format(
            port=ports["proxy"], workers=self.workers, user=user, etc=etc,
            memcache_port=ports["memcache"]))
        self._spawn("memcached", [memcached, "-l", "127.0.0.1", "-p", str(ports["memcache"]), "-U", "0",
                                  "-m", "64", *(["-u", "root"] if os.geteuid() == 0 else [])], logs)
        for kind in ("account", "container", "object", "proxy"):
            self._spawn(kind, [str(bin_dir / f"swift-{kind}-server"), str(etc / f"{kind}-server.conf")], logs)
        for kind in ("account", "container", "object", "proxy"):
            self._wait_healthy(kind, ports[kind], logs)
        proxy = f"http://127.0.0.1:{ports['proxy']}"
        r = httpx.get(f"{proxy}/auth/v1.0", headers={"X-Auth-User": "bench:tester", "X-Auth-Key": "testing"},
                      timeout=30)
        if r.status_code != 200:
            raise PeerUnavailable(f"tempauth answered {r.status_code}: {r.text[:200]}\n"
                                  f"{tail(logs / 'proxy.log')}")
        info = httpx.get(f"{proxy}/info", timeout=30).json()
        target = Target("swift", r.headers["X-Storage-Url"], r.headers["X-Auth-Token"], devices)
        target.notes.append(f"Swift {info.get('swift', {}).get('version', '?')}, workers = {self.workers} "
                            f"per server, {REPLICAS} replicas on {REPLICAS} devices, tempauth + memcached")
        if note:
            target.notes.append(note)
        return target

    def _spawn(self, name: str, cmd: list[str], logs: Path) -> None:
        out = (logs / f"{name}.log").open("w")
        self.procs[name] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()

    def _wait_healthy(self, kind: str, port: int, logs: Path) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            proc = self.procs[kind]
            if proc.poll() is not None:
                raise PeerUnavailable(f"swift-{kind}-server exited {proc.returncode}:\n"
                                      f"{tail(logs / f'{kind}.log')}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/healthcheck", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise PeerUnavailable(f"swift-{kind}-server did not answer in 60 s:\n{tail(logs / f'{kind}.log')}")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)
        shutil.rmtree(self.root, ignore_errors=True)
        if getattr(self, "extra_dir", None):
            shutil.rmtree(self.extra_dir, ignore_errors=True)


# --------------------------------------------------------------------------- main


def compare(results: dict[str, dict]) -> None:
    if "onestack" not in results or "swift" not in results:
        return
    ours, peer = results["onestack"], results["swift"]
    say("onestack / Swift (higher is better for onestack):")
    for key, phase in ours["small"].items():
        other = peer["small"].get(key)
        if other and other.rate and phase.rate:
            say(f"  small {key:18s}: {phase.rate:7.0f} vs {other.rate:7.0f} req/s = {phase.rate / other.rate:5.2f}x")
    for what in ("put", "get"):
        a, b = median(getattr(ours["large"], what)), median(getattr(peer["large"], what))
        if a and b:
            say(f"  large {what.upper():18s}: {a / MiB:7.1f} vs {b / MiB:7.1f} MB/s  = {a / b:5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", default="onestack,swift", help="onestack,swift (default both)")
    parser.add_argument("--ops", type=int, default=2000, help="requests per small-object phase (default 2000)")
    parser.add_argument("--clients", default="1,16", help="concurrent clients per phase (default 1,16)")
    parser.add_argument("--kib", type=int, default=4, help="small object size in KiB (default 4)")
    parser.add_argument("--phase-seconds", type=float, default=60, help="cap of one small phase (default 60)")
    parser.add_argument("--mib", type=int, default=1024, help="large object size in MiB (default 1024)")
    parser.add_argument("--rounds", type=int, default=3, help="large object rounds, medians (default 3)")
    parser.add_argument("--swift-workers", default="auto", help="Swift's workers per server (default auto)")
    parser.add_argument("--url", help="measure this running onestack instead of starting one")
    parser.add_argument("--admin-password")
    parser.add_argument("--pid", type=int, help="with --url: the server's pid (for RSS)")
    parser.add_argument("--devices", type=Path, help="with --url: the object devices directory")
    args = parser.parse_args()
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    say(f"object storage: {args.kib} KiB objects ({args.ops} requests per phase, clients {args.clients}), "
        f"a {args.mib} MiB object ({args.rounds} round{'s' if args.rounds > 1 else ''})")
    stop_on_sigterm()
    results: dict[str, dict] = {}
    scratch = Path(tempfile.gettempdir())
    with tempfile.NamedTemporaryFile(prefix="bench-object-", dir=scratch) as sparse:
        sparse.truncate(args.mib * MiB)  # a sparse file: the client reads no disk
        if "onestack" in systems:
            if args.url:
                results["onestack"] = measure(keystone_target(args.url, args.admin_password, args.pid,
                                                              args.devices), args, Path(sparse.name))
            else:
                with running(Cloud("bench-object")) as cloud:
                    pid = int((cloud.state / "onestack.pid").read_text())
                    devices = cloud.state / "object" / "devices"
                    target = keystone_target(cloud.url, cloud.password("admin"), pid,
                                             devices if devices.is_dir() else cloud.state)
                    results["onestack"] = measure(target, args, Path(sparse.name))
        if "swift" in systems:
            say("swift: setting up the peer")
            peer = SwiftPeer(scratch, args.swift_workers)
            try:
                target = peer.start()
                results["swift"] = measure(target, args, Path(sparse.name))
            except PeerUnavailable as err:
                say(f"swift: not measured: {err}")
            finally:
                peer.stop()
    compare(results)


if __name__ == "__main__":
    main()
