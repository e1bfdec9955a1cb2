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
    policies.configure(conf.policy_dir)
    with db.transaction() as s:
        core.ensure_default_type(s)


def start(conf: Config) -> None:
    """After bootstrap (the cinder user exists): scheduler, conductor, this host's volume agent."""
    from onestack.volume import runtime

    runtime.start(conf)


def app():
    from onestack.volume.api import build

    return build()
