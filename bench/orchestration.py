"""Orchestration: what the engine costs over making the same things by hand.

Against a cloud it starts (fake compute driver on --hosts simulated hosts, file volumes,
no network agent; the admin project's quotas lifted), prints:
  - a stack of 2 + 3 x --servers resources (default 50: a network, a subnet, and per
    server a port, the server on that port, a volume): the time from
    `POST /stacks` until `GET` shows CREATE_COMPLETE, and from `DELETE` until the stack
    is gone, against the same API calls made directly over one keep-alive httpx
    connection, in the engine's order (a resource only once what it depends on is done;
    those in progress polled, 50 ms growing to 1 s while nothing moves, as the engine
    polls); the ratio stack/direct is the engine's overhead. Median of --rounds;
  - an OS::Heat::ResourceGroup of --group members (default 500, OS::Heat::None;
    --group-type OS::Heat::RandomString) created and deleted, median of --rounds;
  - the onestack process's RSS before the first stack, after the stacks and its peak.
Prints figures; never fails on time. Both sides poll, so each figure carries up to one
poll interval (up to 100 ms for the stack's status, read from the stack list by id).

    .venv/bin/python bench/orchestration.py [--servers 16] [--group 500] [--rounds 3] [--hosts 4]
"""

from __future__ import annotations

import argparse
import collections
import re
import statistics
import time
import uuid
from pathlib import Path

import httpx
from _cloud import Cloud, running, stop_on_sigterm

POLL_MIN, POLL_MAX = 0.05, 1.0  # the engine's defaults (orchestration.poll_min/poll_max)
STACK_POLL_MAX = 0.1  # the stack's status: at most this late


def token(cloud) -> tuple[str, str]:
    rc = cloud.openrc("admin")
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": rc["OS_PASSWORD"]}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
    r = httpx.post(cloud.url + "/identity/v3/auth/tokens", json=body)
    r.raise_for_status()
    return r.headers["X-Subject-Token"], r.json()["token"]["project"]["id"]


def memory(cloud) -> tuple[int, int]:
    """(VmRSS, VmHWM) of the onestack process in MiB."""
    pid = int((cloud.state / "onestack.pid").read_text())
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(status["VmRSS"].split()[0]) // 1024, int(status["VmHWM"].split()[0]) // 1024


class Api:
    """The cloud's endpoints as admin, on one keep-alive connection."""

    def __init__(self, cloud, tok: str, project: str):
        self.c = httpx.Client(headers={"X-Auth-Token": tok}, timeout=120)
        self.compute = cloud.url + "/compute/v2.1"
        self.network = cloud.url + "/networking/v2.0"
        self.volume = cloud.url + f"/volume/v3/{project}"
        self.heat = cloud.url + f"/orchestration/v1/{project}"
        self.image = cloud.url + "/image/v2"

    def post(self, url: str, body: dict) -> dict:
        r = self.c.post(url, json=body)
        r.raise_for_status()
        return r.json()

    def gone(self, url: str) -> bool:
        return self.c.get(url).status_code == 404


def template(servers: int, image: str, flavor: str) -> dict:
    res: dict = {"net": {"type": "OS::Neutron::Net"},
                 "subnet": {"type": "OS::Neutron::Subnet",
                            "properties": {"network": {"get_resource": "net"}, "cidr": "10.99.0.0/22"}}}
    for i in range(servers):
        res[f"port{i}"] = {"type": "OS::Neutron::Port",
                           "properties": {"network": {"get_resource": "net"},
                                          "fixed_ips": [{"subnet": {"get_resource": "subnet"}}]}}
        res[f"server{i}"] = {"type": "OS::Nova::Server",
                             "properties": {"image": image, "flavor": flavor,
                                            "networks": [{"port": {"get_resource": f"port{i}"}}]}}
        res[f"vol{i}"] = {"type": "OS::Cinder::Volume", "properties": {"size": 1}}
    return {"heat_template_version": "2018-08-31", "resources": res}


def group_template(count: int, member: str) -> dict:
    return {"heat_template_version": "2018-08-31", "resources": {
        "group": {"type": "OS::Heat::ResourceGroup",
                  "properties": {"count": count, "resource_def": {"type": member}}}}}


def stack_round(api: Api, doc: dict) -> tuple[float, float]:
    """(create, delete) seconds of one stack through the orchestration API."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    t = time.monotonic()
    stack = api.post(api.heat + "/stacks", {"stack_name": name, "template": doc, "disable_rollback": True})["stack"]
    url = f"{api.heat}/stacks/{name}/{stack['id']}"
    status = wait_stack(api, url, "CREATE")
    created = time.monotonic() - t
    if status != "CREATE_COMPLETE":
        raise SystemExit(f"stack {name}: {status}: {api.c.get(url).json()['stack']['stack_status_reason']}")
    t = time.monotonic()
    api.c.delete(url).raise_for_status()
    status = wait_stack(api, url, "DELETE")
    deleted = time.monotonic() - t
    if status != "DELETE_COMPLETE":
        raise SystemExit(f"stack {name}: {status}")
    return created, deleted


def wait_stack(api: Api, url: str, action: str, timeout: float = 1800) -> str:
    """The stack's status once ``action`` has ended. Read as the direct side reads its
    servers and volumes: from the lightest status call (the stack list filtered by its id;
    stack show resolves the parameters and outputs each time), polled from 50 ms backing
    off (x1.5) to STACK_POLL_MAX. Polling show every 50 ms made ~110 requests a round, the
    direct side ~40: a load on the cloud the engine alone paid for. The stack's figures
    carry up to STACK_POLL_MAX of poll delay (the direct side's, up to POLL_MAX)."""
    stack_id = url.rsplit("/", 1)[1]
    deadline = time.monotonic() + timeout
    delay = POLL_MIN
    while time.monotonic() < deadline:
        r = api.c.get(api.heat + "/stacks", params={"id": stack_id, "show_deleted": "true"})
        r.raise_for_status()
        found = r.json()["stacks"]
        if not found:
            return "DELETE_COMPLETE"
        status = found[0]["stack_status"]
        if status.startswith(action) and not status.endswith("IN_PROGRESS"):
            return status
        time.sleep(delay)
        delay = min(delay * 1.5, STACK_POLL_MAX)
    raise SystemExit(f"{url} still {action} IN_PROGRESS after {timeout:.0f} s")


def settle(pending: dict[str, object], done) -> None:
    """Poll each pending thing until ``done(thing)``, backing off as the engine does."""
    delay = POLL_MIN
    while pending:
        moved = [key for key, thing in list(pending.items()) if done(thing)]
        for key in moved:
            del pending[key]
        if moved:
            delay = POLL_MIN
        elif pending:
            time.sleep(delay)
            delay = min(delay * 1.5, POLL_MAX)


def direct_round(api: Api, servers: int, image: str, flavor: str) -> tuple[float, float]:
    """(create, delete) seconds of the same resources made with the engine's calls, by hand."""
    t = time.monotonic()
    net = api.post(api.network + "/networks", {"network": {"name": "direct-net"}})["network"]["id"]
    vols = [api.post(api.volume + "/volumes", {"volume": {"size": 1, "name": f"direct-vol{i}"}})["volume"]["id"]
            for i in range(servers)]
    subnet = api.post(api.network + "/subnets", {"subnet": {"network_id": net, "ip_version": 4,
                                                            "cidr": "10.98.0.0/22"}})["subnet"]["id"]
    ports = [api.post(api.network + "/ports", {"port": {"network_id": net, "fixed_ips": [{"subnet_id": subnet}]}}
                      )["port"]["id"] for _ in range(servers)]
    srvs = [api.post(api.compute + "/servers", {"server": {"name": f"direct-{i}", "imageRef": image,
                                                           "flavorRef": flavor, "networks": [{"port": port}]}}
                     )["server"]["id"] for i, port in enumerate(ports)]
    pending = {**{f"v{v}": ("v", v) for v in vols}, **{f"s{s}": ("s", s) for s in srvs}}

    def ready(thing) -> bool:
        kind, ident = thing
        if kind == "v":
            status = api.c.get(f"{api.volume}/volumes/{ident}").json()["volume"]["status"]
            if status == "error":
                raise SystemExit(f"volume {ident} went to error")
            return status == "available"
        status = api.c.get(f"{api.compute}/servers/{ident}").json()["server"]["status"]
        if status == "ERROR":
            raise SystemExit(f"server {ident} went to ERROR")
        return status == "ACTIVE"

    settle(pending, ready)
    created = time.monotonic() - t

    t = time.monotonic()
    for s in srvs:
        api.c.delete(f"{api.compute}/servers/{s}").raise_for_status()
    for v in vols:
        api.c.delete(f"{api.volume}/volumes/{v}").raise_for_status()
    settle({s: f"{api.compute}/servers/{s}" for s in srvs}, api.gone)
    for p in ports:
        api.c.delete(f"{api.network}/ports/{p}").raise_for_status()
    api.c.delete(f"{api.network}/subnets/{subnet}").raise_for_status()
    api.c.delete(f"{api.network}/networks/{net}").raise_for_status()
    settle({v: f"{api.volume}/volumes/{v}" for v in vols}, api.gone)
    return created, time.monotonic() - t


def med(xs: list[float]) -> float:
    return statistics.median(xs)


REQUEST = re.compile(r" (GET|POST|PUT|PATCH|DELETE|HEAD) /([a-z-]+)\S* -> \d+ ")


class Requests:
    """The API requests the cloud logged (one line each) since the last call, by service,
    the bench's own polls of the stack (/orchestration) left out."""

    def __init__(self, cloud):
        self.log = cloud.state / "onestack.log"
        self.offset = self.log.stat().st_size

    def since(self) -> collections.Counter:
        with self.log.open("rb") as f:
            f.seek(self.offset)
            text = f.read().decode(errors="replace")
            self.offset = f.tell()
        return collections.Counter(m.group(2) for m in REQUEST.finditer(text) if m.group(2) != "orchestration")


def shown(counts: collections.Counter, rounds: int) -> str:
    return f"{sum(counts.values()) // rounds} (" + ", ".join(
        f"{k} {v // rounds}" for k, v in counts.most_common()) + ")"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--servers", type=int, default=16, help="servers (each with a port and a volume) in the stack")
    ap.add_argument("--group", type=int, default=500, help="members of the ResourceGroup")
    ap.add_argument("--group-type", default="OS::Heat::None", help="their type (OS::Heat::None or RandomString)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hosts", type=int, default=4, help="simulated compute hosts")
    args = ap.parse_args()
    stop_on_sigterm()
    env = {"ONESTACK_COMPUTE_FAKE_HOSTS": str(args.hosts - 1), "ONESTACK_LOG_LEVEL": "INFO"}  # a line per request
    for key in ("COMPUTE_QUOTA_INSTANCES", "COMPUTE_QUOTA_CORES", "COMPUTE_QUOTA_RAM", "VOLUME_QUOTA_VOLUMES",
                "VOLUME_QUOTA_GIGABYTES", "NETWORK_QUOTA_PORT"):
        env[f"ONESTACK_{key}"] = "-1"
    cloud = Cloud("bench-orch", extra_env=env)
    with running(cloud):
        tok, project = token(cloud)
        api = Api(cloud, tok, project)
        image = api.post(api.image + "/images", {"name": "bench", "disk_format": "raw",
                                                 "container_format": "bare"})["id"]
        api.c.put(f"{api.image}/images/{image}/file", content=b"\0" * 65536,
                  headers={"Content-Type": "application/octet-stream"}).raise_for_status()
        flavor = next(f["id"] for f in api.c.get(api.compute + "/flavors").json()["flavors"] if f["name"] == "m1.nano")
        rss0, _ = memory(cloud)
        doc = template(args.servers, image, flavor)
        n = len(doc["resources"])
        stack_times, direct_times = [], []
        requests = Requests(cloud)
        by_stack: collections.Counter = collections.Counter()
        by_hand: collections.Counter = collections.Counter()
        for _ in range(args.rounds):  # alternate, so both see the same state of the cloud
            direct_times.append(direct_round(api, args.servers, image, flavor))
            by_hand += requests.since()
            stack_times.append(stack_round(api, doc))
            by_stack += requests.since()
        sc, sd = med([c for c, _ in stack_times]), med([d for _, d in stack_times])
        dc, dd = med([c for c, _ in direct_times]), med([d for _, d in direct_times])
        print(f"stack of {n} resources (network, subnet, {args.servers} x port + server on a fake host + 1 GiB "
              f"volume), median of {args.rounds}:")
        print(f"  create: stack {sc:.2f} s, the same calls direct {dc:.2f} s -> engine overhead x{sc / dc:.2f}")
        print(f"  delete: stack {sd:.2f} s, the same calls direct {dd:.2f} s -> engine overhead x{sd / dd:.2f}")
        print(f"  API requests per round (create + delete, from the cloud's log): by the engine "
              f"{shown(by_stack, args.rounds)}; direct {shown(by_hand, args.rounds)}")
        rss1, _ = memory(cloud)
        group = [stack_round(api, group_template(args.group, args.group_type)) for _ in range(args.rounds)]
        print(f"ResourceGroup of {args.group} {args.group_type}, median of {args.rounds}: "
              f"create {med([c for c, _ in group]):.2f} s, delete {med([d for _, d in group]):.2f} s")
        rss2, peak = memory(cloud)
        print(f"onestack process RSS: {rss0} MiB before the stacks, {rss1} MiB after the {n}-resource ones, "
              f"{rss2} MiB after the groups (peak {peak} MiB)")
        api.c.close()


if __name__ == "__main__":
    main()
