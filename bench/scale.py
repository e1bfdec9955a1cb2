"""Compute at scale on simulated hosts (fake driver): how fast, how big.

Starts a cloud with N simulated compute hosts, then prints:
  - servers created per second through the API (multi-create requests, until all ACTIVE);
  - scheduler decision time per instance (from the conductor's log);
  - `GET /servers/detail` time for all the servers (one page, limit=N);
  - memory (RSS) of the onestack process holding them.
Targets (issue 4): decision < 10 ms at 1,000 hosts; detail list of 10,000 < 1 s.

    .venv/bin/python bench/scale.py [--hosts 1000] [--servers 10000] [--batch 500]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from _cloud import Cloud, running, stop_on_sigterm


def token(cloud) -> str:
    rc = cloud.openrc("admin")
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": rc["OS_PASSWORD"]}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
    r = httpx.post(cloud.url + "/identity/v3/auth/tokens", json=body)
    return r.headers["X-Subject-Token"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--servers", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=500)
    args = ap.parse_args()
    stop_on_sigterm()
    cloud = Cloud("scale", extra_env={"ONESTACK_COMPUTE_FAKE_HOSTS": str(args.hosts - 1),
                                      "ONESTACK_LOG_LEVEL": "INFO"})
    with running(cloud):
        tok = token(cloud)
        h = {"X-Auth-Token": tok, "OpenStack-API-Version": "compute 2.79"}
        api = cloud.url + "/compute/v2.1"
        with httpx.Client(headers=h, timeout=600) as c:
            t0 = time.monotonic()
            while True:
                n = len(c.get(api + "/os-hypervisors").json()["hypervisors"])
                if n >= args.hosts:
                    break
                time.sleep(1)
            print(f"hosts registered: {n} in {time.monotonic() - t0:.1f} s")
            c.put(api + "/os-quota-sets/" + c.get(cloud.url + "/identity/v3/auth/tokens",
                                                   headers={"X-Subject-Token": tok}).json()["token"]["project"]["id"],
                  json={"quota_set": {"instances": -1, "cores": -1, "ram": -1}})
            img = tempfile.mkdtemp()
            path = Path(img) / "s.qcow2"
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "16M"], check=True)
            image = c.post(cloud.url + "/image/v2/images", json={"name": "scale", "disk_format": "qcow2",
                                                                "container_format": "bare"}).json()["id"]
            c.put(cloud.url + f"/image/v2/images/{image}/file", content=path.read_bytes(),
                  headers={"Content-Type": "application/octet-stream"})
            t0 = time.monotonic()
            left = args.servers
            while left > 0:
                n = min(args.batch, left)
                r = c.post(api + "/servers", json={"server": {"name": "s", "imageRef": image, "flavorRef": "42",
                                                             "networks": "none", "min_count": n, "max_count": n}})
                r.raise_for_status()
                left -= n
            posted = time.monotonic() - t0
            while True:
                servers = c.get(api + "/servers/detail", params={"limit": args.servers + 10}).json()["servers"]
                busy = [s for s in servers if s["status"] == "BUILD"]
                if len(servers) >= args.servers and not busy:
                    break
                time.sleep(1)
            total = time.monotonic() - t0
            active = sum(1 for s in servers if s["status"] == "ACTIVE")
            print(f"created {args.servers} servers ({active} ACTIVE): requests {posted:.1f} s, all settled "
                  f"{total:.1f} s -> {args.servers / total:.0f} servers/s")
            times = []
            for _ in range(3):
                t = time.monotonic()
                got = c.get(api + "/servers/detail", params={"limit": args.servers + 10}).json()["servers"]
                times.append(time.monotonic() - t)
            print(f"GET /servers/detail of {len(got)} servers: median {statistics.median(times) * 1000:.0f} ms "
                  f"(target < 1000 ms)")
        log = (cloud.state / "onestack.log").read_text()
        per = [float(ms) / int(n) for n, ms in re.findall(r"scheduled (\d+) instance\(s\) in ([\d.]+) ms", log)]
        if per:
            print(f"scheduler: {statistics.median(per):.2f} ms per instance (median over {len(per)} requests, "
                  f"{args.hosts} hosts; target < 10 ms)")
        pid = int((cloud.state / "onestack.pid").read_text())
        rss = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmRSS"))
        print(f"onestack process memory: {rss.split(':')[1].strip()} RSS")


if __name__ == "__main__":
    main()
