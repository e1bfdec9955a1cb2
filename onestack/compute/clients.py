"""Compute's clients of the other services (image, network, placement, volume), over REST.

Made once at start (they need the service user bootstrap creates). A call made
on behalf of a user passes the user's token (``token=ctx.auth_token``), so the
other service applies its own policy to that user; work the service does for
itself (binding ports to hosts, claiming resources) uses the ``nova`` token.
"""

from __future__ import annotations

import logging

from onestack.common import errors
from onestack.common.clients import RestClient, ServiceAuth

log = logging.getLogger(__name__)


class Clients:
    def __init__(self, auth: ServiceAuth):
        self.auth = auth
        self.image = RestClient(auth, "/image")
        self.network = RestClient(auth, "/networking")
        self.placement = RestClient(auth, "/placement",
                                    headers={"OpenStack-API-Version": "placement 1.28"})
        # Cinder's v3 attachments (3.27) with os-complete (3.44); project-less URLs
        self.volume = RestClient(auth, "/volume/v3", headers={"OpenStack-API-Version": "volume 3.44"})


current: Clients | None = None


def get() -> Clients:
    if current is None:
        raise RuntimeError("compute clients are not configured (compute service not started)")
    return current


def release_allocations(consumer: str) -> None:
    """Give back what a server holds in Placement (best effort: a failure is logged)."""
    try:
        get().placement.delete(f"/allocations/{consumer}", ok=(204, 404))
    except errors.ApiError as e:
        log.warning("could not release the allocations of %s: %s", consumer, e.message)


def configure(conf) -> Clients:
    global current
    current = Clients(ServiceAuth.for_service(conf, "nova"))
    return current
