"""The network agent: makes the Networking API's state real on this host.

``plan`` turns the desired state (from the conductor, over the bus) into the Linux
data plane library's specs, ``dataplane`` applies them (and owns the ledger of what it
made), ``runner`` is the loop. This module starts and stops it in the all-in-one
process, purges its kernel objects (``onestack down --purge``) and finds its
namespaces (``onestack netns``).
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import shutil
import socket
from pathlib import Path

from onestack.network import metadata_secret
from onestack.network.agent import plan
from onestack.network.agent.dataplane import Dataplane, Ledger, ledger_path
from onestack.network.agent.runner import AgentSettings, NetworkAgent

log = logging.getLogger(__name__)

TOOLS = ("ip", "bridge", "nft", "dnsmasq", "sysctl")
LOCK_FILE = "/run/onestack/network-agent.lock"

__all__ = ["AgentSettings", "NetworkAgent", "Dataplane", "Ledger", "plan", "start", "stop", "purge",
           "host_name", "namespaces", "resolve_namespace", "why_not"]

_running: NetworkAgent | None = None
_lock_fd: int | None = None


def host_name(conf) -> str:
    """This host's name for port bindings: ``compute.host`` (so compute and network
    agree), else the machine's hostname, as Nova and Neutron default to."""
    compute = getattr(conf, "compute", None)
    return (getattr(compute, "host", "") if compute is not None else "") or socket.gethostname()


def metadata_url(conf) -> str:
    if conf.network.metadata_url:
        return conf.network.metadata_url
    host = conf.server.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{conf.scheme}://{host}:{conf.server.port}/metadata"  # (https: `up --tls`)


def why_not(conf) -> str | None:
    """Why the agent cannot run here (None: it can)."""
    if not conf.network.agent:
        return "network.agent is false"
    if os.geteuid() != 0:
        return "not running as root (namespaces, bridges and nftables need it)"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"missing tools: {', '.join(missing)} (scripts/install.sh installs them)"
    return None


def _take_host_lock(state_dir: Path) -> str | None:
    """One network agent per host: the kernel objects (the external namespace, the
    security group tables, VXLAN VNIs) are host-wide. None when we hold the lock."""
    global _lock_fd
    if _lock_fd is not None:
        return None
    os.makedirs(os.path.dirname(LOCK_FILE), mode=0o755, exist_ok=True)
    fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
        os.close(fd)
        return f"another onestack network agent runs on this host ({holder or 'unknown'})"
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}, state {state_dir}".encode(), 0)
    _lock_fd = fd
    return None


def _release_host_lock() -> None:
    global _lock_fd
    if _lock_fd is not None:
        os.close(_lock_fd)
        _lock_fd = None


def start(conf) -> NetworkAgent | None:
    """Start the agent in this process, or say in one log line why not."""
    global _running
    if _running is not None:  # started before in this process: replace it
        _running.stop()
        _running = None
    reason = why_not(conf)
    if reason is None:
        reason = _take_host_lock(conf.state_dir)
    if reason is not None:
        log.info("network agent not started: %s; ports stay DOWN and no namespace is made", reason)
        return None
    n = conf.network
    settings = AgentSettings(
        host=host_name(conf), state_dir=str(conf.state_dir), local_ip=n.local_ip,
        availability_zone=n.availability_zone, metadata_url=metadata_url(conf),
        metadata_secret=metadata_secret.get(conf), report_interval=n.agent_report_interval,
        resync_interval=n.resync_interval, physical_interfaces=plan.parse_mappings(n.physical_interface_mappings))
    _running = NetworkAgent(settings).start()
    atexit.register(stop)
    log.info("network agent started on host %s (state %s)", settings.host, settings.state_dir)
    return _running


def running() -> NetworkAgent | None:
    return _running


def stop() -> None:
    global _running
    if _running is not None:
        _running.stop()
        _running = None
    _release_host_lock()


def purge(state_dir: str | os.PathLike) -> dict[str, int]:
    """Remove every kernel object the cloud of ``state_dir`` made on this host."""
    return Dataplane(state_dir).purge()


def namespaces(state_dir: str | os.PathLike) -> list[dict]:
    """This cloud's namespaces that exist: name, kind and what they serve."""
    out = []
    for ns in sorted(Ledger(ledger_path(state_dir)).names("netns")):
        if not os.path.exists(f"/run/netns/{ns}"):
            continue
        if ns.startswith("qrouter-"):
            kind, ident = "router", ns[len("qrouter-"):]
        elif ns.startswith("qdhcp-"):
            kind, ident = "dhcp", ns[len("qdhcp-"):]
        else:
            kind, ident = "external", ns[len(plan.EXTERNAL_NS_PREFIX):]
        out.append({"name": ns, "kind": kind, "id": ident})
    return out


def resolve_namespace(state_dir: str | os.PathLike, name: str) -> str | None:
    """``public`` -> ``onestack-public``; a full name of one of ours as it is."""
    ours = {x["name"] for x in namespaces(state_dir)}
    for candidate in (name, plan.EXTERNAL_NS_PREFIX + name, "qrouter-" + name, "qdhcp-" + name):
        if candidate in ours:
            return candidate
    return None
