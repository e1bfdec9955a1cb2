"""Telemetry: the metric store's ingest rate and the cost of an aggregate (and, appended by
the alarming part, the alarm evaluation latency).

Against a cloud it starts (embedded `file` metric storage, or `--storage swift`), prints:
  - ingest of the embedded store itself (in this process, `Store.add` on a temporary
    directory, medium policy: 1 min and 1 h granularities): one day of one-minute
    measures for each of --resources metrics, in one batch per metric; measures/s;
  - ingest over the API: the same day of measures for --resources resources (a
    `cpu_util` metric each) sent as `POST /v1/batch/resources/metrics/measures` bodies
    under the 1 MiB request limit, from two client threads; measures/s;
  - `POST /v1/aggregates` of `(aggregate mean (metric cpu_util mean))` over those
    resources (a resource search) for that day at one-minute granularity: median and p90
    of --rounds, and the number of points it answered (1,440).
  - the guest collector's CPU per simulated guest and poll, as a share of a core at the
    30 s interval (and libvirt's bulk stats call, where qemu:///system answers).
Prints figures; never fails on time. Targets: >= 100,000 measures/s in batch,
< 200 ms for the aggregate over 1,000 resources x one day at one minute.

    .venv/bin/python bench/telemetry.py [--resources 1000] [--rounds 7] [--storage file|swift]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
from _cloud import Cloud, running, stop_on_sigterm, summary

from onestack.common import bus
from onestack.compute import collector
from onestack.compute.agent import ComputeAgent
from onestack.compute.virt.domain import Interface
from onestack.compute.virt.driver import FakeDriver, ImageRef, InstanceSpec
from onestack.metric.storage import FileDriver, Store

try:
    import libvirt
except ImportError:  # (the collector figure then measures the fake driver only)
    libvirt = None

DAY0 = 1796083200.0  # 2026-12-01T00:00:00Z
POINTS = 1440  # one day at one minute
MEDIUM = [{"granularity": 60.0, "points": 10080}, {"granularity": 3600.0, "points": 8760}]
BODY_LIMIT = 1024 * 1024


def token(cloud) -> str:
    rc = cloud.openrc("admin")
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": rc["OS_PASSWORD"]}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
    r = httpx.post(cloud.url + "/identity/v3/auth/tokens", json=body)
    r.raise_for_status()
    return r.headers["X-Subject-Token"]


def store_ingest(n: int) -> None:
    """The embedded store alone: n metrics x one day of one-minute measures."""
    ts = DAY0 + np.arange(POINTS) * 60.0
    values = np.random.default_rng(1).random(POINTS) * 100
    with tempfile.TemporaryDirectory() as d:
        store = Store(FileDriver(d))
        start = time.perf_counter()
        for i in range(n):
            store.add(f"{i:08x}-bench", MEDIUM, ts, values)
        took = time.perf_counter() - start
    print(f"embedded store ingest: {n * POINTS:,} measures in {took:.2f} s = "
          f"{n * POINTS / took:,.0f} measures/s (target >= 100,000)")


def day_of(resource: int) -> list[dict]:
    stamps = np.datetime_as_string((DAY0 + np.arange(POINTS) * 60).astype("datetime64[s]"))
    return [{"timestamp": str(t), "value": float((resource * 7 + i) % 100)} for i, t in enumerate(stamps)]


def api_ingest(c: httpx.Client, url: str, ids: list[str]) -> None:
    per_resource = len(json.dumps({ids[0]: {"cpu_util": day_of(0)}}))
    per_body = max(1, (BODY_LIMIT - 1024) // per_resource)
    bodies = []
    for i in range(0, len(ids), per_body):  # encoded beforehand: the figure is the server's
        part = {rid: {"cpu_util": day_of(i + j)} for j, rid in enumerate(ids[i:i + per_body])}
        bodies.append(json.dumps(part).encode())

    def send(data: bytes) -> None:
        r = c.post(f"{url}/v1/batch/resources/metrics/measures", content=data,
                   headers={"Content-Type": "application/json"})
        r.raise_for_status()

    start = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(send, bodies))
    took = time.perf_counter() - start
    n = len(ids) * POINTS
    print(f"API batch ingest: {n:,} measures in {len(bodies)} requests of {per_body} resources, "
          f"{took:.2f} s = {n / took:,.0f} measures/s")


def aggregate(c: httpx.Client, url: str, user: str, rounds: int) -> None:
    body = {"resource_type": "generic", "search": {"=": {"user_id": user}},
            "operations": "(aggregate mean (metric cpu_util mean))"}
    params = {"granularity": 60, "start": DAY0, "stop": DAY0 + 86400}
    times, points = [], 0
    for _ in range(rounds + 1):  # the first warms the caches
        start = time.perf_counter()
        r = c.post(f"{url}/v1/aggregates", json=body, params=params)
        times.append(time.perf_counter() - start)
        r.raise_for_status()
        points = len(r.json()["measures"]["aggregated"])
    med, p90 = summary(times[1:])
    print(f"aggregate mean over the resources x one day at 1 min: median {med:.0f} ms, p90 {p90:.0f} ms, "
          f"{points} points (target < 200 ms)")


def metric_figures(cloud, args) -> None:
    url = cloud.url + "/metric"
    c = httpx.Client(headers={"X-Auth-Token": token(cloud)}, timeout=600)
    user = f"bench-{uuid.uuid4().hex[:6]}"
    ids = [str(uuid.uuid4()) for _ in range(args.resources)]
    for rid in ids:  # setup, not timed
        c.post(f"{url}/v1/resource/generic", json={
            "id": rid, "user_id": user, "project_id": "bench",
            "metrics": {"cpu_util": {"archive_policy_name": "medium"}}}).raise_for_status()
    api_ingest(c, url, ids)
    aggregate(c, url, user, args.rounds)


# ------------------------------------------------------------------ alarms (the alarming part)
ALARM_ENV = {"ONESTACK_ALARMING_EVALUATION_INTERVAL": "1", "ONESTACK_LOG_LEVEL": "WARNING"}


def alarm_figures(cloud, args) -> None:
    """The alarm latency, on a cloud that evaluates every second: this one if it does, else
    one started for it."""
    if cloud.env.get("ONESTACK_ALARMING_EVALUATION_INTERVAL") == "1":
        alarm_latency(cloud, args.rounds)
        return
    with running(Cloud("bench-alarms", extra_env=ALARM_ENV)) as own:
        alarm_latency(own, args.rounds)


def alarm_latency(cloud, rounds: int = 5) -> dict:
    """Alarm evaluation latency: from a measure crossing the threshold (the answer to its
    `POST .../measures`) to the webhook's arrival at a receiver on loopback, through the
    metric API, the evaluator (alarming.evaluation_interval = 1 s: the figure includes up
    to one interval of waiting) and the notifier. Alternates above and below the
    threshold, ``rounds`` crossings each way (a fresh resource and alarm each round);
    prints and returns the median and the worst. The cloud evaluates every second (ALARM_ENV)."""
    import queue
    import statistics
    import threading
    from datetime import UTC, datetime
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    arrivals: queue.Queue = queue.Queue()

    class Hook(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            arrivals.put((time.perf_counter(), body["current"]))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{server.server_address[1]}/hook"
    rc = cloud.openrc("admin")
    auth = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": rc["OS_PASSWORD"]}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
    http = httpx.Client(base_url=cloud.url, timeout=60)
    token = http.post("/identity/v3/auth/tokens", json=auth).headers["X-Subject-Token"]
    http.headers["X-Auth-Token"] = token
    latencies = []
    try:
        for _ in range(rounds):
            # a fresh resource and alarm each round: 90 crosses into alarm; 10 then brings this
            # minute's mean to 50 (or a new minute's to 10), not above 50: ok
            rid = str(uuid.uuid4())
            http.post("/metric/v1/resource/generic", json={"id": rid, "metrics": {"load": {}}}).raise_for_status()
            alarm = http.post("/alarming/v2/alarms", json={
                "name": "bench-latency", "type": "gnocchi_resources_threshold",
                "gnocchi_resources_threshold_rule": {
                    "metric": "load", "resource_id": rid, "resource_type": "generic", "aggregation_method": "mean",
                    "threshold": 50, "comparison_operator": "gt", "granularity": 60},
                "alarm_actions": [hook], "ok_actions": [hook]}).json()
            try:
                for value, want in ((90.0, "alarm"), (10.0, "ok")):
                    stamp = datetime.now(UTC).replace(tzinfo=None).isoformat()
                    http.post(f"/metric/v1/resource/generic/{rid}/metric/load/measures",
                              json=[{"timestamp": stamp, "value": value}]).raise_for_status()
                    sent = time.perf_counter()
                    while True:
                        at, state = arrivals.get(timeout=60)
                        if state == want:
                            latencies.append(at - sent)
                            break
            finally:
                http.delete(f"/alarming/v2/alarms/{alarm['alarm_id']}")
    finally:
        server.shutdown()
    out = {"median_s": statistics.median(latencies), "worst_s": max(latencies), "crossings": len(latencies)}
    print(f"alarm latency (threshold crossing -> webhook, evaluation_interval 1 s): "
          f"median {out['median_s']:.2f} s, worst {out['worst_s']:.2f} s over {out['crossings']} crossings")
    return out


# ------------------------------------------------------------------ the collector (the collection part)


def collector_figures(cloud, args) -> None:
    """The guest collector's CPU per guest and poll, in this process: --resources simulated
    guests (fake driver, one NIC and one disk each) on one host, polled as a compute node
    does (one bulk stats call, one conductor read, the batch encoded onto the in-process
    bus to a sink), as a share of one core at the default 30 s interval (target < 1 %).
    Where qemu:///system answers, also the wall time of its bulk stats call per guest."""
    n = args.resources
    b = bus.InProcessBus()
    driver, rows = FakeDriver(host="bench"), []
    for i in range(n):
        uid = str(uuid.uuid4())
        driver.spawn(InstanceSpec(uuid=uid, memory_mib=64, vcpus=1, image=ImageRef("i", lambda p: None),
                                  interfaces=[Interface(bridge="brqbench", mac="fa:16:3e:00:00:01",
                                                        target=f"tap{i:011d}")]))
        rows.append({"uuid": uid, "project_id": "p", "user_id": "u", "name": f"s{i}", "host": "bench",
                     "image_ref": "i", "flavor": {"id": "1", "name": "m1.nano", "vcpus": 1, "memory_mb": 64},
                     "metadata": {}})

    class Conductor:
        def metering_instances(self, hosts):
            return rows

    class Sink:
        def add_measures(self, batch):
            pass

    b.serve("compute.conductor", Conductor())
    b.serve("metric.ingest", Sink())
    agent = ComputeAgent("bench", driver, plug=False)
    old, bus._bus = bus._bus, b
    try:
        c = collector.GuestCollector([agent], 30, threading.Event())
        c.poll_once()
        rounds = max(args.rounds, 3)
        t0 = time.process_time()
        for _ in range(rounds):
            c.poll_once()
        cpu = (time.process_time() - t0) / rounds
    finally:
        bus._bus = old
        b.close()
    per_guest = cpu / n
    print(f"collector: {per_guest * 1e6:.0f} us CPU per guest and poll ({n} guests); at a 30 s interval "
          f"{per_guest / 30 * 100:.4f} % of a core per guest, at 5 s {per_guest / 5 * 100:.4f} % (target < 1 %)")
    try:
        conn = libvirt.openReadOnly("qemu:///system")
    except Exception:  # noqa: BLE001 (no libvirt here: the fake figure only)
        return
    groups = (libvirt.VIR_DOMAIN_STATS_CPU_TOTAL | libvirt.VIR_DOMAIN_STATS_BALLOON | libvirt.VIR_DOMAIN_STATS_VCPU
              | libvirt.VIR_DOMAIN_STATS_INTERFACE | libvirt.VIR_DOMAIN_STATS_BLOCK)
    start = time.perf_counter()
    got = conn.getAllDomainStats(groups, libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE)
    took = time.perf_counter() - start
    conn.close()
    if got:
        print(f"libvirt bulk stats: {took * 1000:.1f} ms for {len(got)} running guest(s) "
              f"({took / len(got) * 1000:.2f} ms each)")


# The figures, in order; each takes (cloud, args). The alarming part appends its
# alarm-latency function here.
FIGURES = [
    metric_figures,
    # -- alarming (append below) --
    alarm_figures,
    # -- collection --
    collector_figures,
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resources", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--storage", default="file", choices=["file", "swift"])
    args = ap.parse_args()
    stop_on_sigterm()
    store_ingest(args.resources)
    cloud = Cloud("bench-telemetry", extra_env={"ONESTACK_METRIC_STORAGE": args.storage,
                                                "ONESTACK_LOG_LEVEL": "WARNING"})
    with running(cloud):
        for figure in FIGURES:
            figure(cloud, args)


if __name__ == "__main__":
    main()
