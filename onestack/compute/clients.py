"""Compute's clients of the other services (image, network, placement, volume), over REST.

Made once at start (they need the service user bootstrap creates). A call made
on behalf of a user passes the user's token (``token=ctx.auth_token``), so the
other service applies its own policy to that user; work the service does for
itself (binding ports to hosts, claiming resources) uses the ``nova`` token.
Placement is reached only through ``PlacementClient``, the one place that knows
its wire format, microversion and generation-conflict retries.
"""

from __future__ import annotations

import logging

import httpx

from onestack.common import errors
from onestack.common.clients import RestClient, ServiceAuth
from onestack.placement.client import PlacementClient

log = logging.getLogger(__name__)


class Clients:
    def __init__(self, auth: ServiceAuth):
        self.auth = auth
        http = httpx.Client(timeout=60)  # one connection pool and TLS context (each costs ~0.08 s to make)
        self.image = RestClient(auth, "/image", http=http)
        self.network = RestClient(auth, "/networking", http=http)
        self.placement = PlacementClient(auth.base_url + "/placement", auth.token)
        # Cinder's v3 attachments (3.27) with os-complete (3.44); project-less URLs
        self.volume = RestClient(auth, "/volume/v3", headers={"OpenStack-API-Version": "volume 3.44"}, http=http)


current: Clients | None = None


def get() -> Clients:
    if current is None:
        raise RuntimeError("compute clients are not configured (compute service not started)")
    return current


def release_allocations(consumer: str) -> None:
    """Give back what a server holds in Placement (best effort: a failure is logged)."""
    try:
        get().placement.release(consumer)
    except errors.ApiError as e:
        log.warning("could not release the allocations of %s: %s", consumer, e.message)


def configure(conf) -> Clients:
    global current
    current = Clients(ServiceAuth.for_service(conf, "nova"))
    return current
