"""API throughput against the number of API workers (`onestack up --workers N`).

For each N (default 1, 2, 4) a fresh cloud on PostgreSQL and RabbitMQ (throw-away
servers, tests/cloud.py; a new database for each N, one broker for all; fake compute
driver), measured under the same load:

- token validation: GET /identity/v3/auth/tokens (X-Auth-Token: admin, X-Subject-Token:
  another admin token), the request every other service makes of Keystone;
- server list: GET /compute/v2.1/servers/detail as admin, 10 servers (fake hosts).

The load: ``--clients`` processes (default 2), each with ``--connections`` concurrent
keep-alive connections (one httpx.AsyncClient each), sending back to back for
``--seconds`` after a warm-up. Prints requests per second, the ratio to one worker and
how the responses spread over the workers (their X-Onestack-Worker header). The load
generator runs on the same machine: on a 2-core machine it takes a share of the cores
the workers would use, so read the ratio with ``os.cpu_count()`` in mind. Figures only.

    .venv/bin/python bench/workers.py [--workers 1,2,4] [--seconds 10] [--connections 16] [--clients 2]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import multiprocessing
import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from _cloud import Cloud, running, stop_on_sigterm

from tests.cloud import Postgres, RabbitMQ, wait_for

SERVERS = 10


async def _load(url: str, headers: dict, start: float, until: float, connections: int) -> tuple[int, int, dict]:
    async def one() -> tuple[int, int, collections.Counter]:
        ok = bad = 0
        by_worker: collections.Counter = collections.Counter()
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=1)) as c:
            await asyncio.sleep(max(0.0, start - time.time()))
            while time.time() < until:
                r = await c.get(url, headers=headers)
                if r.status_code == 200:
                    ok += 1
                    by_worker[r.headers.get("x-onestack-worker", "1")] += 1
                else:
                    bad += 1
        return ok, bad, by_worker

    results = await asyncio.gather(*(one() for _ in range(connections)))
    total: collections.Counter = collections.Counter()
    for _, _, c in results:
        total.update(c)
    return sum(r[0] for r in results), sum(r[1] for r in results), dict(total)


def _client(args: tuple) -> tuple[int, int, dict]:
    return asyncio.run(_load(*args))


def measure(url: str, headers: dict, seconds: float, connections: int, clients: int,
            warmup: float = 2.0) -> tuple[float, int, dict]:
    """(requests per second, failed requests, responses per worker) of ``clients`` processes."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(clients) as pool:
        start = time.time() + 1.5  # every client process up and connected before it starts
        pool.map(_client, [(url, headers, start, start + warmup, connections)] * clients)  # warm-up
        start = time.time() + 1.5
        results = pool.map(_client, [(url, headers, start, start + seconds, connections)] * clients)
    spread: collections.Counter = collections.Counter()
    for _, _, c in results:
        spread.update(c)
    return sum(r[0] for r in results) / seconds, sum(r[1] for r in results), dict(spread)


def boot_servers(cloud: Cloud) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "small.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
        img = cloud.os_json("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                            "--public", "--file", str(path), "bench")
    cloud.openstack("server", "create", "--flavor", "m1.nano", "--image", img["id"], "--nic", "none",
                    "--min", str(SERVERS), "--max", str(SERVERS), f"bench-{uuid.uuid4().hex[:6]}")

    def all_active() -> bool:
        servers = cloud.os_json("server", "list")
        if any(s["Status"] == "ERROR" for s in servers):
            raise RuntimeError(f"a server went to ERROR: {servers}")
        return len(servers) == SERVERS and all(s["Status"] == "ACTIVE" for s in servers)

    wait_for(all_active, 300, what=f"{SERVERS} servers to be ACTIVE", step=1)


def run_one(n: int, broker: RabbitMQ, a: argparse.Namespace) -> dict[str, tuple[float, int, dict]]:
    pg = Postgres().start()
    try:
        cloud = Cloud(f"bench-workers-{n}", database_url=pg.url, extra_env={
            "ONESTACK_BUS_BACKEND": "amqp", "ONESTACK_BUS_URL": broker.url, "ONESTACK_SERVER_WORKERS": str(n),
            "ONESTACK_LOG_LEVEL": "WARNING",  # a log line per request would be part of the figure
        })
        with running(cloud):
            admin = cloud.openstack("token", "issue", "-f", "value", "-c", "id").stdout.strip()
            subject = cloud.openstack("token", "issue", "-f", "value", "-c", "id").stdout.strip()
            boot_servers(cloud)
            out = {}
            for name, path, headers in (
                ("token validation", "/identity/v3/auth/tokens", {"X-Auth-Token": admin, "X-Subject-Token": subject}),
                ("server list", "/compute/v2.1/servers/detail", {"X-Auth-Token": admin}),
            ):
                out[name] = measure(cloud.url + path, headers, a.seconds, a.connections, a.clients)
                rate, failed, spread = out[name]
                print(f"  {n} worker(s), {name}: {rate:8.0f} req/s  ({failed} failed; per worker "
                      f"{dict(sorted(spread.items()))})", flush=True)
            return out
    finally:
        pg.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", default="1,2,4", help="worker counts to measure (comma-separated)")
    ap.add_argument("--seconds", type=float, default=10, help="measured seconds per request kind")
    ap.add_argument("--connections", type=int, default=16, help="concurrent connections per client process")
    ap.add_argument("--clients", type=int, default=2, help="load generator processes")
    a = ap.parse_args()
    stop_on_sigterm()
    counts = [int(x) for x in a.workers.split(",")]
    print(f"API throughput against workers: {os.cpu_count()} cores, {a.clients} client processes x "
          f"{a.connections} connections, {a.seconds:g} s each; PostgreSQL + RabbitMQ; {SERVERS} servers listed")
    broker = RabbitMQ().start()
    try:
        results = {n: run_one(n, broker, a) for n in counts}
    finally:
        broker.close()
    base = results[counts[0]]
    print()
    print(f"{'workers':>7}  {'token validation':>24}  {'server list':>24}")
    for n in counts:
        cells = []
        for name in ("token validation", "server list"):
            rate = results[n][name][0]
            ratio = rate / base[name][0] if base[name][0] else float("nan")
            cells.append(f"{rate:9.0f} req/s  x{ratio:4.2f}")
        print(f"{n:>7}  {cells[0]:>24}  {cells[1]:>24}")
    print(f"(ratios to {counts[0]} worker(s), measured in this run on this machine)")


if __name__ == "__main__":
    main()
