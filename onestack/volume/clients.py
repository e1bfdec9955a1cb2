"""The volume service's clients of other services, over REST with the ``cinder`` token:
the image API (volumes from images, upload-to-image) and the compute API (its
``os-server-external-events``, 2.51, tell a guest a volume grew). Made once at start
(they need the service user bootstrap creates); the API and the volume agent use them.
"""

from __future__ import annotations

import httpx

from onestack.common.clients import RestClient, ServiceAuth


class Clients:
    def __init__(self, auth: ServiceAuth):
        self.auth = auth
        http = httpx.Client(timeout=60)  # one connection pool and TLS context (each costs ~0.08 s to make)
        self.image = RestClient(auth, "/image", http=http)
        self.compute = RestClient(auth, "/compute/v2.1", http=http,
                                  headers={"OpenStack-API-Version": "compute 2.51", "X-OpenStack-Nova-API-Version": "2.51"})


current: Clients | None = None


def images() -> RestClient | None:
    """The image API (None: the volume service's clients are not made, e.g. no image service)."""
    return current.image if current is not None else None


def configure(conf) -> Clients:
    global current
    current = Clients(ServiceAuth.for_service(conf, "cinder"))
    return current
