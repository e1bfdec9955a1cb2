"""Telemetry collection of compute (Ceilometer's compute and central pollsters).

``GuestCollector`` runs beside the compute agents of a node: every
``telemetry.interval`` seconds it reads the counters of all running guests of each
host with one driver call (libvirt's bulk domain stats), looks up what the cloud
knows of them (one conductor call for all the node's hosts) and sends the measures to
the metric service over the bus (``metric.ingest``/``add_measures``), as
Ceilometer's meters on resource types ``instance``, ``instance_disk`` and
``instance_network_interface``. ``FloatingIpPoller`` runs on the controller: one
listing of the network API per interval becomes ``ip.floating`` (1) on each
floating IP's ``generic`` resource.

A poll that fails is logged and the next one comes on time; the collectors never
stop an agent, and stop with it (the runtime's ``stopping`` event).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from onestack.common import bus, errors
from onestack.common.messaging import Undeliverable
from onestack.common.timeutils import iso, utcnow
from onestack.compute import clients
from onestack.compute.agent import Conductor
from onestack.compute.virt.driver import GuestStats

log = logging.getLogger(__name__)

TOPIC, METHOD = "metric.ingest", "add_measures"
MIN_INTERVAL = 5
BATCH = 500  # items per bus message (thousands of simulated guests make several)

# Ceilometer's meters: name -> (unit, key of the driver's counters)
DISK_METERS = {"disk.device.read.bytes": ("B", "read_bytes"), "disk.device.write.bytes": ("B", "write_bytes"),
               "disk.device.read.requests": ("request", "read_requests"),
               "disk.device.write.requests": ("request", "write_requests")}
NIC_METERS = {"network.incoming.bytes": ("B", "rx_bytes"), "network.outgoing.bytes": ("B", "tx_bytes"),
              "network.incoming.packets": ("packet", "rx_packets"),
              "network.outgoing.packets": ("packet", "tx_packets")}


def interval_of(conf) -> int:
    value = conf.telemetry.interval
    if value < MIN_INTERVAL:
        log.warning("telemetry.interval %s is below %d s: polling every %d s", value, MIN_INTERVAL, MIN_INTERVAL)
        return MIN_INTERVAL
    return value


def now_iso() -> str:
    return iso(utcnow(), micro=True)


def server_group_of(inst: dict) -> str | None:
    """The ``metering.server_group`` metadata (Heat sets it on an autoscaling group's members;
    Ceilometer's ``server_group`` attribute, which alarms select the group's servers by)."""
    return (inst.get("metadata") or {}).get("metering.server_group")


def instance_attributes(inst: dict) -> dict:
    flavor = inst.get("flavor") or {}
    return {"display_name": inst.get("name"), "flavor_id": flavor.get("id"), "flavor_name": flavor.get("name"),
            "image_ref": inst.get("image_ref") or None, "host": inst.get("host"),
            "server_group": server_group_of(inst)}


def _item(resource_id: str, rtype: str, inst: dict, attributes: dict, metrics: dict) -> dict:
    return {"resource_id": resource_id, "resource_type": rtype, "project_id": inst.get("project_id"),
            "user_id": inst.get("user_id"), "attributes": attributes, "metrics": metrics}


def guest_items(inst: dict, st: GuestStats, at: str, cpu_util: float | None) -> list[dict]:
    """The measures of one guest's poll: its instance, each disk and each interface."""
    uuid = inst["uuid"]
    flavor = inst.get("flavor") or {}
    metrics = {"cpu": {"unit": "ns", "measures": [[at, float(st.cpu_time_ns)]]},
               "vcpus": {"unit": "vcpu", "measures": [[at, float(flavor.get("vcpus") or st.vcpus)]]},
               "memory": {"unit": "MB", "measures": [[at, float(flavor.get("memory_mb") or st.memory_mb)]]}}
    if cpu_util is not None:
        metrics["cpu_util"] = {"unit": "%", "measures": [[at, round(cpu_util, 3)]]}
    if st.memory_used_mb is not None:
        metrics["memory.usage"] = {"unit": "MB", "measures": [[at, round(float(st.memory_used_mb), 3)]]}
    out = [_item(uuid, "instance", inst, instance_attributes(inst), metrics)]
    for rtype, devices, meters in (("instance_disk", st.disks, DISK_METERS),
                                   ("instance_network_interface", st.interfaces, NIC_METERS)):
        for name, counters in sorted(devices.items()):
            out.append(_item(f"{uuid}-{name}", rtype, inst, {"name": name, "instance_id": uuid},
                             {meter: {"unit": unit, "measures": [[at, float(counters.get(key, 0))]]}
                              for meter, (unit, key) in meters.items()}))
    return out


def send(items: list[dict]) -> bool:
    """Cast the items to the metric service, BATCH at a time; False when nothing serves it."""
    b = bus.get()
    for i in range(0, len(items), BATCH):
        try:
            b.cast_sync(TOPIC, METHOD, batch=items[i:i + BATCH])
        except Undeliverable:
            return False
    return True


class _Poller:
    """A thread polling every ``interval`` seconds until ``stopping`` is set."""

    name = "telemetry"

    def __init__(self, interval: float, stopping: threading.Event,
                 sink: Callable[[list[dict]], bool] = send):
        self.interval = interval
        self.stopping = stopping
        self.sink = sink
        self.thread: threading.Thread | None = None
        self._unserved = False  # the metric service was missing at the last poll (logged once)

    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 (a failed poll must not end the collector)
                log.exception("%s: poll failed", self.name)

    def collect(self) -> list[dict]:
        raise NotImplementedError

    def poll_once(self) -> list[dict]:
        """One poll: the items collected (and sent)."""
        items = self.collect()
        if items:
            served = self.sink(items)
            if not served and not self._unserved:
                log.info("%s: no metric service serves %s: measures dropped until one does", self.name, TOPIC)
            self._unserved = not served
        return items


class GuestCollector(_Poller):
    """The guests' counters of the hosts of this node (each a ComputeAgent: host, driver,
    conductor)."""

    name = "telemetry-guests"

    def __init__(self, agents: Iterable, interval: float, stopping: threading.Event,
                 sink: Callable[[list[dict]], bool] = send):
        super().__init__(interval, stopping, sink)
        self.agents = list(agents)
        self.conductor = Conductor()  # (over the bus, as the agents reach it)
        self._last: dict[str, tuple[float, int]] = {}  # uuid -> (monotonic time, cpu ns) of its last poll

    def cpu_util(self, uuid: str, when: float, st: GuestStats) -> float | None:
        """% of its vcpus the guest used since the last poll (None at its first poll, or when
        its counter went back: a restarted QEMU)."""
        last = self._last.get(uuid)
        self._last[uuid] = (when, st.cpu_time_ns)
        if last is None or when <= last[0] or st.cpu_time_ns < last[1]:
            return None
        used = (st.cpu_time_ns - last[1]) / ((when - last[0]) * 1e9 * max(st.vcpus, 1)) * 100
        return min(max(used, 0.0), 100.0)

    def collect(self) -> list[dict]:
        stats: dict[str, tuple[str, GuestStats]] = {}  # uuid -> (host, counters)
        for agent in self.agents:
            try:
                stats.update((uuid, (agent.host, st)) for uuid, st in agent.driver.guest_stats().items())
            except Exception as e:  # noqa: BLE001 (one host's failure leaves the others' measures)
                log.warning("%s: reading the guests of %s failed: %s", self.name, agent.host, e)
        when, at = time.monotonic(), now_iso()
        items: list[dict] = []
        if stats:
            hosts = sorted({host for host, _ in stats.values()})
            for inst in self.conductor.metering_instances(hosts=hosts):
                got = stats.get(inst["uuid"])
                if got is None or got[0] != inst["host"]:  # not this guest's server (moving?): not now
                    continue
                items += guest_items(inst, got[1], at, self.cpu_util(inst["uuid"], when, got[1]))
        # guests gone, stopped or of no server: their next poll starts afresh
        for uuid in set(self._last) - {i["resource_id"] for i in items if i["resource_type"] == "instance"}:
            del self._last[uuid]
        return items


class FloatingIpPoller(_Poller):
    """``ip.floating`` = 1 on each floating IP's ``generic`` resource, every interval while
    it exists (one listing of the network API as the nova service user)."""

    name = "telemetry-floatingips"

    def collect(self) -> list[dict]:
        try:
            fips = clients.get().network.get("/v2.0/floatingips")["floatingips"]
        except errors.ApiError as e:
            log.warning("%s: listing floating IPs failed: %s", self.name, e.message)
            return []
        at = now_iso()
        return [{"resource_id": f["id"], "resource_type": "generic",
                 "project_id": f.get("project_id") or f.get("tenant_id"), "user_id": None, "attributes": {},
                 "metrics": {"ip.floating": {"unit": "ip", "measures": [[at, 1.0]]}}} for f in fips]


def start_guests(conf, agents: Iterable, stopping: threading.Event) -> GuestCollector | None:
    if not conf.telemetry.enabled:
        return None
    c = GuestCollector(agents, interval_of(conf), stopping)
    c.start()
    return c


def start_central(conf, stopping: threading.Event) -> FloatingIpPoller | None:
    if not conf.telemetry.enabled:
        return None
    p = FloatingIpPoller(interval_of(conf), stopping)
    p.start()
    return p
