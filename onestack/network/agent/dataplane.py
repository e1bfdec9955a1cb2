"""Applying a :class:`plan.Plan` to this host's kernel, and removing what is no longer in it.

Ownership: every namespace, root-namespace device and nftables table the agent makes
is first written to a ledger in the state directory (``network/kernel.json``), then
made. Clean-up and ``purge`` remove only what the ledger names, so a second onestack
(or a test of the data plane library) on the same machine, with objects of the same
prefixes, is never touched. The names still carry onestack's prefixes (``qrouter-``,
``qdhcp-``, ``onestack-``, ``brq``, ``vxlan-``, ``tap``) so people can tell them apart.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path

from onestack.common import fsacl
from onestack.network.agent import plan as planlib
from onestack.network.linux import dhcp, nft, router, secgroups
from onestack.network.linux import ip as iplib

log = logging.getLogger(__name__)

ROOT_TABLES = [("bridge", secgroups.TABLE), ("inet", secgroups.CT_TABLE)]
DNSMASQ_USER = "nobody"  # dnsmasq's own default: it drops root after binding its sockets


class Ledger:
    """The kernel objects this cloud made on this host: {"netns": [...], "link": [...],
    "nft": ["family name", ...]}, written before each object is made."""

    KINDS = ("netns", "link", "nft")

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        try:
            data = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            data = {}
        self.items = {k: set(data.get(k, [])) for k in self.KINDS}

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({k: sorted(v) for k, v in self.items.items()}, indent=1))
        os.replace(tmp, self.path)

    def add(self, kind: str, name: str) -> None:
        with self._lock:
            if name not in self.items[kind]:
                self.items[kind].add(name)
                self._write()

    def discard(self, kind: str, name: str) -> None:
        with self._lock:
            if name in self.items[kind]:
                self.items[kind].discard(name)
                self._write()

    def names(self, kind: str) -> set[str]:
        with self._lock:
            return set(self.items[kind])


def ledger_path(state_dir: str | os.PathLike) -> Path:
    return Path(state_dir) / "network" / "kernel.json"


@dataclass
class Result:
    """What one pass achieved: which ports are plugged, which parts failed."""

    plugged: set[str] = field(default_factory=set)  # port ids whose device is in place
    errors: list[str] = field(default_factory=list)

    def fail(self, what: str, e: Exception) -> None:
        log.warning("network agent: %s: %s", what, e)
        self.errors.append(f"{what}: {e}")


def _master(dev: str) -> str | None:
    try:
        return os.path.basename(os.readlink(f"/sys/class/net/{dev}/master"))
    except OSError:
        return None


def device_exists(dev: str) -> bool:
    return os.path.exists(f"/sys/class/net/{dev}")


def taps_signature(taps: list[planlib.Tap]) -> tuple:
    """Which bound ports' taps exist and on which bridge: polled, a change means resync."""
    return tuple((t.device, device_exists(t.device), _master(t.device)) for t in taps)


class Dataplane:
    def __init__(self, state_dir: str | os.PathLike):
        self.state_dir = str(state_dir)
        self.ledger = Ledger(ledger_path(state_dir))

    # -- one pass -------------------------------------------------------------

    def apply(self, p: planlib.Plan) -> Result:
        res = Result()
        ns_ok: set[str] = set()
        for ns in p.external_namespaces:
            try:
                self.ledger.add("netns", ns)
                iplib.ensure_netns(ns)
                ns_ok.add(ns)
            except Exception as e:  # noqa: BLE001 (one failure must not stop the rest)
                res.fail(f"namespace {ns}", e)
        bridges_ok: set[str] = set()
        for b in p.bridges:
            if b.netns is not None and b.netns not in ns_ok:
                continue
            try:
                if b.netns is None:
                    self.ledger.add("link", b.name)
                iplib.ensure_bridge(b.name, b.netns, mtu=b.mtu)
                if b.vxlan:
                    vni, local, peers = b.vxlan
                    self.ledger.add("link", b.vxlan_device)
                    iplib.ensure_vxlan(b.vxlan_device, vni, local=local, master=b.name, mtu=b.mtu)
                    iplib.sync_vxlan_fdb(b.vxlan_device, peers)
                if b.netns is not None:
                    iplib.sync_addresses(b.name, b.addresses, b.netns)
                if b.uplink:  # (the interface is the host's: never in the ledger, never removed)
                    iplib.set_link(b.uplink, master=b.name, mtu=b.mtu, up=True)
                bridges_ok.add(b.name)
            except Exception as e:  # noqa: BLE001
                res.fail(f"bridge {b.name}", e)

        for t in p.taps:
            if t.bridge not in bridges_ok:
                continue
            link = iplib.get_link(t.device)
            if link is None:
                continue  # not plugged (yet): the port stays DOWN
            try:
                iplib.set_link(t.device, master=t.bridge, mtu=t.mtu, up=True, current=link)
                res.plugged.add(t.port_id)
            except Exception as e:  # noqa: BLE001
                res.fail(f"tap {t.device}", e)

        self._sync_dhcp(p, bridges_ok, res)
        self._sync_routers(p, bridges_ok, res)
        self._sync_secgroups(p, res)
        self._remove_stale(p, res)
        return res

    def _let_dnsmasq_in(self) -> None:
        """dnsmasq re-reads its hosts and options files as ``nobody``: it must be able to
        pass the (0700) state directory and those above it (a node's is nested). Each gets a
        search-only ACL entry (it can list nothing, and reads only the DHCP files, which
        are 0644), and ``dhcp/`` is 0711."""
        d = Path(self.state_dir) / "dhcp"
        d.mkdir(parents=True, exist_ok=True)
        if stat.S_IMODE(d.stat().st_mode) != 0o711:
            os.chmod(d, 0o711)
        fsacl.let_pass(self.state_dir, DNSMASQ_USER)  # (and the directories above it)

    def _sync_dhcp(self, p: planlib.Plan, bridges_ok: set[str], res: Result) -> None:
        if p.dhcp:
            try:
                self._let_dnsmasq_in()
            except Exception as e:  # noqa: BLE001
                res.fail("DHCP files", e)
        wanted = {n.id for n in p.dhcp}
        for stale in self._dhcp_networks() - wanted:
            try:
                dhcp.delete(stale, self.state_dir)
                self.ledger.discard("netns", dhcp.NS_PREFIX + stale)
            except Exception as e:  # noqa: BLE001
                res.fail(f"DHCP of network {stale} (removing)", e)
        for net in p.dhcp:
            if net.bridge not in bridges_ok:
                continue
            try:
                self.ledger.add("netns", net.namespace)
                what = dhcp.sync(net, self.state_dir)
                if what not in ("unchanged",):
                    log.info("DHCP of network %s: %s", net.id, what)
                res.plugged.add(p.dhcp_ports[net.id])
            except Exception as e:  # noqa: BLE001
                res.fail(f"DHCP of network {net.id}", e)

    def _dhcp_networks(self) -> set[str]:
        """Networks with DHCP state of ours: our qdhcp namespaces and our DHCP files."""
        ids = {n[len(dhcp.NS_PREFIX):] for n in self.ledger.names("netns") if n.startswith(dhcp.NS_PREFIX)}
        d = Path(self.state_dir) / "dhcp"
        if d.is_dir():
            ids |= {x.name for x in d.iterdir() if x.is_dir()}
        return ids

    def _sync_routers(self, p: planlib.Plan, bridges_ok: set[str], res: Result) -> None:
        wanted = {r.id for r in p.routers}
        for ns in sorted(self.ledger.names("netns")):
            if ns.startswith(router.NS_PREFIX) and ns[len(router.NS_PREFIX):] not in wanted:
                try:
                    router.delete(ns[len(router.NS_PREFIX):])
                    self.ledger.discard("netns", ns)
                    log.info("removed router namespace %s", ns)
                except Exception as e:  # noqa: BLE001
                    res.fail(f"router namespace {ns} (removing)", e)
        for spec in p.routers:
            ports = [*spec.interfaces, *([spec.gateway] if spec.gateway else [])]
            spec_ok = router.RouterSpec(
                id=spec.id, interfaces=[i for i in spec.interfaces if i.bridge in bridges_ok],
                gateway=spec.gateway if spec.gateway and spec.gateway.bridge in bridges_ok else None,
                enable_snat=spec.enable_snat, routes=spec.routes,
                floating_ips=spec.floating_ips if spec.gateway and spec.gateway.bridge in bridges_ok else [])
            # a route whose next hop is on a missing interface would fail: only connected ones
            try:
                self.ledger.add("netns", spec.namespace)
                router.sync(spec_ok)
                res.plugged |= {x.id for x in ports if x.bridge in bridges_ok}
            except Exception as e:  # noqa: BLE001
                res.fail(f"router {spec.id}", e)

    def _sync_secgroups(self, p: planlib.Plan, res: Result) -> None:
        try:
            if p.sg_ports:
                for family, name in ROOT_TABLES:
                    self.ledger.add("nft", f"{family} {name}")
                secgroups.sync(p.sg_ports, p.remote_groups)
            elif self.ledger.names("nft"):
                self._delete_tables()
        except Exception as e:  # noqa: BLE001
            res.fail("security groups", e)

    def _delete_tables(self) -> None:
        for item in sorted(self.ledger.names("nft")):
            family, name = item.split(" ", 1)
            nft.delete_table(family, name)
            self.ledger.discard("nft", item)

    def _remove_stale(self, p: planlib.Plan, res: Result) -> None:
        wanted_links = {b.name for b in p.bridges if b.netns is None}
        wanted_links |= {b.vxlan_device for b in p.bridges if b.netns is None and b.vxlan}
        links = self.ledger.names("link")
        # VXLAN devices first: a bridge is empty once its VXLAN device is gone
        for name in sorted(links - wanted_links, key=lambda n: not n.startswith("vxlan-")):
            try:
                link = iplib.get_link(name)
                if link is not None and iplib.link_kind(link) == "bridge":
                    ports = [x for x in _slaves(name)]
                    if ports:
                        # a guest is still plugged in: the bridge goes when it does
                        log.info("bridge %s is no longer needed but %s are on it", name, ", ".join(ports))
                        continue
                iplib.delete_link(name)
                self.ledger.discard("link", name)
            except Exception as e:  # noqa: BLE001
                res.fail(f"device {name} (removing)", e)
        wanted_ns = set(p.external_namespaces)
        for ns in sorted(self.ledger.names("netns")):
            if ns.startswith(planlib.EXTERNAL_NS_PREFIX) and ns not in wanted_ns:
                try:
                    iplib.delete_netns(ns)
                    self.ledger.discard("netns", ns)
                except Exception as e:  # noqa: BLE001
                    res.fail(f"namespace {ns} (removing)", e)

    # -- everything ---------------------------------------------------------------

    def purge(self) -> dict[str, int]:
        """Remove every kernel object this cloud made on this host (``down --purge``):
        dnsmasq processes, namespaces (and with them every device and process inside),
        taps left on our bridges, our bridges and VXLAN devices, our nftables tables."""
        done = {"dnsmasq": 0, "namespaces": 0, "devices": 0, "nft tables": 0}
        d = Path(self.state_dir) / "dhcp"
        if d.is_dir():
            for net in sorted(x.name for x in d.iterdir() if x.is_dir()):
                if dhcp.stop(dhcp.files_for(self.state_dir, net)):
                    done["dnsmasq"] += 1
        for ns in sorted(self.ledger.names("netns")):
            if iplib.delete_netns(ns):
                done["namespaces"] += 1
            self.ledger.discard("netns", ns)
        links = self.ledger.names("link")
        for name in sorted(links, key=lambda n: not n.startswith("vxlan-")):
            link = iplib.get_link(name)
            if link is not None and iplib.link_kind(link) == "bridge":
                for dev in _slaves(name):
                    if dev.startswith("tap") and iplib.delete_link(dev):
                        done["devices"] += 1
            if iplib.delete_link(name):
                done["devices"] += 1
            self.ledger.discard("link", name)
        n = len(self.ledger.names("nft"))
        self._delete_tables()
        done["nft tables"] = n
        return done


def _slaves(bridge: str) -> list[str]:
    try:
        return sorted(os.listdir(f"/sys/class/net/{bridge}/brif"))
    except OSError:
        return []
