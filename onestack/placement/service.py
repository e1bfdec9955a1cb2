"""How the placement service plugs into onestack: set-up and ASGI app."""

from __future__ import annotations

from onestack.common import db
from onestack.config import Config
from onestack.placement import core

NAME = "placement"
PREFIX = "/placement"
CATALOG = {"type": "placement", "name": "placement", "description": "Placement API"}
SERVICE_USER = "placement"


def version() -> str:
    from onestack.placement.api.versions import MIN

    return str(MIN)


def setup(conf: Config) -> None:
    db.upgrade("placement")
    core.configure(conf.policy_dir)
    with db.transaction() as s:
        core.sync_standard(s)


def app():
    from onestack.placement.api import build

    return build()
