"""The services this build contains, in start-up order.

Each is a module with NAME, PREFIX, CATALOG, SERVICE_USER, version(), setup(conf)
and app(). Only services listed here get a catalog entry: no endpoint is ever
advertised for something this build does not implement.
"""

from __future__ import annotations

import importlib

MODULES = [
    "onestack.identity.service",
    "onestack.image.service",
    "onestack.placement.service",
    "onestack.object_store.service",
    "onestack.network.service",
    "onestack.compute.service",
    "onestack.volume.service",
]


def load() -> list:
    return [importlib.import_module(name) for name in MODULES]
