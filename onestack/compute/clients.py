"""Compute's clients of the other services (image, network, placement, volume), over REST.

Made once at start (they need the service user bootstrap creates). A call made
on behalf of a user passes the user's token (``token=ctx.auth_token``), so the
other service applies its own policy to that user; work the service does for
itself (binding ports to hosts, claiming resources) uses the ``nova`` token.
"""

from __future__ import annotations

from onestack.common.clients import RestClient, ServiceAuth


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


def configure(conf) -> Clients:
    global current
    current = Clients(ServiceAuth.for_service(conf, "nova"))
    return current
