"""Request body schemas, with a named variant per microversion where the body changed.

``pick(variants, version)`` takes the variant of the newest version not above the
request's, so each change is one entry here and nowhere else."""

from __future__ import annotations

import copy

from onestack.common.microversion import Version
from onestack.placement.api import versions as mv
from onestack.placement.capacity import MAX_INT, MAX_RATIO


def pick(variants: dict[Version, dict], version: Version) -> dict:
    best = max(v for v in variants if v <= version)
    return variants[best]


UUID_RE = "^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
UUID = {"type": "string", "pattern": UUID_RE}
UUID_OR_NULL = {"type": ["string", "null"], "pattern": UUID_RE}
NAME = {"type": "string", "pattern": "^[A-Z0-9_]+$", "maxLength": 255}
CUSTOM_NAME = {"type": "string", "pattern": "^CUSTOM_[A-Z0-9_]+$", "maxLength": 255}
GENERATION = {"type": "integer"}
ID_STRING = {"type": "string", "minLength": 1, "maxLength": 255}
CONSUMER_TYPE = {"type": "string", "pattern": "^[A-Z0-9_]+$", "minLength": 1, "maxLength": 255}

# --- resource providers ---------------------------------------------------------------

_PROVIDER_NAME = {"type": "string", "minLength": 1, "maxLength": 200}
_CREATE = {"type": "object", "properties": {"name": _PROVIDER_NAME, "uuid": UUID},
           "required": ["name"], "additionalProperties": False}
_CREATE_NESTED = copy.deepcopy(_CREATE)
_CREATE_NESTED["properties"]["parent_provider_uuid"] = UUID_OR_NULL
CREATE_PROVIDER = {mv.MIN: _CREATE, mv.NESTED: _CREATE_NESTED}

_UPDATE = {"type": "object", "properties": {"name": _PROVIDER_NAME}, "required": ["name"],
           "additionalProperties": False}
_UPDATE_NESTED = copy.deepcopy(_UPDATE)
_UPDATE_NESTED["properties"]["parent_provider_uuid"] = UUID_OR_NULL
UPDATE_PROVIDER = {mv.MIN: _UPDATE, mv.NESTED: _UPDATE_NESTED}

# --- inventories ----------------------------------------------------------------------------

INVENTORY_FIELDS = {
    "total": {"type": "integer", "minimum": 1, "maximum": MAX_INT},
    "reserved": {"type": "integer", "minimum": 0, "maximum": MAX_INT},
    "min_unit": {"type": "integer", "minimum": 1, "maximum": MAX_INT},
    "max_unit": {"type": "integer", "minimum": 1, "maximum": MAX_INT},
    "step_size": {"type": "integer", "minimum": 1, "maximum": MAX_INT},
    "allocation_ratio": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": MAX_RATIO},
}
_INVENTORY = {"type": "object", "properties": INVENTORY_FIELDS, "required": ["total"],
              "additionalProperties": False}
INVENTORIES_OBJECT = {"type": "object", "patternProperties": {"^[A-Z0-9_]+$": _INVENTORY},
                      "additionalProperties": False}
SET_INVENTORIES = {
    "type": "object",
    "properties": {"resource_provider_generation": GENERATION, "inventories": INVENTORIES_OBJECT},
    "required": ["resource_provider_generation", "inventories"],
    "additionalProperties": False,
}
SET_INVENTORY = {
    "type": "object",
    "properties": {"resource_provider_generation": GENERATION, **INVENTORY_FIELDS},
    "required": ["resource_provider_generation", "total"],
    "additionalProperties": False,
}
CREATE_INVENTORY = {
    "type": "object",
    "properties": {"resource_class": NAME, "resource_provider_generation": GENERATION, **INVENTORY_FIELDS},
    "required": ["resource_class", "total"],
    "additionalProperties": False,
}

# --- aggregates and traits --------------------------------------------------------------------

_AGG_LIST = {"type": "array", "items": UUID, "uniqueItems": True}
SET_AGGREGATES = {
    mv.AGGREGATES: _AGG_LIST,
    mv.AGGREGATES_GENERATION: {
        "type": "object",
        "properties": {"aggregates": _AGG_LIST, "resource_provider_generation": GENERATION},
        "required": ["aggregates", "resource_provider_generation"],
        "additionalProperties": False,
    },
}
SET_TRAITS = {
    "type": "object",
    "properties": {"traits": {"type": "array", "items": NAME, "uniqueItems": True},
                   "resource_provider_generation": GENERATION},
    "required": ["traits", "resource_provider_generation"],
    "additionalProperties": False,
}
RESOURCE_CLASS = {"type": "object", "properties": {"name": CUSTOM_NAME}, "required": ["name"],
                  "additionalProperties": False}

# --- allocations ------------------------------------------------------------------------------

RESOURCES = {"type": "object", "minProperties": 1,
             "patternProperties": {"^[A-Z0-9_]+$": {"type": "integer", "minimum": 1, "maximum": MAX_INT}},
             "additionalProperties": False}
_LIST_ALLOCATIONS = {
    "type": "array", "minItems": 1,
    "items": {"type": "object",
              "properties": {"resource_provider": {"type": "object", "properties": {"uuid": UUID},
                                                   "required": ["uuid"], "additionalProperties": False},
                             "resources": RESOURCES},
              "required": ["resource_provider", "resources"], "additionalProperties": False},
}


def _dict_allocations(min_properties: int) -> dict:
    return {"type": "object", "minProperties": min_properties,
            "patternProperties": {UUID_RE: {"type": "object",
                                            "properties": {"resources": RESOURCES,
                                                           "generation": {"type": ["integer", "null"]}},
                                            "required": ["resources"], "additionalProperties": False}},
            "additionalProperties": False}


MAPPINGS = {"type": "object",
            "patternProperties": {"^[a-zA-Z0-9_-]{0,64}$": {"type": "array", "items": UUID}},
            "additionalProperties": False}


def _consumer(since: Version, empty_allowed: bool) -> dict:
    """One consumer's allocations in the dict format (PUT 1.12+, POST, reshaper)."""
    props = {"allocations": _dict_allocations(0 if empty_allowed else 1),
             "project_id": ID_STRING, "user_id": ID_STRING}
    required = ["allocations", "project_id", "user_id"]
    if since >= mv.CONSUMER_GENERATION:
        props["consumer_generation"] = {"type": ["integer", "null"]}
        required.append("consumer_generation")
    if since >= mv.MAPPINGS:
        props["mappings"] = MAPPINGS
    if since >= mv.CONSUMER_TYPES:
        props["consumer_type"] = CONSUMER_TYPE
        required.append("consumer_type")
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


PUT_ALLOCATIONS = {
    mv.MIN: {"type": "object",
             "properties": {"allocations": _LIST_ALLOCATIONS, "project_id": ID_STRING, "user_id": ID_STRING},
             "required": ["allocations"], "additionalProperties": False},
    mv.PROJECT_USER_REQUIRED: {"type": "object",
                               "properties": {"allocations": _LIST_ALLOCATIONS, "project_id": ID_STRING,
                                              "user_id": ID_STRING},
                               "required": ["allocations", "project_id", "user_id"],
                               "additionalProperties": False},
    mv.ALLOCATIONS_DICT: _consumer(mv.ALLOCATIONS_DICT, empty_allowed=False),
    mv.CONSUMER_GENERATION: _consumer(mv.CONSUMER_GENERATION, empty_allowed=True),
    mv.MAPPINGS: _consumer(mv.MAPPINGS, empty_allowed=True),
    mv.CONSUMER_TYPES: _consumer(mv.CONSUMER_TYPES, empty_allowed=True),
}


def _many(since: Version, min_properties: int = 1) -> dict:
    return {"type": "object", "minProperties": min_properties,
            "patternProperties": {UUID_RE: _consumer(since, empty_allowed=True)},
            "additionalProperties": False}


POST_ALLOCATIONS = {v: _many(v) for v in (mv.POST_ALLOCATIONS, mv.CONSUMER_GENERATION, mv.MAPPINGS,
                                          mv.CONSUMER_TYPES)}


def _reshaper(since: Version) -> dict:
    return {
        "type": "object",
        "properties": {
            "inventories": {"type": "object",
                            "patternProperties": {UUID_RE: {
                                "type": "object",
                                "properties": {"resource_provider_generation": {"type": ["integer", "null"]},
                                               "inventories": INVENTORIES_OBJECT},
                                "required": ["resource_provider_generation", "inventories"],
                                "additionalProperties": False}},
                            "additionalProperties": False},
            "allocations": _many(since, 0),
        },
        "required": ["inventories", "allocations"],
        "additionalProperties": False,
    }


RESHAPER = {v: _reshaper(v) for v in (mv.RESHAPER, mv.MAPPINGS, mv.CONSUMER_TYPES)}
