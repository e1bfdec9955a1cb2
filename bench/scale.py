"""Compute at scale on simulated hosts (fake driver): how fast, how big.

Starts a cloud with N simulated compute hosts (``compute.fake_hosts``), then prints:
  - host registration: time from `onestack up` until Placement holds every host's
    inventory (and the reporter's own figure from the log);
  - scheduler decision time per instance (the conductor logs each request's time):
    single-server requests, and multi-create requests of --batch servers;
  - `GET /servers/detail` of --servers servers: every page (the API's largest page is
    1,000, as Nova's max_limit), walked by their next links, and the first page alone;
  - memory (RSS, and its peak) of the onestack process, once the hosts are in and at the end.
The scheduler weighs at most compute.max_placement_results candidates (Nova's default,
1,000, is the cloud's): --max-placement-results sets it lower, as large Nova clouds do.
Targets (issue 13): 1,000 hosts register < 60 s; decision < 10 ms per instance at
1,000 hosts; the detail list of 10,000 servers < 1 s.

--boot servers are booted through the API (that is what the scheduler figures
come from); the rest up to --servers are a DIRECT DATABASE SEED: copies of a
booted server's row written into the cloud's SQLite database by this script
(ACTIVE, spread over the hosts), so the list is measured at 10,000 without
building 10,000 simulated guests first. The seeded servers hold nothing in
Placement.

    .venv/bin/python bench/scale.py [--hosts 1000] [--servers 10000] [--boot 1000] [--batch 100]
                                    [--max-placement-results N]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
from _cloud import Cloud, running, stop_on_sigterm

from onestack.common import db
from onestack.compute import models as m

API_MAX_LIMIT = 1000


def token(cloud) -> tuple[str, str]:
    rc = cloud.openrc("admin")
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": rc["OS_PASSWORD"]}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
    r = httpx.post(cloud.url + "/identity/v3/auth/tokens", json=body)
    return r.headers["X-Subject-Token"], r.json()["token"]["project"]["id"]


def wait_registered(c: httpx.Client, cloud, hosts: int, t0: float, timeout: float) -> float:
    """Seconds from t0 until Placement lists every host with VCPU to give."""
    deadline = time.monotonic() + timeout
    while True:
        got = c.get(cloud.url + "/placement/resource_providers", params={"resources": "VCPU:1"},
                    headers={"OpenStack-API-Version": "placement 1.39"}).json()["resource_providers"]
        if len(got) >= hosts:
            return time.monotonic() - t0
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(got)} of {hosts} hosts registered after {timeout:.0f} s")
        time.sleep(0.5)


def all_servers(c: httpx.Client, api: str, detail: bool = True) -> list[dict]:
    """Every server, page by page (as a client walks `servers_links`)."""
    url, params, out = api + ("/servers/detail" if detail else "/servers"), {"limit": API_MAX_LIMIT}, []
    while url:
        body = c.get(url, params=params).json()
        out += body["servers"]
        nxt = [link["href"] for link in body.get("servers_links", []) if link["rel"] == "next"]
        url, params = (nxt[0], None) if nxt else (None, None)
    return out


def boot(c: httpx.Client, api: str, image: str, count: int, name: str) -> None:
    r = c.post(api + "/servers", json={"server": {"name": name, "imageRef": image, "flavorRef": "42",
                                                  "networks": "none", "min_count": count, "max_count": count}})
    r.raise_for_status()


def wait_settled(c: httpx.Client, api: str, count: int, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        servers = all_servers(c, api)
        if len(servers) >= count and not any(s["status"] == "BUILD" for s in servers):
            return servers
        if time.monotonic() > deadline:
            raise SystemExit(f"{sum(s['status'] == 'BUILD' for s in servers)} servers still BUILD after "
                             f"{timeout:.0f} s")
        time.sleep(1)


def seed(cloud, template_uuid: str, count: int, hosts: list[str]) -> float:
    """DIRECT DATABASE SEED: ``count`` ACTIVE copies of a booted server's row (see above)."""
    db.configure(f"sqlite:///{cloud.state / 'onestack.db'}")
    t = time.monotonic()
    with db.session() as s:
        tpl = s.get(m.Instance, template_uuid)
        row = {a.columns[0].name: getattr(tpl, a.key) for a in m.Instance.__mapper__.column_attrs}
    for start in range(0, count, 1000):
        rows = [{**row, "uuid": str(uuid.uuid4()), "name": f"seed-{i}", "hostname": f"seed-{i}",
                 "host": hosts[i % len(hosts)], "node": hosts[i % len(hosts)], "reservation_id": "r-seed",
                 "launch_index": i, "created_at": row["created_at"] - timedelta(seconds=i + 1)}
                for i in range(start, min(count, start + 1000))]
        with db.transaction() as s:
            s.execute(m.Instance.__table__.insert(), rows)
    db.engine().dispose()
    return time.monotonic() - t


def memory(cloud) -> str:
    """RSS of the onestack process (the whole control plane of the all-in-one), and its peak."""
    pid = int((cloud.state / "onestack.pid").read_text())
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return f"{status['VmRSS'].strip()} RSS, peak {status['VmHWM'].strip()}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--servers", type=int, default=10000, help="servers listed (booted + seeded)")
    ap.add_argument("--boot", type=int, default=1000, help="servers booted through the API")
    ap.add_argument("--batch", type=int, default=100, help="servers per multi-create request")
    ap.add_argument("--singles", type=int, default=20, help="single-server requests (of the --boot ones)")
    ap.add_argument("--max-placement-results", type=int, default=None,
                    help="compute.max_placement_results (the cloud's default, as Nova's, is 1000)")
    args = ap.parse_args()
    stop_on_sigterm()
    env = {"ONESTACK_COMPUTE_FAKE_HOSTS": str(args.hosts - 1), "ONESTACK_LOG_LEVEL": "INFO"}
    if args.max_placement_results is not None:
        env["ONESTACK_COMPUTE_MAX_PLACEMENT_RESULTS"] = str(args.max_placement_results)
    limit = args.max_placement_results or 1000
    cloud = Cloud("scale", extra_env=env)
    t0 = time.monotonic()
    with running(cloud):
        up = time.monotonic() - t0
        tok, project = token(cloud)
        h = {"X-Auth-Token": tok, "OpenStack-API-Version": "compute 2.79"}
        api = cloud.url + "/compute/v2.1"
        with httpx.Client(headers=h, timeout=600) as c:
            took = wait_registered(c, cloud, args.hosts, t0, timeout=600)
            hypervisors = len(c.get(api + "/os-hypervisors", params={"limit": args.hosts + 10}).json()["hypervisors"])
            log = (cloud.state / "onestack.log").read_text()
            own = re.findall(r"(\d+) host\(s\) registered in ([\d.]+) s", log)
            print(f"hosts registered: {args.hosts} in Placement {took:.1f} s after `onestack up` began "
                  f"(the API answered at {up:.1f} s; {hypervisors} hypervisors listed)"
                  + (f"; reporter: {own[-1][0]} in {own[-1][1]} s" if own else "") + " (target < 60 s)")
            print(f"onestack process memory with {args.hosts} hosts and no servers: {memory(cloud)}")
            c.put(api + f"/os-quota-sets/{project}", json={"quota_set": {"instances": -1, "cores": -1, "ram": -1}})
            img = Path(tempfile.mkdtemp()) / "s.qcow2"
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "16M"], check=True)
            image = c.post(cloud.url + "/image/v2/images", json={"name": "scale", "disk_format": "qcow2",
                                                                "container_format": "bare"}).json()["id"]
            c.put(cloud.url + f"/image/v2/images/{image}/file", content=img.read_bytes(),
                  headers={"Content-Type": "application/octet-stream"})
            singles = min(args.singles, args.boot)
            for i in range(singles):
                boot(c, api, image, 1, f"one-{i}")
                wait_settled(c, api, i + 1, timeout=60)  # one request at a time: its own decision
            t = time.monotonic()
            left = args.boot - singles
            while left > 0:
                n = min(args.batch, left)
                boot(c, api, image, n, "many")
                left -= n
            servers = wait_settled(c, api, args.boot, timeout=3600)
            total = time.monotonic() - t
            active = sum(1 for s in servers if s["status"] == "ACTIVE")
            if args.boot > singles:
                print(f"booted {args.boot - singles} servers in requests of {args.batch} ({active} of all "
                      f"{len(servers)} ACTIVE): all settled in {total:.1f} s -> "
                      f"{(args.boot - singles) / total:.0f} servers/s")
            log = (cloud.state / "onestack.log").read_text()
            sched = [(int(n), float(ms)) for n, ms in re.findall(r"scheduled (\d+) instance\(s\) in ([\d.]+) ms", log)]
            one = [ms for n, ms in sched if n == 1]
            many = [ms / n for n, ms in sched if n > 1]
            weighed = f"{args.hosts} hosts, at most {limit} candidates"
            if one:
                print(f"scheduler, single-server requests: median {statistics.median(one):.1f} ms, "
                      f"max {max(one):.1f} ms per instance (n={len(one)}, {weighed}; target < 10 ms)")
            if many:
                print(f"scheduler, requests of {args.batch}: median {statistics.median(many):.2f} ms per instance "
                      f"(n={len(many)} requests, {weighed}; target < 10 ms)")
            if args.servers > len(servers):
                hosts = sorted({s["OS-EXT-SRV-ATTR:host"] for s in servers if s.get("OS-EXT-SRV-ATTR:host")})
                n = args.servers - len(servers)
                took = seed(cloud, servers[0]["id"], n, hosts)
                print(f"seeded {n} more server rows DIRECTLY IN THE DATABASE in {took:.1f} s "
                      f"(not booted; {len(servers)} were)")
            for detail in (True, False):
                times, firsts, got = [], [], []
                for _ in range(3):
                    t = time.monotonic()
                    got = all_servers(c, api, detail)
                    times.append(time.monotonic() - t)
                    t = time.monotonic()
                    c.get(api + ("/servers/detail" if detail else "/servers"), params={"limit": API_MAX_LIMIT})
                    firsts.append(time.monotonic() - t)
                what = "/servers/detail" if detail else "/servers"
                print(f"GET {what} of {len(got)} servers, every page of {API_MAX_LIMIT}: median "
                      f"{statistics.median(times) * 1000:.0f} ms (first page alone "
                      f"{statistics.median(firsts) * 1000:.0f} ms)" + (" (target < 1000 ms)" if detail else ""))
        print(f"onestack process memory: {memory(cloud)} ({args.hosts} hosts, {args.servers} servers)")


if __name__ == "__main__":
    main()
