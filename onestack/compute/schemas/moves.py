"""Request schemas of the server moves (Nova's migrate_server and evacuate schemas): one
variant per microversion where the body changed."""

from __future__ import annotations

from onestack.common.microversion import Version
from onestack.common.validation import extend
from onestack.compute.schemas import types

HOST = {**types.FQDN, "type": ["string", "null"]}


def _action(name: str, properties: dict, required: tuple[str, ...] = (), nullable: bool = False) -> dict:
    inner = {"type": ["object", "null"] if nullable else "object", "properties": properties,
             "additionalProperties": False}
    if required:
        inner["required"] = list(required)
    return {"type": "object", "properties": {name: inner}, "required": [name], "additionalProperties": False}


# migrate: no body was checked before 2.56 (it is {"migrate": null}); then an optional host
MIGRATE = [(Version(2, 1), None), (Version(2, 56), _action("migrate", {"host": HOST}, nullable=True))]

_LIVE = _action("os-migrateLive", {"block_migration": types.BOOLEAN, "disk_over_commit": types.BOOLEAN,
                                   "host": HOST}, ("block_migration", "disk_over_commit", "host"))
_LIVE_V225 = _action("os-migrateLive", {"block_migration": {**types.BOOLEAN, "enum": [*types.BOOLEAN["enum"], "auto"]},
                                        "host": HOST}, ("block_migration", "host"))
# 2.30 adds force, 2.68 takes it away again
LIVE_MIGRATE = [(Version(2, 1), _LIVE), (Version(2, 25), _LIVE_V225),
                (Version(2, 30), extend(_LIVE_V225, ("os-migrateLive",), add={"force": types.BOOLEAN})),
                (Version(2, 68), _LIVE_V225)]
LIVE_FORCE = (Version(2, 30), Version(2, 68))

_EVACUATE_V214 = _action("evacuate", {"host": types.FQDN, "adminPass": {"type": "string"}})
EVACUATE = [(Version(2, 1), extend(_EVACUATE_V214, ("evacuate",), add={"onSharedStorage": types.BOOLEAN},
                                   required=("onSharedStorage",))),
            (Version(2, 14), _EVACUATE_V214),
            (Version(2, 29), extend(_EVACUATE_V214, ("evacuate",), add={"force": types.BOOLEAN})),
            (Version(2, 68), _EVACUATE_V214)]
EVACUATE_FORCE = (Version(2, 29), Version(2, 68))
EVACUATE_NO_PASSWORD = Version(2, 14)  # the response carries no adminPass from here

FORCE_COMPLETE = {"type": "object", "properties": {"force_complete": {"type": "null"}}, "required": ["force_complete"],
                  "additionalProperties": False}
