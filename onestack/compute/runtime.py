"""Starting compute's moving parts in this process: scheduler, conductor, compute agents.

The all-in-one cloud runs one compute agent for this machine (libvirt when it
can, else the fake driver) plus any number of simulated hosts
(``compute.fake_hosts``). A single reporter thread heartbeats every agent and
keeps each host's inventory in Placement true.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from onestack.common import bus, db, errors
from onestack.compute import clients, settings
from onestack.compute import models as m
from onestack.compute.agent import ComputeAgent
from onestack.compute.agent import Conductor as AgentConductor
from onestack.compute.conductor import Conductor
from onestack.compute.scheduler import Scheduler
from onestack.compute.virt.driver import FakeDriver, LibvirtDriver

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self):
        self.scheduler: Scheduler | None = None
        self.conductor: Conductor | None = None
        self.agents: list[ComputeAgent] = []
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None  # the agents' reporter
        self.control_thread: threading.Thread | None = None
        self._inventory: dict[str, dict] = {}  # what Placement holds of each host, as last reported
        self._unreported: set[str] = set()  # hosts whose new node has no provider yet
        self.controller = socket.gethostname()

    def stop(self) -> None:
        self.stopping.set()


current = Runtime()


class NoHypervisor(RuntimeError):
    """``compute.driver = auto`` found no way to run real guests: start-up stops here,
    rather than fall back to simulated servers that a user would take for real ones."""


_USE_FAKE = 'or set compute.driver = "fake" (ONESTACK_COMPUTE_DRIVER=fake) for simulated servers'


def _driver(conf, host: str):
    kind = conf.compute.driver
    instances_dir = conf.compute.instances_dir or None
    if kind not in ("auto", "libvirt", "fake"):
        raise NoHypervisor(f"compute: unknown compute.driver {kind!r} (auto, libvirt or fake)")
    if kind == "fake":
        log.warning("compute: the fake driver runs: servers are simulated, no real guests run")
        return FakeDriver(host=host, vcpus=conf.compute.fake_host_vcpus,
                          memory_mb=conf.compute.fake_host_memory_mb, local_gb=conf.compute.fake_host_disk_gb,
                          hypervisor_type="fake", spawn_seconds=conf.compute.fake_spawn_seconds), False
    if kind == "auto" and os.geteuid() != 0:
        raise NoHypervisor(f"compute: real guests need root (libvirt's qemu:///system): run onestack as root, {_USE_FAKE}")
    try:
        d = LibvirtDriver(conf.state_dir if not instances_dir else instances_dir, uri=conf.compute.libvirt_uri,
                          detach_attempts=conf.compute.device_detach_attempts,
                          detach_timeout=conf.compute.device_detach_timeout, vnc_listen=conf.compute.vnc_listen)
        d.conn()
        return d, True
    except Exception as e:
        if kind == "libvirt":
            raise
        raise NoHypervisor(f"compute: libvirt is not usable ({e}): start it (scripts/libvirt-up.sh), {_USE_FAKE}") from e


def start(conf) -> Runtime:
    """The controller's part: scheduler and conductor on the bus, their heartbeats."""
    rt = current
    rt.controller = conf.node.name or socket.gethostname()  # (a cluster names its controller)
    clients.configure(conf)
    rt.scheduler = Scheduler()
    rt.conductor = Conductor(rt.scheduler)
    b = bus.get()
    b.serve("compute.scheduler", rt.scheduler)
    b.serve("compute.conductor", rt.conductor)
    b.subscribe("network.floatingip.*", _floating_ip_changed)
    lost = rt.conductor.recover_builds()  # (before the APIs serve: no build of this run is among them)
    if lost:
        threading.Thread(target=_release_later, args=(rt, lost), name="compute-release", daemon=True).start()
    rt.control_thread = threading.Thread(target=_control_loop, args=(rt,), name="compute-control", daemon=True)
    rt.control_thread.start()
    return rt


def start_agents(conf) -> Runtime:
    """A compute node's part: this host's agent (and simulated hosts), which reach the
    conductor over the bus only, as on a node of a multi-node cloud."""
    rt = current
    if clients.current is None:
        clients.configure(conf)
    host = conf.compute.host or socket.gethostname()
    driver, real = _driver(conf, host)
    rt.agents = [ComputeAgent(host, driver, zone=conf.compute.availability_zone, plug=real)]
    if conf.compute.fake_hosts:
        for i in range(conf.compute.fake_hosts):
            name = f"fake-{i + 1}"
            d = FakeDriver(host=name, vcpus=conf.compute.fake_host_vcpus,
                           memory_mb=conf.compute.fake_host_memory_mb, local_gb=conf.compute.fake_host_disk_gb,
                           hypervisor_type="fake", spawn_seconds=conf.compute.fake_spawn_seconds)
            rt.agents.append(ComputeAgent(name, d, zone=conf.compute.availability_zone, plug=False))
    for a in rt.agents:
        a.serve()
    rt.thread = threading.Thread(target=_report_loop, args=(rt,), name="compute-reporter", daemon=True)
    rt.thread.start()
    return rt


_conductor = AgentConductor()  # the agents' reports go over the bus, never to the object


def _control_loop(rt: Runtime) -> None:
    """nova-scheduler and nova-conductor heartbeats of the controller."""
    first = True
    while not rt.stopping.wait(0 if first else settings.current.heartbeat_interval):
        first = False
        try:
            for name in ("nova-scheduler", "nova-conductor"):
                rt.conductor.service_report(host=rt.controller, binary=name, zone="internal")
            if settings.current.build_timeout > 0:
                rt.conductor.expire_builds(timeout=settings.current.build_timeout)
        except Exception:
            log.exception("compute: controller heartbeat failed")


def _release_later(rt: Runtime, consumers: list[str]) -> None:
    """Give back what ``consumers`` hold in Placement, as soon as it answers (the APIs
    serve once start-up is over)."""
    delay = 0.2
    while consumers and not rt.stopping.is_set():
        try:
            clients.get().placement.release(consumers[0])
        except errors.ServiceUnavailable:
            rt.stopping.wait(delay)
            delay = min(delay * 2, 5)
            continue
        except Exception:
            log.exception("could not release the allocations of %s", consumers[0])
        consumers.pop(0)


def _report_loop(rt: Runtime) -> None:
    """Register every host, then heartbeat; retries until the conductor and the APIs answer
    (on a node they may start after us)."""
    interval = settings.current.heartbeat_interval
    pending = list(rt.agents)
    delay = 0.2
    started = time.monotonic()
    while not rt.stopping.is_set() and pending:
        try:
            pending = _register(rt, pending)
        except Exception as e:  # noqa: BLE001 (the conductor may not be up yet)
            log.info("compute: registering hosts: %s; retrying", e)
        if pending:
            rt.stopping.wait(delay)
            delay = min(delay * 2, 2)
    if not pending:
        log.info("compute: %d host(s) registered in %.1f s", len(rt.agents), time.monotonic() - started)
    first = True
    while not rt.stopping.wait(0 if first else interval):
        try:
            _conductor.heartbeat_many(hosts=[a.host for a in rt.agents])
            for a in rt.agents:
                try:
                    a.recover_builds()  # (once, at the first pass that reaches the conductor)
                except Exception:
                    log.exception("compute: recovering the builds of %s failed", a.host)
                if a.plug_vifs or first:
                    if not first:
                        _register(rt, [a])
                    try:
                        a.reconcile()
                    except Exception:
                        log.exception("compute: reconcile of %s failed", a.host)
        except Exception:
            log.exception("compute: heartbeat failed")
        first = False


# Placement has no bulk inventory API: each host is a POST and a PUT, this many at once
# (bounded: in the all-in-one cloud the same process answers them)
REPORT_WORKERS = 8


def _inventory(res: dict) -> dict[str, dict]:
    s = settings.current
    return {
        "VCPU": {"total": res["vcpus"], "reserved": 0, "min_unit": 1, "max_unit": res["vcpus"], "step_size": 1,
                 "allocation_ratio": s.cpu_allocation_ratio},
        "MEMORY_MB": {"total": res["memory_mb"], "reserved": min(s.reserved_host_memory_mb, res["memory_mb"] - 1),
                      "min_unit": 1, "max_unit": res["memory_mb"], "step_size": 1,
                      "allocation_ratio": s.ram_allocation_ratio},
        "DISK_GB": {"total": max(res["local_gb"], 1), "reserved": 0, "min_unit": 1,
                    "max_unit": max(res["local_gb"], 1), "step_size": 1, "allocation_ratio": s.disk_allocation_ratio},
    }


def _register(rt: Runtime, agents: list[ComputeAgent]) -> list[ComputeAgent]:
    """Report hosts: their service and node rows in one conductor transaction, then each
    one's provider and inventory in Placement (a bounded pool of them at once). The hosts
    still to do (Placement or the API not answering yet)."""
    reports = [{"host": a.host, "zone": a.zone, "resources": a.resources()} for a in agents]
    nodes = _conductor.compute_nodes_report(reports=reports)
    todo = []
    for a, r in zip(agents, reports, strict=True):
        a.node_uuid = nodes[a.host]["node_uuid"]
        if nodes[a.host]["new"]:
            rt._unreported.add(a.host)
        inventory = _inventory(r["resources"])
        if rt._inventory.get(a.host) != inventory:
            todo.append((a, inventory, a.host in rt._unreported))
    down = threading.Event()  # the API is not up yet: the rest wait for the next round

    def report(item) -> Exception | None:
        a, inventory, new = item
        if down.is_set():
            return errors.ServiceUnavailable("placement is not answering")
        try:
            clients.get().placement.report_provider(a.node_uuid, a.host, inventory, new=new)
        except Exception as e:
            if isinstance(e, errors.ServiceUnavailable):
                down.set()
            else:
                log.error("compute: %s could not be reported to Placement: %s", a.host, e)
            return e
        rt._inventory[a.host] = inventory
        rt._unreported.discard(a.host)
        return None

    if not todo:
        return []
    with ThreadPoolExecutor(min(REPORT_WORKERS, len(todo)), thread_name_prefix="compute-register") as pool:
        failed = list(pool.map(report, todo))
    return [a for (a, _, _), error in zip(todo, failed, strict=True) if error is not None]


def _floating_ip_changed(event: str, payload: dict) -> None:
    """A floating IP came or went: the servers whose addresses show it are refreshed."""
    needles = [x for x in (payload.get("port_id"), payload.get("floating_ip_address")) if x]
    if not needles:
        return
    text = sa.cast(m.Instance.network_info, sa.String)
    with db.session() as s:
        rows = s.execute(sa.select(m.Instance.uuid, m.Instance.host).where(
            m.Instance.deleted.is_(False), m.Instance.host.is_not(None),
            sa.or_(*[text.like(f"%{n}%") for n in needles]))).all()
    for uuid, host in rows:
        try:
            bus.get().cast_sync(f"compute.{host}", "refresh_network_info", instance_uuid=uuid)
        except errors.ApiError:
            pass
