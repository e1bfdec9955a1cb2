"""The standard resource classes and traits, as os-resource-classes and os-traits
define them (the libraries Placement itself syncs from), and the rules for
custom names."""

from __future__ import annotations

import re

import os_resource_classes
import os_traits

RESOURCE_CLASSES: list[str] = list(os_resource_classes.STANDARDS)
TRAITS: list[str] = sorted(os_traits.get_traits())
TRAIT_SET = frozenset(TRAITS)
RC_SET = frozenset(RESOURCE_CLASSES)

CUSTOM_ID_START = 10000  # custom resource classes are numbered from here, as in Placement
SHARES_TRAIT = "MISC_SHARES_VIA_AGGREGATE"  # a provider that shares its inventory with its aggregates

CUSTOM_NAME = re.compile(r"^CUSTOM_[A-Z0-9_]+$")
ANY_NAME = re.compile(r"^[A-Z0-9_]+$")


def is_custom(name: str) -> bool:
    return bool(CUSTOM_NAME.match(name)) and len(name) <= 255
