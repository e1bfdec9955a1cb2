"""How the alarming service plugs into onestack: set-up, the evaluator and the ASGI app.

The API (any worker) keeps alarms in the database; the evaluator and the event listener
run in the controller only (``start``), so API workers share one evaluator.
"""

from __future__ import annotations

from onestack.common import db
from onestack.config import Config

NAME = "alarming"
PREFIX = "/alarming"
CATALOG = {"type": "alarming", "name": "aodh", "description": "Alarming (Aodh v2)", "path": ""}
SERVICE_USER = "aodh"


def version() -> str:
    return "v2"


def setup(conf: Config) -> None:
    from onestack.alarming import credentials, policies, settings

    db.upgrade("alarming")
    settings.configure(conf)
    policies.configure(conf.policy_dir)
    credentials.configure(conf)


def start(conf: Config) -> None:
    """The controller's part: the evaluator (after bootstrap made ``aodh``)."""
    from onestack.alarming import evaluator

    evaluator.start()


def app():
    from onestack.alarming.api import build

    return build()
