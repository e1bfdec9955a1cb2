"""Request schemas of ``POST /servers/{id}/os-interface`` (Nova's attach_interfaces schemas):
a port, or a network (with at most one fixed IP), or neither; a device tag from 2.49."""

from __future__ import annotations

from onestack.common.microversion import Version
from onestack.common.validation import extend
from onestack.compute.schemas import types

_CREATE = {
    "type": "object",
    "properties": {
        "interfaceAttachment": {
            "type": "object",
            "properties": {
                "net_id": types.UUID,
                "port_id": types.UUID,
                "fixed_ips": {"type": "array", "minItems": 1, "maxItems": 1, "items": {
                    "type": "object", "properties": {"ip_address": types.IP_ADDRESS},
                    "required": ["ip_address"], "additionalProperties": False}},
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}

CREATE = [(Version(2, 1), _CREATE),
          (Version(2, 49), extend(_CREATE, ("interfaceAttachment",), add={"tag": types.TAG}))]
