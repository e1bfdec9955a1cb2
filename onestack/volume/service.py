"""How the volume service plugs into onestack: set-up, agents and ASGI app."""

from __future__ import annotations

import logging

from onestack.common import db
from onestack.config import Config

log = logging.getLogger(__name__)

NAME = "volume"
PREFIX = "/volume"
CATALOG = {"type": "block-storage", "name": "cinder", "description": "Block Storage (Cinder v3)",
           "path": "/v3/$(project_id)s"}
SERVICE_USER = "cinder"


def version() -> str:
    return "v3"


def setup(conf: Config) -> None:
    from onestack.volume import core, policies, settings

    db.upgrade("volume")
    settings.configure(conf)
    core.configure_limits(conf)
    policies.configure(conf.policy_dir)
    with db.transaction() as s:
        core.ensure_default_type(s)


def start(conf: Config) -> None:
    """After bootstrap (the cinder user exists): scheduler and conductor (the controller's part)."""
    from onestack.volume import core, runtime

    runtime.start(conf)
    core.quota_limits.register_in_background(then=core.adopt_legacy_quotas)  # the quota defaults, as registered limits


def start_api(conf: Config) -> None:
    """An API worker's part (``server.workers``): the clients its handlers use, no conductor."""
    from onestack.volume import clients

    clients.configure(conf)


def start_node(conf: Config, roles: set[str]) -> None:
    """A node's part: the volume agent of this host's backend, on nodes with the storage role."""
    from onestack.volume import runtime, settings

    if "storage" in roles:
        settings.configure(conf)
        runtime.start_agent(conf)


def stop_node() -> None:
    from onestack.volume import runtime

    runtime.current.stopping.set()


def app():
    from onestack.volume.api import build

    return build()
