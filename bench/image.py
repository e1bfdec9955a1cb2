"""Image data throughput and memory: a 1 GiB upload and download against the
machine's own disk, measured in the same run.

Starts its own cloud (or uses --url with --admin-password), then:

1. disk baseline: writes 1 GiB to a file beside the image store (1 MiB
   writes, then fsync, as the store does), and reads the stored image file
   itself with its pages evicted from the cache first;
2. upload: `PUT /v2/images/{id}/file` of a 1 GiB sparse file (sized body), and
   once more with chunked transfer encoding;
3. download: `GET /v2/images/{id}/file`, with the stored file's pages evicted;

sampling the server's RSS every 20 ms. Prints MB/s, the ratio to the disk
(target >= 70%), and peak RSS above idle (target < 50 MB). Never fails on time.

The transfers use a minimal HTTP/1.1 client on a plain socket (sendfile up,
recv_into down), so the figures are the server's, not a Python client's: the
client shares the machine's two cores with the server.

    .venv/bin/python bench/image.py              # 1 GiB
    .venv/bin/python bench/image.py --mib 256    # quicker
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from _cloud import Cloud, running, stop_on_sigterm

MiB = 1024 * 1024


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class PeakRss:
    """Samples a process's RSS in a thread; .peak in KiB."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def evict(path: Path) -> None:
    """Drop a file's pages from the page cache, so a read really reads the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def disk_write(directory: Path, size: int) -> float:
    """Bytes/s of 1 MiB writes and an fsync, as the store writes."""
    block = os.urandom(MiB)
    path = directory / "bench-disk-baseline"
    try:
        t = time.perf_counter()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        for _ in range(size // MiB):
            os.write(fd, block)
        os.fsync(fd)
        os.close(fd)
        return size / (time.perf_counter() - t)
    finally:
        path.unlink(missing_ok=True)


def hash_ceiling(size: int, algorithm: str = "sha512") -> float:
    """Bytes/s of md5 and the secure hash over the data on two threads: no upload
    that computes both (Glance's checksum and os_hash_value) can be faster here."""
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    block = os.urandom(MiB)

    def digest(name: str) -> None:
        h = hashlib.new(name)
        for _ in range(size // MiB):
            h.update(block)

    t = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(digest, ["md5", algorithm]))
    return size / (time.perf_counter() - t)


def disk_read(path: Path) -> float:
    """Bytes/s of reading a file in 1 MiB reads, its pages evicted first."""
    evict(path)
    t = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.read(MiB):
            pass
    return path.stat().st_size / (time.perf_counter() - t)


def read_response_head(sock: socket.socket) -> tuple[int, dict, bytes]:
    """Status, headers (lower-case names), and the body bytes already read with them."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, rest


def raw_put(url: str, token: str, path: str, src: Path, size: int, chunked: bool) -> float:
    """PUT a file's bytes; seconds from first byte sent to the answer."""
    u = urlsplit(url)
    with socket.create_connection((u.hostname, u.port)) as sock:
        framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
        sock.sendall((f"PUT {u.path}{path} HTTP/1.1\r\nHost: {u.netloc}\r\nX-Auth-Token: {token}\r\n"
                      f"Content-Type: application/octet-stream\r\n{framing}\r\n\r\n").encode())
        t = time.perf_counter()
        with open(src, "rb") as f:
            if chunked:
                while block := f.read(MiB):
                    sock.sendall(b"%x\r\n" % len(block) + block + b"\r\n")
                sock.sendall(b"0\r\n\r\n")
            else:
                sock.sendfile(f)
        status, _, _ = read_response_head(sock)
        elapsed = time.perf_counter() - t
    if status != 204:
        raise RuntimeError(f"upload answered {status}")
    return elapsed


def raw_get(url: str, token: str, path: str) -> tuple[int, float]:
    """GET a body into a reused buffer; (bytes, seconds)."""
    u = urlsplit(url)
    buf = bytearray(MiB)
    with socket.create_connection((u.hostname, u.port)) as sock:
        t = time.perf_counter()
        sock.sendall(f"GET {u.path}{path} HTTP/1.1\r\nHost: {u.netloc}\r\nX-Auth-Token: {token}\r\n\r\n".encode())
        status, headers, rest = read_response_head(sock)
        got = len(rest)
        if status != 200:
            raise RuntimeError(f"download answered {status}")
        length = int(headers["content-length"])
        view = memoryview(buf)
        while got < length:
            n = sock.recv_into(view)
            if not n:
                break
            got += n
        return got, time.perf_counter() - t


def token(url: str, password: str) -> str:
    r = httpx.post(f"{url}/identity/v3/auth/tokens", json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"name": "Default"}, "password": password}}},
        "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}})
    r.raise_for_status()
    return r.headers["X-Subject-Token"]


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def run(url: str, password: str, pid: int, store: Path, size: int, rounds: int,
        algorithm: str = "sha512") -> None:
    headers = {"X-Auth-Token": token(url, password)}
    client = httpx.Client(base_url=f"{url}/image/v2", headers=headers, timeout=600)
    tok = headers["X-Auth-Token"]
    idle = rss_kib(pid)
    disk = {"write": [], "read": []}
    rates = {"sized": [], "chunked": [], "download": []}
    peaks = {k: 0.0 for k in rates}
    with tempfile.NamedTemporaryFile(prefix="bench-image-") as sparse:
        sparse.truncate(size)  # a 1 GiB sparse file, like the test
        for _ in range(rounds):
            # every phase starts with no dirty pages left by the one before
            os.sync()
            disk["write"].append(disk_write(store, size))
            for mode in ("sized", "chunked"):
                os.sync()
                image = client.post("/images", json={"name": f"bench-{mode}", "disk_format": "raw",
                                                     "container_format": "bare"}).json()
                with PeakRss(pid) as peak:
                    elapsed = raw_put(url, tok, f"/image/v2/images/{image['id']}/file", Path(sparse.name),
                                      size, chunked=mode == "chunked")
                rates[mode].append(size / elapsed)
                peaks[mode] = max(peaks[mode], (peak.peak - idle) / 1024)
                if mode == "chunked":
                    client.delete(f"/images/{image['id']}")
                else:
                    kept = image["id"]
            # the download is compared with reading the very same stored file
            disk["read"].append(disk_read(store / kept))
            evict(store / kept)
            with PeakRss(pid) as peak:
                got, elapsed = raw_get(url, tok, f"/image/v2/images/{kept}/file")
            assert got == size, f"downloaded {got} of {size} bytes"
            rates["download"].append(size / elapsed)
            peaks["download"] = max(peaks["download"], (peak.peak - idle) / 1024)
            client.delete(f"/images/{kept}")
    write_bps, read_bps = median(disk["write"]), median(disk["read"])
    print(f"medians of {rounds} rounds")
    print(f"disk (same filesystem as the store): write {write_bps / MiB:7.1f} MB/s (1 MiB writes + fsync), "
          f"read {read_bps / MiB:7.1f} MB/s (pages evicted first)")
    ceiling = hash_ceiling(size, algorithm)
    print(f"md5 + {algorithm} on two threads (upper bound of any upload here): {ceiling / MiB:7.1f} MB/s")
    print(f"server RSS idle: {idle / 1024:.0f} MB")
    for mode in ("sized", "chunked"):
        bps = median(rates[mode])
        print(f"upload {mode:8s} {bps / MiB:7.1f} MB/s = {bps / write_bps:4.0%} of disk write"
              f"  (target >= 70%), {bps / ceiling:4.0%} of the hash bound,"
              f" peak RSS +{peaks[mode]:.0f} MB (target < 50)")
    bps = median(rates["download"])
    print(f"download        {bps / MiB:7.1f} MB/s = {bps / read_bps:4.0%} of disk read"
          f"   (target >= 70%), peak RSS +{peaks['download']:.0f} MB (target < 50)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="image size in MiB (default 1024)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are printed (default 3)")
    parser.add_argument("--hash-algorithm", default="sha512",
                        help="the cloud's image.hash_algorithm (default sha512, as Glance)")
    parser.add_argument("--url")
    parser.add_argument("--admin-password")
    parser.add_argument("--pid", type=int, help="with --url: the server's pid (for RSS)")
    parser.add_argument("--store", type=Path, help="with --url: the image store directory")
    args = parser.parse_args()
    size = args.mib * MiB
    print(f"image data throughput, {args.mib} MiB")
    if args.url:
        run(args.url, args.admin_password, args.pid, args.store, size, args.rounds, args.hash_algorithm)
        return
    stop_on_sigterm()
    env = {"ONESTACK_IMAGE_HASH_ALGORITHM": args.hash_algorithm}
    with running(Cloud("bench-image", extra_env=env)) as cloud:
        pid = int((cloud.state / "onestack.pid").read_text())
        run(cloud.url, cloud.password("admin"), pid, cloud.state / "images", size, args.rounds,
            args.hash_algorithm)


if __name__ == "__main__":
    main()
