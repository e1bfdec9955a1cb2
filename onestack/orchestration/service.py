"""How the orchestration service plugs into onestack: set-up, the engine and the ASGI app.

The API (any worker) writes stack rows and casts to the engine over the bus (topic
``orchestration.engine``); the engine runs in the controller only (``start``), so
``server.workers`` API processes share one engine.
"""

from __future__ import annotations

from onestack.common import db
from onestack.config import Config

NAME = "orchestration"
PREFIX = "/orchestration"
CATALOG = {"type": "orchestration", "name": "heat", "description": "Orchestration (Heat v1)",
           "path": "/v1/$(project_id)s"}
SERVICE_USER = "heat"
ROLES = ["heat_stack_owner"]


def version() -> str:
    return "v1"


def setup(conf: Config) -> None:
    from onestack.orchestration import policies, resources, settings, stacks  # noqa: F401  (types register)

    db.upgrade("orchestration")
    settings.configure(conf)
    policies.configure(conf.policy_dir)
    stacks.configure(conf)  # the credentials the domain and the engine act with


def start(conf: Config) -> None:
    """The controller's part: the engine, served on the bus (after bootstrap made ``heat``)."""
    from onestack.orchestration.engine import runtime

    runtime.start(conf)


def app():
    from onestack.orchestration.api import build

    return build()
