"""One ASGI app for every API: each service's app mounted under its path prefix.

``GET /`` lists the services (a browser is sent on to the dashboard, ``/dashboard``). Building the app configures the database, runs
each service's migrations and set-up, and applies the bootstrap, so a ready
app is a working cloud.
"""

from __future__ import annotations

import gc
import json
import logging

from onestack import __version__, services
from onestack.common import bus, db
from onestack.common.http import RequestIdMiddleware
from onestack.config import Config
from onestack.dashboard import service as dashboard
from onestack.identity import bootstrap

log = logging.getLogger(__name__)


class PrefixDispatcher:
    """Route by path prefix: ``/identity`` and ``/identity/...`` go to identity."""

    def __init__(self, mounts: dict[str, object], root):
        # longest prefix first, so /volume never shadows /volume-something
        self.mounts = sorted(mounts.items(), key=lambda kv: -len(kv[0]))
        self.root = root

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):  # websockets: the console proxies
            path = scope["path"]
            for prefix, app in self.mounts:
                if path == prefix or path.startswith(prefix + "/"):
                    # Starlette routes on path minus root_path, and builds URLs
                    # (links) from both: so the path stays whole.
                    child = dict(scope)
                    child["root_path"] = scope.get("root_path", "") + prefix
                    if path == prefix:
                        child["path"] = prefix + "/"
                    return await app(child, receive, send)
            return await self.root(scope, receive, send)
        if scope["type"] == "lifespan":
            # our set-up happens before serving; just acknowledge the protocol
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        return None


def _root_app(conf: Config, mods: list):
    listing = {
        "onestack": {"version": __version__},
        "services": [
            {
                "name": mod.NAME,
                "type": mod.CATALOG["type"],
                "path": mod.PREFIX,
                "version": mod.version(),
                "url": conf.public_url + mod.PREFIX,
            }
            for mod in mods
        ],
        "dashboard": conf.public_url + dashboard.PREFIX + "/",
    }
    body = json.dumps(listing).encode()

    async def root(scope, receive, send):
        if scope["path"] in ("/", ""):
            accept = dict(scope.get("headers", [])).get(b"accept", b"")
            if b"text/html" in accept:  # a browser: the way in is the dashboard
                await send({"type": "http.response.start", "status": 302,
                            "headers": [(b"location", (dashboard.PREFIX + "/").encode())]})
                await send({"type": "http.response.body", "body": b""})
                return
            status, payload = 200, body
        else:
            status = 404
            payload = json.dumps({"error": {"code": 404, "title": "Not Found",
                                            "message": f"No service at {scope['path']}."}}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})

    return root


def create_app(conf: Config, roles: frozenset[str] = services.ALL_IN_ONE, api_only: bool = False):
    """Configure everything and return the ASGI app (raises on a set-up error). The
    controller's parts always run; the agents of ``roles`` beside them (all of them in
    the all-in-one cloud; none on a controller of a multi-node cloud). ``api_only``: an
    API worker's app (``server.workers``): the main process has bootstrapped the cloud and
    runs the conductors and agents; the worker only readies what its handlers use."""
    db.configure(conf.database_url, conf.database.busy_timeout)
    bus.configure(conf.bus.backend, conf.bus.url)
    mods = services.load()
    for mod in mods:
        mod.setup(conf)
    dashboard.setup(conf)  # (a web console, not an API: no catalog entry, no service user)
    if api_only:
        for mod in mods:
            if hasattr(mod, "start_api"):
                mod.start_api(conf)
    else:
        bootstrap.run(conf, mods)
        for mod in mods:  # conductors and agents need the service users bootstrap made
            if hasattr(mod, "start"):
                mod.start(conf)
        for mod in mods:
            if hasattr(mod, "start_node"):
                mod.start_node(conf, set(roles))
    mounts = {}
    for mod in mods:
        mounts[mod.PREFIX] = mod.app()
        mounts.update(getattr(mod, "extra_mounts", dict)())  # e.g. compute's /metadata
    mounts[dashboard.PREFIX] = dashboard.app()
    app = RequestIdMiddleware(PrefixDispatcher(mounts, _root_app(conf, mods)), hsts_max_age=conf.tls.hsts_max_age)
    # what set-up made lives as long as the process: kept out of the collector's full
    # passes, which otherwise walk it all again and again (~150 ms each at 1,000 simulated hosts)
    gc.freeze()
    return app
