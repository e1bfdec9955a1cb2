"""Agent records and who hosts what: the network domain's view of its agents.

Agents report themselves through the conductor (``conductor.report``); the API
shows, updates and deletes the records, and both ask the same questions here:
is an agent alive (its last heartbeat younger than ``network.agent_down_time``)
and which host serves DHCP or routers (the first alive, enabled agent of that
type, in the order the agents first reported).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from onestack.common import bus
from onestack.network import core

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # Neutron's agent timestamps

# agent_type -> (binary, topic, has an availability zone)
AGENT_TYPES = {
    "DHCP agent": ("neutron-dhcp-agent", "dhcp_agent", True),
    "L3 agent": ("neutron-l3-agent", "l3_agent", True),
    "Linux bridge agent": ("neutron-linuxbridge-agent", "N/A", False),
    "Metadata agent": ("neutron-metadata-agent", "N/A", False),
}
DHCP_OWNER = "network:dhcp"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def heartbeat_time() -> str:
    """Now, as a heartbeat timestamp."""
    return _now().strftime(TIME_FORMAT)


class Settings:
    down_time = 75  # seconds without a heartbeat before an agent is dead


def alive(doc: dict, at: datetime | None = None) -> bool:
    try:
        beat = datetime.strptime(doc.get("heartbeat_timestamp") or "", TIME_FORMAT)
    except ValueError:
        return False
    return (at or _now()) - beat <= timedelta(seconds=Settings.down_time)


def agents(s) -> list[dict]:
    return core.docs(s, "agent")


def agent_view(doc: dict) -> dict:
    """The Neutron agent resource (``alive`` computed from the heartbeat)."""
    keys = ("id", "agent_type", "binary", "topic", "host", "availability_zone", "admin_state_up",
            "heartbeat_timestamp", "started_at", "created_at", "configurations", "description",
            "resources_synced")
    out = {k: doc.get(k) for k in keys}
    out["created_at"] = str(out.get("created_at") or "").replace("T", " ").rstrip("Z") or None
    out["alive"] = alive(doc)
    return out


def hosting(s, agent_type: str, asking: str | None = None) -> str | None:
    """The host that serves DHCP (``DHCP agent``) or routers (``L3 agent``). The host
    ``asking`` is alive whatever its last heartbeat says: it is calling us (a late
    heartbeat must not tear down its routers)."""
    live = [d for d in agents(s) if d["agent_type"] == agent_type and d.get("admin_state_up", True)
            and (alive(d) or d["host"] == asking)]
    live.sort(key=lambda d: (d.get("created_at") or "", d["host"]))
    return live[0]["host"] if live else None


def dhcp_device_id(host: str, network_id: str) -> str:
    """Neutron's device_id of a DHCP port: ``dhcp<uuid5(host)>-<network id>``."""
    return f"dhcp{uuid.uuid5(uuid.NAMESPACE_DNS, host)}-{network_id}"


def notify(action: str, payload: dict) -> None:
    """An admin changed an agent record (``network.agent.update|delete``): it may move DHCP
    or routers, so the agents hear of it. (Heartbeats are not notified.)"""
    bus.get().notify(f"network.agent.{action}", payload, publisher="network")
