"""``POST /servers`` and ``PUT /servers/{id}`` bodies, one schema per microversion that
changes them (Nova's contract, up to this cloud's newest microversion).

Each variant is written as the change from the one before it; ``create_schema(v)`` and
``update_schema(v)`` pick the variant a request's version reads. What needs the database or
another service (the flavor, image, networks, volumes, zones, quotas) is checked in
``compute.build``, after this.
"""

from __future__ import annotations

import copy

from onestack.common.microversion import Version
from onestack.common.validation import variant
from onestack.compute.schemas import types as t

# block_device_mapping (legacy) items, and the v2 items built on them
_LEGACY_BDM = {
    "type": "object",
    "properties": {
        "virtual_name": {"type": "string", "maxLength": 255},
        "volume_id": t.UUID,
        "snapshot_id": t.UUID,
        "volume_size": t.VOLUME_SIZE,
        "device_name": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[a-zA-Z0-9._/-]*$"},
        "delete_on_termination": t.BOOLEAN,
        "no_device": {},
        "connection_info": {"type": "string", "maxLength": 16777215},
    },
    "additionalProperties": False,
}
BDM_V2 = {**_LEGACY_BDM, "properties": {**_LEGACY_BDM["properties"],
    "source_type": {"type": "string", "enum": ["volume", "image", "snapshot", "blank"]},
    "uuid": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[a-zA-Z0-9._-]*$"},
    "image_id": t.UUID,
    "destination_type": {"type": "string", "enum": ["local", "volume"]},
    "guest_format": {"type": "string", "maxLength": 255},
    "device_type": {"type": "string", "maxLength": 255},
    "disk_bus": {"type": "string", "maxLength": 255},
    # an integer, also written as a string; null too (the legacy v2 API sent it)
    "boot_index": {"type": ["integer", "string", "null"], "pattern": "^-?[0-9]+$"},
}}

_HINTS = {
    "type": "object",
    "properties": {
        "group": {"oneOf": [{"type": "array", "items": t.UUID}, t.UUID]},
        "different_host": {"oneOf": [t.UUID, {"type": "array", "items": t.UUID}]},
        "same_host": {"type": ["string", "array"], "items": t.UUID},
        "query": {"type": ["string", "object"]},
        "target_cell": t.NAME,
        "different_cell": {"type": ["string", "array"], "items": {"type": "string"}},
        "build_near_host_ip": t.IP_ADDRESS,
        "cidr": {"type": "string", "pattern": "^/[0-9a-f.:]+$"},
    },
    "additionalProperties": True,  # Nova relaxed it: out-of-tree filters read their own hints
}

_NETWORK = {"type": "object",
            "properties": {"fixed_ip": t.IP_ADDRESS, "port": t.NULLABLE_UUID, "uuid": {"type": "string"}},
            "additionalProperties": False}

CREATE_2_1 = {
    "type": "object",
    "properties": {
        "server": {
            "type": "object",
            "properties": {
                "name": t.NAME,
                # "" only for a server booted from a volume (build says so otherwise)
                "imageRef": {"oneOf": [t.UUID, {"type": "string", "maxLength": 0}]},
                "flavorRef": {"type": ["string", "integer"], "minLength": 1},
                "adminPass": {"type": "string"},
                "metadata": t.METADATA,
                "networks": {"type": "array", "items": _NETWORK},
                "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
                "accessIPv4": t.IPV4,
                "accessIPv6": t.IPV6,
                "personality": {"type": "array", "items": {
                    "type": "object",
                    "properties": {"path": {"type": "string"}, "contents": {"type": "string", "format": "base64"}},
                    "additionalProperties": False}},
                "availability_zone": t.NAME,
                "block_device_mapping": {"type": "array", "items": _LEGACY_BDM},
                "block_device_mapping_v2": {"type": "array", "items": BDM_V2},
                "config_drive": t.BOOLEAN,
                "key_name": t.NAME,
                "min_count": t.POSITIVE_INTEGER,
                "max_count": t.POSITIVE_INTEGER,
                "return_reservation_id": t.BOOLEAN,
                "security_groups": {"type": "array", "items": {
                    "type": "object", "properties": {"name": t.NAME}, "additionalProperties": False}},
                "user_data": {"type": "string", "format": "base64", "maxLength": 65535},
            },
            "required": ["name", "flavorRef"],
            "additionalProperties": False,
        },
        "os:scheduler_hints": _HINTS,
        "OS-SCH-HNT:scheduler_hints": _HINTS,
    },
    "required": ["server"],
    "additionalProperties": False,
}

def _server(base: dict, *, add: dict | None = None, drop: tuple[str, ...] = (),
            required: tuple[str, ...] = (), network: dict | None = None, bdm: dict | None = None) -> dict:
    """A copy of ``base`` whose server gains the properties ``add``, loses ``drop`` and
    requires ``required`` too; whose requested networks gain ``network`` and whose block
    device mappings gain ``bdm``."""
    out = copy.deepcopy(base)
    server = out["properties"]["server"]
    server["properties"].update(copy.deepcopy(add or {}))
    for key in drop:
        del server["properties"][key]
    server["required"] = [*server["required"], *required]
    nets = server["properties"]["networks"]
    (nets["items"] if "items" in nets else nets["oneOf"][0]["items"])["properties"].update(network or {})
    server["properties"]["block_device_mapping_v2"]["items"]["properties"].update(bdm or {})
    return out


CREATE_2_19 = _server(CREATE_2_1, add={"description": t.DESCRIPTION})
CREATE_2_32 = _server(CREATE_2_19, network={"tag": t.TAG}, bdm={"tag": t.TAG})
# 2.32's device tags were meant for 2.32 and later, but Nova shipped them in 2.32 only;
# 2.33 (built on 2.19) keeps the network's tag, not the mapping's
CREATE_2_33 = _server(CREATE_2_19, network={"tag": t.TAG})
# 2.37: networks required: a list (each uuid a UUID now) or "auto"/"none"; no tags
CREATE_2_37 = _server(CREATE_2_33, required=("networks",), add={"networks": {"oneOf": [
    {"type": "array", "items": {**_NETWORK, "properties": {**_NETWORK["properties"], "uuid": t.UUID}}},
    {"type": "string", "enum": ["none", "auto"]},
]}})
CREATE_2_42 = _server(CREATE_2_37, network={"tag": t.TAG}, bdm={"tag": t.TAG})  # the tags back
CREATE_2_52 = _server(CREATE_2_42, add={"tags": {"type": "array", "items": t.TAG, "maxItems": t.MAX_TAGS}})
CREATE_2_57 = _server(CREATE_2_52, drop=("personality",))
CREATE_2_63 = _server(CREATE_2_57, add={"trusted_image_certificates": {
    "type": ["array", "null"], "minItems": 1, "maxItems": 50, "uniqueItems": True,
    "items": {"type": "string", "minLength": 1}}})
CREATE_2_67 = _server(CREATE_2_63, bdm={"volume_type": {"type": ["string", "null"], "minLength": 0,
                                                        "maxLength": 255}})
CREATE_2_74 = _server(CREATE_2_67, add={"host": t.FQDN, "hypervisor_hostname": t.FQDN})

CREATE = [(Version(2, 1), CREATE_2_1), (Version(2, 19), CREATE_2_19), (Version(2, 32), CREATE_2_32),
          (Version(2, 33), CREATE_2_33), (Version(2, 37), CREATE_2_37), (Version(2, 42), CREATE_2_42),
          (Version(2, 52), CREATE_2_52), (Version(2, 57), CREATE_2_57), (Version(2, 63), CREATE_2_63),
          (Version(2, 67), CREATE_2_67), (Version(2, 74), CREATE_2_74)]

UPDATE_2_1 = {
    "type": "object",
    "properties": {"server": {"type": "object", "properties": {
        "name": t.NAME, "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
        "accessIPv4": t.IPV4, "accessIPv6": t.IPV6}, "additionalProperties": False}},
    "required": ["server"],
    "additionalProperties": False,
}
UPDATE_2_19 = copy.deepcopy(UPDATE_2_1)
UPDATE_2_19["properties"]["server"]["properties"]["description"] = t.DESCRIPTION
UPDATE = [(Version(2, 1), UPDATE_2_1), (Version(2, 19), UPDATE_2_19)]


def create_schema(v: Version) -> dict:
    return variant(CREATE, v)


def update_schema(v: Version) -> dict:
    return variant(UPDATE, v)
