"""How the dashboard plugs into onestack: its session table and its ASGI app at /dashboard.

Not an API: it has no catalog entry and no service user. Every call it makes is one of the
logged-in user's, with that user's token, to the public APIs (onestack/dashboard/backend.py).
"""

from __future__ import annotations

from onestack.common import db
from onestack.config import Config
from onestack.dashboard import backend, sessions, web

NAME = "dashboard"
PREFIX = "/dashboard"


def setup(conf: Config) -> None:
    db.upgrade("dashboard")
    sessions.configure(conf)
    backend.configure(conf)
    web.configure(conf)


def app():
    return web.build()
