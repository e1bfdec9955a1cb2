"""The network agent's loop: desired state from the conductor, reconciled into the kernel.

It runs as one asyncio loop on its own thread (in the all-in-one process; the same
class can run in an ``onestack agent network`` process with a networked bus) and
never opens the database. It resyncs

- within ``DEBOUNCE`` seconds of any ``network.*`` change notification,
- when a bound port's tap appears, disappears or moves (polled every second: the
  hypervisor plugs guests without telling us, as with Neutron's Linux bridge agent),
- every ``resync_interval`` seconds in any case (the repair of drift),
- sooner again (``RETRY``) after a pass in which something failed,

and sends a heartbeat every ``report_interval`` seconds for its four agent types
(Linux bridge, DHCP, L3 and metadata), which ``openstack network agent list`` shows.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from dataclasses import dataclass

from onestack.common import bus
from onestack.network import conductor
from onestack.network.agent import dataplane
from onestack.network.agent import plan as planlib
from onestack.network.linux import metadata

log = logging.getLogger(__name__)

DEBOUNCE = 0.05
POLL = 1.0
RETRY = 2.0
IGNORED_EVENTS = ("network.port.status",)


@dataclass
class AgentSettings:
    host: str
    state_dir: str
    local_ip: str = "127.0.0.1"
    availability_zone: str = "nova"
    metadata_url: str = "http://127.0.0.1:8800/metadata"
    metadata_secret: str = ""
    report_interval: float = 10.0
    resync_interval: float = 30.0
    physical_interfaces: dict[str, str] | None = None  # physnet -> this host's interface


class _RunningProxy:
    def __init__(self, proxy: metadata.MetadataProxy, inode: int):
        self.proxy, self.inode = proxy, inode


def _netns_inode(name: str) -> int | None:
    try:
        return os.stat(f"/run/netns/{name}").st_ino
    except OSError:
        return None


class NetworkAgent:
    def __init__(self, settings: AgentSettings, the_bus: bus.Bus | None = None):
        self.s = settings
        self.bus = the_bus or bus.get()
        self.dataplane = dataplane.Dataplane(settings.state_dir)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._proxies: dict[str, _RunningProxy] = {}
        self._identities: dict[str, dict[str, metadata.Identity]] = {}
        self._taps: list[planlib.Tap] = []
        self.passes = 0
        self.last_errors: list[str] = []
        self.synced = threading.Event()  # set after each completed pass (tests wait on it)

    # -- life cycle ----------------------------------------------------------------

    def start(self) -> NetworkAgent:
        self._thread = threading.Thread(target=self._run_thread, name="network-agent", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        self.bus.subscribe("network.*", self._on_event)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        loop, stop = self.loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(timeout)
        for name in list(self._proxies):
            self._stop_proxy(name)

    def _run_thread(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception:  # noqa: BLE001
            log.exception("network agent stopped on an error")

    def _on_event(self, event_type: str, payload: dict) -> None:
        if event_type in IGNORED_EVENTS:
            return
        loop, wake = self.loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop just closed
                pass

    # -- the loop ------------------------------------------------------------------

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._wake, self._stop = asyncio.Event(), asyncio.Event()
        self._ready.set()
        heartbeat = asyncio.create_task(self._heartbeats())
        try:
            await self._report(start=True)
            await self._loop()
        finally:
            heartbeat.cancel()

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.s.report_interval)
            try:
                await self._report()
            except Exception as e:  # noqa: BLE001
                log.warning("network agent heartbeat failed: %s", e)

    async def _report(self, start: bool = False) -> None:
        cfg = {"tunneling_ip": self.s.local_ip, "tunnel_types": ["vxlan"], "devices": len(self._taps),
               "bridge_mappings": {}, "interface_mappings": {}}
        agents = [
            {"agent_type": "Linux bridge agent", "configurations": cfg},
            {"agent_type": "DHCP agent", "availability_zone": self.s.availability_zone,
             "configurations": {"dhcp_driver": "dnsmasq", "networks": len(self.dataplane._dhcp_networks())}},
            {"agent_type": "L3 agent", "availability_zone": self.s.availability_zone,
             "configurations": {"agent_mode": "legacy", "interface_driver": "linuxbridge"}},
            {"agent_type": "Metadata agent",
             "configurations": {"metadata_proxy": self.s.metadata_url, "proxies": len(self._proxies)}},
        ]
        await self.bus.call(conductor.TOPIC, "report", host=self.s.host, agents=agents, start_flag=start)

    async def _loop(self) -> None:
        next_full = 0.0
        signature: tuple = ()
        retry_at: float | None = None
        while not self._stop.is_set():
            now = time.monotonic()
            due = now >= next_full or self._wake.is_set() or (retry_at is not None and now >= retry_at)
            if not due:
                sig = await asyncio.to_thread(dataplane.taps_signature, self._taps)
                due = sig != signature
            if due:
                await asyncio.sleep(DEBOUNCE)  # let a burst of changes land in one pass
                self._wake.clear()
                try:
                    ok = await self.sync_once()
                except Exception as e:  # noqa: BLE001
                    log.warning("network agent pass failed: %s", e)
                    ok = False
                signature = await asyncio.to_thread(dataplane.taps_signature, self._taps)
                retry_at = None if ok else time.monotonic() + RETRY
                if now >= next_full:
                    next_full = time.monotonic() + self.s.resync_interval
                continue
            try:
                await asyncio.wait_for(self._wait_any(), POLL)
            except TimeoutError:
                pass

    async def _wait_any(self) -> None:
        wake = asyncio.create_task(self._wake.wait())
        stop = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({wake, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            wake.cancel()
            stop.cancel()

    async def sync_once(self) -> bool:
        """One pass: fetch, plan, apply, report port states. True if nothing failed."""
        state = await self.bus.call(conductor.TOPIC, "host_state", host=self.s.host)
        p = planlib.build(state, local_ip=self.s.local_ip, physical_interfaces=self.s.physical_interfaces)
        res = await asyncio.to_thread(self.dataplane.apply, p)
        self._taps = p.taps
        await asyncio.to_thread(self._sync_proxies, p, res)
        statuses = self._statuses(state, p, res)
        if statuses:
            await self.bus.call(conductor.TOPIC, "port_status", host=self.s.host, statuses=statuses)
        for pid in p.unpluggable:
            log.warning("port %s is bound here but its network's bridge lives in a namespace "
                        "(external network): guests cannot be plugged into it", pid)
        self.passes += 1
        self.last_errors = res.errors
        self.synced.set()
        return not res.errors

    def _statuses(self, state: dict, p: planlib.Plan, res: dataplane.Result) -> dict[str, str]:
        """ACTIVE for what is plugged, DOWN for what is not; only changes are sent."""
        current = {x["id"]: x.get("status") for x in state["ports"]}
        for n in state["networks"]:
            if n.get("dhcp_port"):
                current[n["dhcp_port"]["id"]] = n["dhcp_port"].get("status")
        for r in state["routers"]:
            for x in [*r["interfaces"], *([r["gateway"]] if r.get("gateway") else [])]:
                current[x["id"]] = x.get("status")
        mine = {t.port_id for t in p.taps} | set(p.dhcp_ports.values()) | set(p.unpluggable)
        mine |= {pid for ids in p.router_ports.values() for pid in ids}
        out = {}
        for pid in mine:
            want = "ACTIVE" if pid in res.plugged else "DOWN"
            if current.get(pid) != want:
                out[pid] = want
        return out

    # -- metadata proxies ------------------------------------------------------------

    def _sync_proxies(self, p: planlib.Plan, res: dataplane.Result) -> None:
        wanted = {x.netns: x for x in p.proxies}
        self._identities = {ns: x.identities for ns, x in wanted.items()}
        for ns in list(self._proxies):
            if ns not in wanted or self._proxies[ns].inode != _netns_inode(ns):
                self._stop_proxy(ns)
        if not self.s.metadata_secret:
            return
        for ns, want in wanted.items():
            if ns in self._proxies:
                self._proxies[ns].proxy.labels = want.labels
                continue
            inode = _netns_inode(ns)
            if inode is None:
                continue
            proxy = metadata.MetadataProxy(ns, self.s.metadata_url, self._resolver(ns), self.s.metadata_secret,
                                           labels=want.labels)
            try:
                proxy.start()
            except Exception as e:  # noqa: BLE001
                res.fail(f"metadata proxy in {ns}", e)
                continue
            self._proxies[ns] = _RunningProxy(proxy, inode)

    def _resolver(self, ns: str):
        def resolve(address: str) -> metadata.Identity | None:
            return self._identities.get(ns, {}).get(address)
        return resolve

    def _stop_proxy(self, ns: str) -> None:
        running = self._proxies.pop(ns, None)
        if running is not None:
            try:
                running.proxy.stop()
            except Exception as e:  # noqa: BLE001
                log.warning("stopping the metadata proxy in %s: %s", ns, e)
