"""How the compute service plugs into onestack: set-up, agents and ASGI app."""

from __future__ import annotations

import logging

from onestack.common import db
from onestack.config import Config

log = logging.getLogger(__name__)

NAME = "compute"
PREFIX = "/compute"
CATALOG = {"type": "compute", "name": "nova", "description": "Compute Service (Nova v2.1)", "path": "/v2.1"}
SERVICE_USER = "nova"


def version() -> str:
    return "v2.1"


def setup(conf: Config) -> None:
    from onestack.compute import flavors, policies, quotas, settings

    db.upgrade("compute")
    settings.configure(conf)
    quotas.configure(conf)
    policies.configure(conf.policy_dir)
    with db.transaction() as s:
        flavors.ensure_defaults(s)


def start(conf: Config) -> None:
    """After bootstrap (service users exist): the scheduler and conductor (the controller's part)."""
    from onestack.compute import collector, metadata, quotas, runtime

    quotas.unified.register_in_background(then=quotas.adopt_legacy_quotas)  # the quota defaults, as registered limits
    metadata.configure(conf)
    rt = runtime.start(conf)
    collector.start_central(conf, rt.stopping)  # telemetry: floating IPs


def start_api(conf: Config) -> None:
    """An API worker's part (``server.workers``): what its handlers use, no conductor."""
    from onestack.compute import clients, metadata

    metadata.configure(conf)
    clients.configure(conf)


def start_node(conf: Config, roles: set[str]) -> None:
    """A node's part: the compute agent of this host, on nodes with the compute role."""
    from onestack.compute import collector, runtime, settings

    if "compute" in roles:
        settings.configure(conf)  # (a node without the controller role ran no setup)
        rt = runtime.start_agents(conf)
        collector.start_guests(conf, rt.agents, rt.stopping)  # telemetry: the guests' counters


def extra_mounts() -> dict:
    """Beside the API: the metadata service (behind the network's proxies) and the console proxies."""
    from onestack.compute import consoles, metadata

    return {"/metadata": metadata.metadata_app(), **consoles.extra_mounts()}


def stop_node() -> None:
    from onestack.compute import runtime

    runtime.current.stop()


def app():
    from onestack.compute.api import build

    return build()
