"""The microversions this API serves, as data: each feature names the version
that brought it (Placement's REST API version history). Views, schemas and
query parsers look features up here instead of comparing numbers inline."""

from __future__ import annotations

from onestack.common.microversion import Negotiator, Version


def V(text: str) -> Version:
    return Version.parse(text)


MIN = V("1.0")
MAX = V("1.39")
NEGOTIATOR = Negotiator("placement", MIN, MAX)

AGGREGATES = V("1.1")
RESOURCE_CLASSES = V("1.2")
MEMBER_OF = V("1.3")
RESOURCES_FILTER = V("1.4")
DELETE_INVENTORIES = V("1.5")
TRAITS = V("1.6")
RC_PUT_ENSURES = V("1.7")  # PUT /resource_classes/{name} creates or confirms, no body
PROJECT_USER_REQUIRED = V("1.8")
USAGES = V("1.9")
CANDIDATES = V("1.10")
ALLOCATIONS_LINK = V("1.11")
ALLOCATIONS_DICT = V("1.12")
POST_ALLOCATIONS = V("1.13")
NESTED = V("1.14")
CACHE_HEADERS = V("1.15")
CANDIDATES_LIMIT = V("1.16")
CANDIDATES_REQUIRED = V("1.17")  # and traits in provider summaries
PROVIDERS_REQUIRED = V("1.18")
AGGREGATES_GENERATION = V("1.19")
CREATE_RETURNS_PROVIDER = V("1.20")
CANDIDATES_MEMBER_OF = V("1.21")
FORBIDDEN_TRAITS = V("1.22")
ERROR_CODES = V("1.23")
MULTI_MEMBER_OF = V("1.24")
GRANULAR = V("1.25")
RESERVED_EQUALS_TOTAL = V("1.26")
SUMMARIES_ALL_CLASSES = V("1.27")
CONSUMER_GENERATION = V("1.28")
NESTED_CANDIDATES = V("1.29")
RESHAPER = V("1.30")
CANDIDATES_IN_TREE = V("1.31")
FORBIDDEN_AGGREGATES = V("1.32")
STRING_SUFFIXES = V("1.33")
MAPPINGS = V("1.34")
ROOT_REQUIRED = V("1.35")
SAME_SUBTREE = V("1.36")
REPARENT = V("1.37")
CONSUMER_TYPES = V("1.38")
ANY_TRAITS = V("1.39")
