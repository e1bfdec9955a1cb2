"""How the network service plugs into onestack: set-up, the conductor and agent, ASGI app."""

from __future__ import annotations

import logging
import threading

from onestack.common import db
from onestack.common.clients import ServiceAuth
from onestack.common.limits import Limits
from onestack.config import Config
from onestack.network import conductor, core

log = logging.getLogger(__name__)

NAME = "network"
PREFIX = "/networking"
CATALOG = {"type": "network", "name": "neutron", "description": "Networking Service (Neutron v2.0)"}
SERVICE_USER = "neutron"


def version() -> str:
    return "v2.0"


def setup(conf: Config) -> None:
    db.upgrade("network")
    n = conf.network
    quotas = {"network": n.quota_network, "subnet": n.quota_subnet, "subnetpool": n.quota_subnetpool,
              "port": n.quota_port, "router": n.quota_router, "floatingip": n.quota_floatingip,
              "security_group": n.quota_security_group, "security_group_rule": n.quota_security_group_rule,
              "rbac_policy": n.quota_rbac_policy}
    core.configure(core.Settings(default_mtu=n.default_mtu, quotas=quotas), conf.policy_dir,
                   Limits(lambda: ServiceAuth.for_service(conf, SERVICE_USER), "network",
                          {k: k for k in quotas}, quotas))
    with db.transaction() as s:
        if n.public_cidr:
            core.make_public_network(s, n.public_cidr)
        core.backfill_rbac(s)  # "*" RBAC policies of networks shared or external before they existed
    conductor.serve(n.agent_down_time)


def start(conf: Config) -> None:
    """After bootstrap: the registered limits (the quota defaults) and the demo topology
    (it needs the demo project)."""
    core.State.limits.register_in_background(then=core.adopt_legacy_quotas)
    if conf.network.demo_topology:
        try:
            _demo_topology(conf)
        except Exception as e:  # noqa: BLE001 (a cloud without the demo network still works)
            log.warning("demo topology not made: %s", e)


def start_node(conf: Config, roles: set[str]) -> None:
    """The network agent, on network nodes and on compute nodes (it is also their L2 agent:
    the bridges and VXLAN tunnels the guests' taps join, and their security groups)."""
    from onestack.network import agent

    if roles & {"network", "compute"}:
        agent.start(conf)


def _demo_topology(conf: Config) -> None:
    with db.session() as s:
        if s.get(core.m.Resource, "demo-topology") is not None:
            return
    project_id = _project_id(conf, "demo")
    if project_id is None:
        log.warning("demo topology not made: identity has no project demo")
        return
    with db.transaction() as s:
        router = core.make_demo_topology(s, project_id, conf.network.private_cidr)
    if router is not None:
        log.info("made the demo topology: network private (%s), router router1", conf.network.private_cidr)


def _project_id(conf: Config, name: str) -> str | None:
    """A project's id, asked of the identity API as the neutron service user. The port is
    not open yet at start-up, so the request goes to the identity app in-process (an
    ASGI transport): the same REST call, without the socket."""
    import asyncio

    import httpx

    from onestack.common.credentials import load_credentials
    from onestack.identity import service as identity

    creds = load_credentials(conf).get(SERVICE_USER)
    if not creds:
        raise RuntimeError(f"no credentials for the {SERVICE_USER} service user")
    app = identity.app()

    async def ask() -> str | None:
        transport = httpx.ASGITransport(app=app, root_path=identity.PREFIX)
        async with httpx.AsyncClient(transport=transport, base_url="http://onestack") as c:
            body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": SERVICE_USER, "domain": {"id": "default"}, "password": creds["password"]}}},
                "scope": {"project": {"name": creds.get("project", "service"), "domain": {"id": "default"}}}}}
            r = await c.post(f"{identity.PREFIX}/v3/auth/tokens", json=body)
            if r.status_code != 201:
                raise RuntimeError(f"{SERVICE_USER} cannot authenticate ({r.status_code})")
            r = await c.get(f"{identity.PREFIX}/v3/projects", params={"name": name, "domain_id": "default"},
                            headers={"X-Auth-Token": r.headers["X-Subject-Token"]})
            r.raise_for_status()
            projects = r.json()["projects"]
            return projects[0]["id"] if projects else None

    out: dict = {}

    def run() -> None:  # its own thread: start-up may already be inside an event loop
        try:
            out["id"] = asyncio.run(ask())
        except Exception as e:  # noqa: BLE001
            out["error"] = e

    t = threading.Thread(target=run, name="network-demo-topology")
    t.start()
    t.join(60)
    if "error" in out:
        raise out["error"]
    return out.get("id")


def stop_node() -> None:
    from onestack.network import agent

    agent.stop()


def app():
    from onestack.network.api import build

    return build()
