"""How the network service plugs into onestack: set-up and ASGI app."""

from __future__ import annotations

from onestack.common import db
from onestack.config import Config
from onestack.network import core

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
              "rbac_policy": 10}
    core.configure(core.Settings(default_mtu=n.default_mtu, quotas=quotas), conf.policy_dir)
    if n.public_cidr:
        with db.transaction() as s:
            core.make_public_network(s, n.public_cidr)


def app():
    from onestack.network.api import build

    return build()
