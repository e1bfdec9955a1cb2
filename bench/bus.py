"""Bus call round trip: the in-process bus against AMQP on a local RabbitMQ.

Both cross the same JSON codec; the difference is the broker hop. A throw-away
broker (tests/cloud.py RabbitMQ) is started on a free loopback port and removed
afterwards. Prints median and p99 of `call_sync` for a small and a ~10 KiB payload
(the size of an instance record), and casts per second. Figures only.

    .venv/bin/python bench/bus.py [-n 2000]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

from _cloud import REPO, stop_on_sigterm  # noqa: F401 (puts the repo on sys.path)

from onestack.common import bus
from onestack.common.amqp import AmqpBus
from tests.cloud import RabbitMQ


class Echo:
    def __init__(self):
        self.casts = 0
        self.done = threading.Event()
        self.want = 0

    def echo(self, doc):
        return doc

    def count(self, doc):
        self.casts += 1
        if self.casts >= self.want:
            self.done.set()


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = sorted(s * 1000 for s in seconds)
    return statistics.median(ms), ms[min(len(ms) - 1, int(len(ms) * 0.99))]


def measure(b: bus.Bus, n: int) -> dict[str, tuple[float, float] | float]:
    agent = Echo()
    b.serve("bench.echo", agent)
    small = {"instance_uuid": "7c8f5e7e-0d35-4b8e-9d2e-2a5b9c1f0e11"}
    big = {"network_info": [{"id": f"port-{i}", "address": "fa:16:3e:00:00:01", "ips": ["10.0.0.5"],
                             "details": {"port_filter": True, "ovs_hybrid_plug": False}} for i in range(60)]}
    out: dict[str, tuple[float, float] | float] = {}
    for name, doc in (("small", small), ("10 KiB", big)):
        for _ in range(50):  # warm up
            b.call_sync("bench.echo", "echo", doc=doc)
        times = []
        for _ in range(n):
            t = time.perf_counter()
            b.call_sync("bench.echo", "echo", doc=doc)
            times.append(time.perf_counter() - t)
        out[name] = percentiles(times)
    agent.want = n
    t = time.perf_counter()
    for _ in range(n):
        b.cast_sync("bench.echo", "count", doc=small)
    agent.done.wait(120)
    out["casts/s"] = n / (time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2000, help="calls per measurement")
    args = ap.parse_args()
    stop_on_sigterm()
    results = {}
    b = bus.InProcessBus()
    try:
        results["in-process"] = measure(b, args.n)
    finally:
        b.close()
    broker = RabbitMQ()
    try:
        broker.start()
        b = AmqpBus(broker.url)
        try:
            results["RabbitMQ"] = measure(b, args.n)
        finally:
            b.close()
    finally:
        broker.close()
    print(f"bus call round trip (call_sync, n={args.n}), ms: median / p99")
    for backend, r in results.items():
        calls = "   ".join(f"{k} {r[k][0]:.3f} / {r[k][1]:.3f}" for k in ("small", "10 KiB"))
        print(f"  {backend:<11} {calls}   casts {r['casts/s']:,.0f}/s")
    a, q = results["in-process"]["small"][0], results["RabbitMQ"]["small"][0]
    print(f"  RabbitMQ / in-process (small, median): {q / a:.1f}x")


if __name__ == "__main__":
    main()
