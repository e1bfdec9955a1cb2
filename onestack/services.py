"""The services this build contains, in start-up order, and the roles of a node.

Each is a module with NAME, PREFIX, CATALOG, SERVICE_USER, version(), setup(conf)
and app(); optionally start(conf) (the controller's moving parts: conductors,
schedulers) and start_node(conf, roles) (a node's agents). Only services listed
here get a catalog entry: no endpoint is ever advertised for something this build
does not implement.
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
    "onestack.orchestration.service",
    "onestack.metric.service",
    "onestack.alarming.service",
]

# What a machine of the cloud runs (the book's chapter 3): the controller has the APIs,
# the database, the message queue, the schedulers and conductors; the others run agents.
ROLES = ("controller", "compute", "network", "storage")
ALL_IN_ONE = frozenset(ROLES)


def load() -> list:
    return [importlib.import_module(name) for name in MODULES]


def parse_roles(text: str) -> frozenset[str]:
    """``compute,network`` -> the roles; ``all`` (or empty) is every role. ValueError names
    an unknown one."""
    words = {w.strip() for w in text.replace(" ", ",").split(",") if w.strip()}
    if not words or words == {"all"}:
        return ALL_IN_ONE
    unknown = sorted(words - set(ROLES))
    if unknown:
        raise ValueError(f"unknown role(s) {', '.join(unknown)}: choose from {', '.join(ROLES)} or all")
    return frozenset(words)
